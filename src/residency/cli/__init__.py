"""The `residency` command: thin Typer wiring; each sub-module registers its own commands."""

from __future__ import annotations

import importlib
from typing import NoReturn

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
    """Run the command; errors a command cannot foresee in its own terms still end as one line.

    A bucket's own policy that no longer loads (`residency bucket policy` named a file that
    was moved away or no longer validates) can surface in any command that judges objects
    (plan, migrate, report, scan, policy diff, ...), deep inside its work: it stops that
    command with one line naming the bucket and why, and exit code 2 (bad input).
    """
    from residency.policy.errors import BucketPolicyError

    try:
        app()
    except BucketPolicyError as exc:
        _bad_bucket_policy(exc)
    except BaseExceptionGroup as group:  # raised inside a task group
        found = group.subgroup(BucketPolicyError)
        if found is None:
            raise
        _bad_bucket_policy(_first(found))


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


def _bad_bucket_policy(exc: BaseException) -> NoReturn:
    import sys

    from residency.cli.output import EXIT_USAGE, print_error

    print_error(getattr(exc, "message", str(exc)))
    sys.exit(EXIT_USAGE)
