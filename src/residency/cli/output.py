"""Shared CLI output: Rich tables for people, JSON for scripts, one-line errors with exit codes."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)

# Exit codes mean the same thing in every command.
EXIT_OK = 0
EXIT_FINDINGS = 1  # the command ran and found a problem (violation, mismatch, no location)
EXIT_USAGE = 2  # bad input: file, flag or value


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one readable line to stderr and exit with `code`."""
    print_error(message)
    raise typer.Exit(code)


def print_error(message: str) -> None:
    """The one line `fail` prints (for errors caught outside a command, see `cli.main`)."""
    err_console.print(
        f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True, emoji=False
    )


def print_json(data: Any) -> None:
    """JSON on stdout, nothing else, so `| jq` always works."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")
