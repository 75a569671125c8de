"""`residency report`: a compliance report as one self-contained HTML file, or JSON.

Exit 0 when every object is where the policy allows it, no byte the metadata knows of is left
where the policy forbids it and (with --scan) the locations hold what the metadata says; 1 when
not (the report is still written); 2 on bad input.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from residency.cli.common import cli_settings, on_database
from residency.cli.output import EXIT_FINDINGS, JSON_OPTION, console, fail, print_json

if TYPE_CHECKING:
    from residency.config import Settings
    from residency.policy import Policy
    from residency.report import Report


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)


def _policy(ref: str | None, settings: Settings) -> Policy:
    from residency.policy import PolicyError, load_policy

    chosen = ref or (str(settings.policy) if settings.policy else "preset:default")
    try:
        return load_policy(chosen)
    except PolicyError as exc:
        fail(f"policy: {exc}")


def _since(text: str | None) -> datetime | None:
    from residency.audit import parse_time

    if text is None or text.lower() == "all":
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        fail(f"--since: {exc}")


def _collect(
    settings: Settings,
    policy: Policy,
    top: int,
    since: datetime | None,
    recent: int,
    scan: bool = False,
) -> Report:
    from residency.catalog import CatalogError, load_catalog
    from residency.meta import Database
    from residency.meta.errors import MetaError
    from residency.report import collect_report

    catalog = load_catalog()
    try:
        facts = [catalog.facts_for(cfg) for cfg in settings.locations]
    except CatalogError as exc:
        fail(f"location config: {exc}")
    locations = None
    if scan:
        from residency.storage import StorageError, open_locations

        try:
            locations = open_locations(settings, catalog)
        except (CatalogError, StorageError, ValueError) as exc:
            fail(f"location config: {exc}")
    db_file = settings.data_dir / "residency.db"
    if settings.database_url is None and not db_file.exists():
        fail(f"no database at {db_file}: nothing stored yet (check --config / --data-dir)")

    async def collect(db: Database) -> Report:
        return await collect_report(
            db,
            policy,
            facts,
            catalog,
            top=top,
            audit_since=since,
            audit_limit=recent,
            scan=locations,
        )

    try:
        return on_database(settings, collect, create=False)
    except MetaError as exc:
        fail(exc.message)


def report_cmd(
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Write the HTML report here (default: report.html; none with --json).",
    ),
    policy: str | None = typer.Option(
        None,
        "--policy",
        "-p",
        help="Policy file or preset:NAME (default: the configured one, else preset:default).",
    ),
    top: int = typer.Option(
        50, "--top", min=0, help="List at most this many out-of-compliance objects (largest)."
    ),
    since: str = typer.Option(
        "30d", "--since", help="Audit window: ISO 8601 time, a duration (24h, 7d) or 'all'."
    ),
    recent: int = typer.Option(
        20, "--recent", min=0, help="Show this many of the newest entries of each audit kind."
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="residency.yaml (default: ./residency.yaml if present)."
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Where the database lives."),
    scan: bool = typer.Option(
        False,
        "--scan",
        help="Also list every location and compare it with the metadata (`residency scan`).",
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Where the data is, what the policy does not allow, what fixing it costs, who was refused."""
    from residency.migrate.units import format_bytes
    from residency.report import render_html

    settings = cli_settings(config, data_dir, default_locations=True)
    pol = _policy(policy, settings)
    start = _since(since)
    report = _collect(settings, pol, top, start, recent, scan)
    target = output if output is not None or json_out else Path("report.html")
    if target is not None:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            tmp.write_text(render_html(report), encoding="utf-8")
            tmp.replace(target)  # a report is complete or absent
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            fail(f"{target}: cannot write: {exc.strerror or exc}")
    if json_out:
        print_json(report.to_dict())
    else:
        left = (
            f", and {report.leftover_blobs:,} blobs left where it forbids them"
            if report.leftovers
            else ""
        )
        noncurrent = report.totals["noncurrent_versions"]
        older = f", {noncurrent:,} of them noncurrent versions" if noncurrent else ""
        console.print(
            f"{report.totals['objects']:,} objects ({format_bytes(report.totals['bytes'])}"
            f"{older}) in "
            f"{report.totals['countries']} countries; {report.violations_total:,} out of "
            f"compliance with {pol.name}{left}; report written to {target}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        for x in report.leftovers:
            console.print(f"left behind: {x.describe()}", highlight=False, markup=False)
        if report.scan is not None:
            console.print(
                f"drift scan: {report.scan.drift:,} items at "
                f"{len(report.scan.locations)} locations",
                highlight=False,
                markup=False,
            )
    if not report.compliant:
        raise typer.Exit(EXIT_FINDINGS)
