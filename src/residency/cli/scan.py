"""`residency scan [LOCATION...]`: list what is really at each location and compare it with the
metadata (bytes nobody references, missing or resized blobs, placements the policy forbids,
bytes that had to leave, incomplete multipart uploads at object stores).

Exit 0 when every scanned location matches, 1 on drift, 2 on bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from residency.cli.common import cli_settings, on_database
from residency.cli.output import EXIT_FINDINGS, JSON_OPTION, console, fail, print_json

if TYPE_CHECKING:
    from residency.meta import Database
    from residency.migrate.scan import ScanResult

_LABELS = {
    "unreferenced": "unreferenced",
    "missing": "missing",
    "size_differs": "size differs",
    "forbidden": "forbidden",
    "must_leave": "must leave",
    "forbidden_part": "forbidden parts",
    "incomplete_upload": "open uploads",
}


def scan_cmd(
    names: list[str] = typer.Argument(
        None, metavar="[LOCATION]...", help="Locations to scan (default: every one)."
    ),
    policy: str | None = typer.Option(
        None,
        "--policy",
        "-p",
        help="Judge placements under this policy (default: the configured one, else "
        "preset:default).",
    ),
    sample: int = typer.Option(20, "--sample", min=0, help="Drift items listed per location."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="residency.yaml (default: ./residency.yaml if present)."
    ),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Where the database lives."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Compare what each location really holds with what the metadata says it holds."""
    from residency.catalog import CatalogError, load_catalog
    from residency.meta.errors import MetaError
    from residency.migrate.decide import Decider
    from residency.migrate.scan import scan_locations
    from residency.policy import PolicyError, load_policy
    from residency.storage import StorageError, open_locations

    settings = cli_settings(config, data_dir, default_locations=True)
    try:
        locations = open_locations(settings, load_catalog())
    except (CatalogError, StorageError, ValueError) as exc:
        fail(f"location config: {exc}")
    unknown = [n for n in names or [] if n not in locations]
    if unknown:
        fail(f"no location named {unknown[0]!r} (configured: {', '.join(locations)})")
    chosen = policy or (str(settings.policy) if settings.policy else "preset:default")
    try:
        pol = load_policy(chosen)
    except PolicyError as exc:
        fail(f"policy: {exc}")
    decider = Decider(pol, [loc.facts for loc in locations.values()])

    async def work(db: Database) -> ScanResult:
        return await scan_locations(db, locations, decider, names=names or None, sample=sample)

    try:
        result = on_database(settings, work, create=False)
    except MetaError as exc:
        fail(exc.message)
    if json_out:
        print_json(result.to_dict())
    else:
        _print(result)
    if result.drift:
        raise typer.Exit(EXIT_FINDINGS)


def _print(result: ScanResult) -> None:
    from residency.migrate.scan import DRIFT_KINDS
    from residency.migrate.units import format_bytes

    table = Table(title=f"Drift scan — policy {result.policy}")
    table.add_column("location")
    table.add_column("blobs there", justify="right")
    table.add_column("placed", justify="right")
    for kind in DRIFT_KINDS:
        table.add_column(_LABELS[kind], justify="right")
    for loc in result.locations:
        table.add_row(
            loc.location,
            f"{loc.listed:,} ({format_bytes(loc.listed_bytes)})",
            f"{loc.placed:,}",
            *(f"{loc.counts[k]:,}" if loc.counts[k] else "" for k in DRIFT_KINDS),
        )
    console.print(table)
    for loc in result.locations:
        if loc.error:
            console.print(
                f"[red]not scanned:[/] {escape(loc.location)}: {escape(loc.error)}",
                highlight=False,
                soft_wrap=True,
            )
        for item in loc.sample:
            console.print(
                f"[red]drift:[/] {escape(item.describe())}", highlight=False, soft_wrap=True
            )
        shown = len(loc.sample)
        if loc.drift - (1 if loc.error else 0) > shown:
            console.print(
                f"  … {loc.drift - shown:,} more at {escape(loc.location)} (--json or --sample N)",
                highlight=False,
            )
    verdict = f"{result.drift:,} drift items" if result.drift else "no drift: the metadata matches"
    console.print(f"{verdict} ({len(result.locations)} locations scanned).", highlight=False)
