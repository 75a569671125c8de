"""CLI: `residency catalog …` — browse providers, regions, country groups and countries."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.table import Table

from residency.cli.output import JSON_OPTION, console, err_console, fail, print_json

if TYPE_CHECKING:
    from residency.catalog import Catalog, Region

catalog_app = typer.Typer(
    name="catalog",
    help="Browse the built-in facts: cloud providers, their regions, countries and country groups.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(catalog_app, name="catalog")


def _catalog() -> Catalog:
    from residency.catalog import CatalogError, load_catalog

    try:
        return load_catalog()
    except CatalogError as exc:
        fail(f"the built-in catalog is broken: {exc}")


def _price(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


@catalog_app.command("providers")
def providers(as_json: bool = JSON_OPTION) -> None:
    """List storage providers with the country their ultimate parent is headquartered in."""
    cat = _catalog()
    counts: dict[str, int] = {}
    for region in cat.regions:
        counts[region.provider] = counts.get(region.provider, 0) + 1
    if as_json:
        print_json([{**asdict(p), "regions": counts.get(p.id, 0)} for p in cat.providers.values()])
        return
    table = Table(title="Storage providers")
    for column in ("provider", "name", "HQ", "parent", "S3 API", "OpenDAL", "product"):
        table.add_column(column, overflow="fold")
    table.add_column("regions", justify="right")
    for p in cat.providers.values():
        hq = f"{p.hq_country} ({cat.country_name(p.hq_country)})" if p.hq_country else "—"
        table.add_row(
            p.id,
            p.name,
            hq,
            p.parent,
            "yes" if p.s3_compatible else "no",
            p.opendal_scheme,
            p.product,
            str(counts.get(p.id, 0)),
        )
    console.print(table)


@catalog_app.command("regions")
def regions(
    provider: str | None = typer.Option(
        None, "--provider", "-p", help="Only this provider's regions (e.g. aws, alibaba, oci)."
    ),
    country: str | None = typer.Option(
        None, "--country", "-c", help="Only regions in this country (ISO code, e.g. SG or de)."
    ),
    group: str | None = typer.Option(
        None,
        "--group",
        "-g",
        help="Only regions in a country of this group (e.g. EU, @COUNTRIES_OF_CONCERN).",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """List regions with city, country, operator and list prices; filters combine (all must match).

    A multi-country region shows its member countries (or the group they form, e.g. EU) and
    matches a group filter only when every member is in the group. Country "—" means nobody
    publishes where the bytes sit (R2 location hints) or, for provider self, that it is set per
    location; such regions never match a country or group filter. The operator is who runs the
    region (a local partner such as Sinnet for AWS Beijing, else the provider); its parent is
    shown when it is headquartered elsewhere.
    """
    from residency.catalog import CatalogError

    cat = _catalog()
    try:
        found = cat.find_regions(provider=provider, country=country, group=group)
    except CatalogError as exc:
        fail(str(exc))
    if as_json:
        print_json([_region_json(cat, r) for r in found])
        return
    if not found:
        err_console.print("no regions match these filters", highlight=False)
        return
    table = Table(title=f"Regions ({len(found)})", box=box.SIMPLE_HEAD)
    # On a narrow terminal long values fold onto the next line; they are never cut short.
    for column in ("provider", "region", "city", "country", "continent", "operator"):
        table.add_column(column, overflow="fold")
    table.add_column("storage\n$/GB-mo", justify="right")
    table.add_column("egress\n$/GB", justify="right")
    for r in found:
        table.add_row(
            r.provider,
            r.id,
            r.city or "—",
            _where(cat, r),
            r.continent or "—",
            _operator(r),
            _price(r.storage_usd_per_gb_month),
            _price(r.egress_usd_per_gb),
        )
    console.print(table)


def _where(cat: Catalog, region: Region) -> str:
    """The country, else the members (named by their group when they form one), else "—"."""
    if region.country is not None:
        return region.country
    if not region.countries:
        return "—"
    for info in cat.group_info.values():
        if info.members == region.countries:
            return f"{info.name} ({len(info.members)})"
    return " ".join(sorted(region.countries))


def _operator(region: Region) -> str:
    """Who runs it, plus the owner when that sits in another country (what ownership rules test)."""
    hq = f" ({region.operator_hq})" if region.operator_hq else ""
    text = f"{region.operator}{hq}"
    if region.parent_hq is not None and region.parent_hq != region.operator_hq:
        share = "?" if region.parent_share is None else str(region.parent_share)
        text += f", {share}% {region.parent} ({region.parent_hq})"
    return text


def _region_json(cat: Catalog, region: Region) -> dict[str, Any]:
    data = asdict(region)
    data["countries"] = sorted(region.countries)
    data["country_name"] = cat.country_name(region.country) if region.country else None
    return data


@catalog_app.command("groups")
def groups(as_json: bool = JSON_OPTION) -> None:
    """List the built-in country groups that policies can name (as NAME or @NAME)."""
    cat = _catalog()
    infos = sorted(cat.group_info.values(), key=lambda g: g.name)
    if as_json:
        print_json(
            [
                {
                    "name": g.name,
                    "title": g.title,
                    "members": sorted(g.members),
                    "aliases": list(g.aliases),
                    "citation": g.citation,
                }
                for g in infos
            ]
        )
        return
    table = Table(title="Country groups")
    table.add_column("group", overflow="fold")
    table.add_column("members")
    table.add_column("citation")
    for g in infos:
        name = g.name + "".join(f"\n(alias {a})" for a in g.aliases)
        table.add_row(name, " ".join(sorted(g.members)), g.citation)
    console.print(table)


@catalog_app.command("countries")
def countries(
    group: str | None = typer.Option(
        None, "--group", "-g", help="Only the members of this group (e.g. EEA)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """List ISO 3166-1 country codes with their names and continents."""
    from residency.catalog import CatalogError

    cat = _catalog()
    try:
        members = cat.group(group) if group is not None else None
    except CatalogError as exc:
        fail(str(exc))
    found = [c for c in cat.countries.values() if members is None or c.code in members]
    if as_json:
        print_json([asdict(c) for c in found])
        return
    table = Table(title=f"Countries ({len(found)})")
    for column in ("code", "name", "continent"):
        table.add_column(column, overflow="fold")
    for c in found:
        table.add_row(c.code, c.name, c.continent)
    console.print(table)
