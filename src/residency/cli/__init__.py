"""The `residency` command: thin Typer wiring; each sub-module registers its own commands."""

from __future__ import annotations

import importlib

import typer

from residency import __version__

app = typer.Typer(
    name="residency",
    help="Keep every object only where the law allows: policy, S3 gateway, migration, audit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module defines `register(app)`; order is the order of `residency --help`.
_COMMAND_MODULES = (
    "serve",
    "top",
    "admin",
    "catalog",
    "policy",
    "audit",
    "migrate",
    "access",
    "report",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"residency {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Keep every object only where the law allows: policy, S3 gateway, migration, audit."""


for _name in _COMMAND_MODULES:
    importlib.import_module(f"residency.cli.{_name}").register(app)


def main() -> None:
    app()
