"""CLI: `residency policy test POLICY CASES.yaml...` — check a policy against expected verdicts.

Exit 0 when every case gives the verdict it expects, 1 on any mismatch (each printed with the
rules that applied and the reasons), 2 on bad input (missing file, invalid case, unknown policy).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.markup import escape

from residency.cli.output import (
    EXIT_FINDINGS,
    EXIT_USAGE,
    JSON_OPTION,
    console,
    err_console,
    print_json,
)

if TYPE_CHECKING:
    from residency.policy.cases import CaseResult

POLICY_ARG = typer.Argument(..., help="Policy YAML file, or preset:NAME (see `policy presets`).")
CASES_ARG = typer.Argument(
    ..., help="Case tables (YAML): class, subject, count, at, expect, because, citation."
)


def register_test(policy_app: typer.Typer) -> None:
    """Add `policy test` to the `policy` command group."""
    policy_app.command("test")(run_tests)


def run_tests(
    policy: str = POLICY_ARG, cases: list[Path] = CASES_ARG, json: bool = JSON_OPTION
) -> None:
    """Run case tables against a policy; print every mismatch with its deciding rules."""
    from residency.catalog import CatalogError, load_catalog
    from residency.policy import PolicyError, load_policy
    from residency.policy.cases import CaseError, load_cases, prepare, run_cases

    try:
        catalog = load_catalog()
        loaded = load_policy(policy, catalog=catalog)
    except (PolicyError, CatalogError) as exc:
        _fail(str(exc))
    problems: list[str] = []
    files = []
    for path in cases:
        try:
            files.append(load_cases(path))
        except CaseError as exc:
            problems.append(str(exc))
    if problems:
        _fail("\n".join(problems))
    try:
        facts = prepare(loaded, catalog, files)
    except CaseError as exc:
        _fail(str(exc))
    results = run_cases(loaded, files, facts)
    failed = [r for r in results if not r.passed]
    passed = len(results) - len(failed)
    if json:
        print_json(
            {
                "policy": loaded.name,
                "passed": passed,
                "failed": len(failed),
                "results": [r.to_dict() for r in results],
            }
        )
    else:
        for r in failed:
            _say(_mismatch_line(r))
        _say(f"{passed} passed, {len(failed)} failed")
    if failed:
        raise typer.Exit(EXIT_FINDINGS)


def _mismatch_line(r: CaseResult) -> str:
    """One line per mismatch: where, what, expected vs actual, and what decided it."""
    c = r.case
    subject = f"subject {c.subject}" if c.subject else "unknown subject"
    count = f", {c.count} subjects" if c.count is not None else ""
    rules = ", ".join(r.rules) or "none (no law in force restricts this)"
    line = (
        f"FAIL {c.source}: {c.name}: {c.data_class} ({subject}{count}) at {c.at}: "
        f"{r.problem}; rules: {rules}"
    )
    if r.exceptions:
        line += "; exceptions: " + ", ".join(r.exceptions)
    if r.reasons:
        line += "; reasons: " + "; ".join(r.reasons)
    return line + f" [{c.citation}]"


def _say(text: str) -> None:
    # emoji=False: `file.yaml:100:` must not turn into an emoji.
    console.print(text, highlight=False, markup=False, emoji=False, soft_wrap=True)


def _fail(message: str) -> NoReturn:
    """Bad input: one line per problem on stderr, exit 2 (like `output.fail`, without emoji)."""
    err_console.print(
        f"[bold red]error:[/] {escape(message)}", highlight=False, emoji=False, soft_wrap=True
    )
    raise typer.Exit(EXIT_USAGE)
