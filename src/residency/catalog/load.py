"""Read the vendored catalog files and refuse data that would mislead a residency decision.

Every check that protects a policy decision runs at load time (unknown country codes, a region
whose continent disagrees with its country, member countries that contradict the region, an
operator without an HQ country, an ownership share outside 0-100, a price without a source),
so a bad edit to the data fails loudly with file:line instead of placing data in the wrong
country or with the wrong owner.
"""

from __future__ import annotations

import csv
import functools
import io
import math
import re
from collections.abc import Iterator
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from residency.catalog.catalog import Catalog
from residency.catalog.model import (
    CONTINENTS,
    SELF_PROVIDER,
    CatalogError,
    Country,
    CountryGroup,
    Provider,
    Region,
)

COUNTRY_COLUMNS = ("code", "name", "continent")
PROVIDER_COLUMNS = (
    "provider_id",
    "name",
    "hq_country",
    "parent_company",
    "jurisdiction_notes",
    "s3_compatible",
    "opendal_scheme",
    "object_store_product",
)
REGION_COLUMNS = (
    "provider_id",
    "region_id",
    "city",
    "country",
    "countries",
    "continent",
    "s3_endpoint",
    "storage_usd_per_gb_month",
    "egress_usd_per_gb_internet",
    "price_source",
    "price_date",
    "operator",
    "operator_hq",
    "parent",
    "parent_hq",
    "parent_share",
    "notes",
)
OPENDAL_SCHEMES = frozenset({"s3", "oss", "cos", "obs", "azblob", "gcs"})
_CODE_RE = re.compile(r"[A-Z]{2}")
_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_GROUP_RE = re.compile(r"[A-Z][A-Z0-9_]*")
_MONTH_RE = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
_SHARE_RE = re.compile(r"\d{1,3}")


@functools.cache
def load_catalog() -> Catalog:
    """The catalog shipped with residency, parsed once per process."""
    return read_catalog(files("residency.catalog").joinpath("data"))


def read_catalog(source: Traversable | Path) -> Catalog:
    """Parse and check a catalog directory (countries.csv, providers.csv, regions.csv, groups.yaml).

    Uncached: `load_catalog` is the everyday entry point; this one exists for other data sets.
    """
    countries = _read_countries(source / "countries.csv")
    providers = _read_providers(source / "providers.csv", countries)
    regions = _read_regions(source / "regions.csv", providers, countries)
    groups = _read_groups(source / "groups.yaml", countries)
    return Catalog(providers, regions, countries, groups)


# -- CSV plumbing --------------------------------------------------------------------------------


def _rows(path: Traversable, columns: tuple[str, ...]) -> Iterator[tuple[str, dict[str, str]]]:
    """Yield (`file:line`, row) with every cell stripped; the header must be exactly `columns`."""
    try:
        reader = csv.reader(io.StringIO(path.read_text(encoding="utf-8")))
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != columns:
            raise CatalogError(
                f"{path.name}:1: expected header {','.join(columns)}, got "
                f"{','.join(header or []) or 'an empty file'}"
            )
        for cells in reader:
            where = f"{path.name}:{reader.line_num}"
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(columns):
                raise CatalogError(f"{where}: expected {len(columns)} columns, got {len(cells)}")
            yield where, {k: v.strip() for k, v in zip(columns, cells, strict=True)}
    except FileNotFoundError:
        raise CatalogError(f"catalog file {path.name} is missing") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CatalogError(f"{path.name}: cannot parse: {exc}") from None


def _country_code(value: str, where: str, field: str, countries: dict[str, Country]) -> str:
    if not _CODE_RE.fullmatch(value):
        raise CatalogError(f"{where}: {field} {value!r} is not an ISO 3166-1 alpha-2 code")
    if value not in countries:
        raise CatalogError(f"{where}: {field} {value!r} is not in countries.csv")
    return value


def _price(value: str, where: str, field: str) -> float | None:
    if not value:
        return None
    try:
        price = float(value)
    except ValueError:
        raise CatalogError(f"{where}: {field} {value!r} is not a number") from None
    if not math.isfinite(price) or price < 0:
        raise CatalogError(f"{where}: {field} {value!r} must be a non-negative number")
    return price


# -- the four files ------------------------------------------------------------------------------


def _read_countries(path: Traversable) -> dict[str, Country]:
    countries: dict[str, Country] = {}
    for where, row in _rows(path, COUNTRY_COLUMNS):
        code = row["code"]
        if not _CODE_RE.fullmatch(code):
            raise CatalogError(f"{where}: code {code!r} is not an ISO 3166-1 alpha-2 code")
        if code in countries:
            raise CatalogError(f"{where}: duplicate country code {code}")
        if not row["name"]:
            raise CatalogError(f"{where}: country {code} has no name")
        if row["continent"] not in CONTINENTS:
            raise CatalogError(
                f"{where}: continent {row['continent']!r} is not one of "
                f"{', '.join(sorted(CONTINENTS))}"
            )
        countries[code] = Country(code, row["name"], row["continent"])
    return countries


def _read_providers(path: Traversable, countries: dict[str, Country]) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    for where, row in _rows(path, PROVIDER_COLUMNS):
        pid = row["provider_id"]
        if not _ID_RE.fullmatch(pid):
            raise CatalogError(f"{where}: provider_id {pid!r} must be lowercase letters/digits/_-")
        if pid in providers:
            raise CatalogError(f"{where}: duplicate provider {pid}")
        hq: str | None = row["hq_country"] or None
        if pid == SELF_PROVIDER:
            if hq is not None:
                raise CatalogError(f"{where}: provider self has no vendor, so no hq_country")
        elif hq is None:
            raise CatalogError(f"{where}: provider {pid} needs an hq_country")
        else:
            _country_code(hq, where, "hq_country", countries)
        if row["s3_compatible"] not in ("yes", "no"):
            raise CatalogError(f"{where}: s3_compatible must be yes or no")
        if row["opendal_scheme"] not in OPENDAL_SCHEMES:
            raise CatalogError(
                f"{where}: opendal_scheme {row['opendal_scheme']!r} is not one of "
                f"{', '.join(sorted(OPENDAL_SCHEMES))}"
            )
        providers[pid] = Provider(
            id=pid,
            name=row["name"],
            hq_country=hq,
            parent=row["parent_company"],
            s3_compatible=row["s3_compatible"] == "yes",
            opendal_scheme=row["opendal_scheme"],
            product=row["object_store_product"],
            notes=row["jurisdiction_notes"],
        )
    if SELF_PROVIDER not in providers:
        raise CatalogError(
            f"{path.name}: the '{SELF_PROVIDER}' provider (own data center) is missing"
        )
    return providers


def _read_regions(
    path: Traversable, providers: dict[str, Provider], countries: dict[str, Country]
) -> list[Region]:
    regions: list[Region] = []
    seen: set[tuple[str, str]] = set()
    for where, row in _rows(path, REGION_COLUMNS):
        pid, rid = row["provider_id"], row["region_id"]
        if pid not in providers:
            raise CatalogError(f"{where}: region {rid!r} names unknown provider {pid!r}")
        provider = providers[pid]
        if not rid:
            raise CatalogError(f"{where}: {pid} region has no region_id")
        if (pid, rid) in seen:
            raise CatalogError(f"{where}: duplicate region {pid} {rid}")
        seen.add((pid, rid))
        country: str | None = row["country"] or None
        continent = row["continent"]
        if continent and continent not in CONTINENTS:
            raise CatalogError(f"{where}: unknown continent {continent!r}")
        if country is not None:
            _country_code(country, where, "country", countries)
            expected = countries[country].continent
            if continent != expected:
                raise CatalogError(
                    f"{where}: {pid} {rid} is in {country}, which is in {expected}, "
                    f"not {continent or 'no continent'}"
                )
        members = _members(row["countries"], where, country, continent, countries)
        storage = _price(row["storage_usd_per_gb_month"], where, "storage_usd_per_gb_month")
        egress = _price(row["egress_usd_per_gb_internet"], where, "egress_usd_per_gb_internet")
        _check_price_source(row, where, priced=storage is not None or egress is not None)
        operator, operator_hq, parent, parent_hq, share = _operator(row, where, provider, countries)
        regions.append(
            Region(
                provider=pid,
                id=rid,
                city=row["city"],
                country=country,
                countries=members,
                continent=continent,
                endpoint=row["s3_endpoint"],
                storage_usd_per_gb_month=storage,
                egress_usd_per_gb=egress,
                price_source=row["price_source"],
                price_date=row["price_date"],
                operator=operator,
                operator_hq=operator_hq,
                parent=parent,
                parent_hq=parent_hq,
                parent_share=share,
                notes=row["notes"],
            )
        )
    return regions


def _members(
    value: str,
    where: str,
    country: str | None,
    continent: str,
    countries: dict[str, Country],
) -> frozenset[str]:
    """Where a region's bytes may sit; empty only for a multi-country region nobody maps.

    A multi-country row lists its members (`AT;BE;…`) with an empty `country`; a single-country
    row may repeat its country there (GCS `us`), never name another.
    """
    if not value:
        return frozenset({country}) if country is not None else frozenset()
    codes = [code.strip() for code in value.split(";")]
    for code in codes:
        if not code:
            raise CatalogError(f"{where}: countries {value!r} has an empty member")
        _country_code(code, where, "countries member", countries)
    if len(set(codes)) != len(codes):
        raise CatalogError(f"{where}: countries {value!r} lists a country twice")
    members = frozenset(codes)
    if country is not None and members != {country}:
        raise CatalogError(
            f"{where}: countries {value!r} contradicts country {country}: a region with a "
            "country lists only that country (or nothing)"
        )
    if country is None and len(members) == 1:
        raise CatalogError(
            f"{where}: countries {value!r} is a single country: put it in `country` instead"
        )
    if continent:
        elsewhere = sorted(c for c in members if countries[c].continent != continent)
        if elsewhere:
            raise CatalogError(
                f"{where}: countries {', '.join(elsewhere)} are not in {continent}; "
                "leave continent empty for a region that spans continents"
            )
    return members


def _check_price_source(row: dict[str, str], where: str, *, priced: bool) -> None:
    """A price nobody can trace is worse than none: each one needs a source and a month."""
    source, month = row["price_source"], row["price_date"]
    if not priced:
        if source or month:
            raise CatalogError(f"{where}: price_source and price_date need a price to describe")
        return
    if not source:
        raise CatalogError(f"{where}: a price needs a price_source")
    if not _MONTH_RE.fullmatch(month):
        raise CatalogError(f"{where}: price_date {month!r} must be a month such as 2026-11")


def _operator(
    row: dict[str, str], where: str, provider: Provider, countries: dict[str, Country]
) -> tuple[str, str | None, str, str | None, int | None]:
    """(operator, operator_hq, parent, parent_hq, parent_share) with the provider as default.

    Empty operator columns mean the provider runs the region itself: operator = the brand,
    parent = its parent company, both HQ'd in the provider's country, 100 %. For `self` (no
    vendor) the HQ countries and the share stay unknown.
    """
    operator, operator_hq = row["operator"], row["operator_hq"]
    parent, parent_hq, share = row["parent"], row["parent_hq"], row["parent_share"]
    if not operator:
        if operator_hq or parent or parent_hq or share:
            raise CatalogError(
                f"{where}: operator_hq, parent, parent_hq and parent_share describe an "
                "operator: set operator too, or leave all five empty when the provider runs it"
            )
        if provider.is_self:
            return provider.name, None, "", None, None
        return provider.name, provider.hq_country, provider.parent, provider.hq_country, 100
    if provider.is_self:
        raise CatalogError(f"{where}: provider self is run by the operator: leave operator empty")
    if not operator_hq:
        raise CatalogError(f"{where}: operator {operator!r} needs an operator_hq")
    _country_code(operator_hq, where, "operator_hq", countries)
    if not parent or not parent_hq:
        raise CatalogError(
            f"{where}: operator {operator!r} needs its ultimate parent and parent_hq "
            "(the operator itself when nobody owns it)"
        )
    _country_code(parent_hq, where, "parent_hq", countries)
    if not share:
        return operator, operator_hq, parent, parent_hq, None
    if not _SHARE_RE.fullmatch(share) or int(share) > 100:
        raise CatalogError(f"{where}: parent_share {share!r} must be a whole percent, 0-100")
    return operator, operator_hq, parent, parent_hq, int(share)


def _read_groups(path: Traversable, countries: dict[str, Country]) -> dict[str, CountryGroup]:
    name = path.name
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(f"catalog file {name} is missing") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{name}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{name}: expected a mapping of group name to group")
    groups: dict[str, CountryGroup] = {}
    taken: set[str] = set()
    for key, body in data.items():
        if not isinstance(key, str) or not _GROUP_RE.fullmatch(key):
            raise CatalogError(f"{name}: group name {key!r} must be upper case, e.g. EU")
        if not isinstance(body, dict):
            raise CatalogError(f"{name}: group {key}: expected title, citation, members")
        unknown = set(body) - {"title", "citation", "members", "aliases"}
        if unknown:
            raise CatalogError(
                f"{name}: group {key}: unknown field(s) {', '.join(sorted(unknown))}"
            )
        citation = body.get("citation")
        if not isinstance(citation, str) or not citation.strip():
            raise CatalogError(f"{name}: group {key}: a citation is required")
        members = body.get("members")
        if not isinstance(members, list) or not members:
            raise CatalogError(f"{name}: group {key}: members must be a non-empty list")
        for member in members:
            # YAML 1.1 turns a bare NO (Norway) into False: catch it here, not in a policy.
            if not isinstance(member, str):
                raise CatalogError(
                    f"{name}: group {key}: member {member!r} is not a country code "
                    '(quote codes YAML reads as booleans, e.g. "NO")'
                )
            _country_code(member, f"{name}: group {key}", "member", countries)
        if len(set(members)) != len(members):
            raise CatalogError(f"{name}: group {key}: duplicate members")
        aliases = body.get("aliases", [])
        if not isinstance(aliases, list) or not all(
            isinstance(a, str) and _GROUP_RE.fullmatch(a) for a in aliases
        ):
            raise CatalogError(f"{name}: group {key}: aliases must be upper-case names")
        for label in (key, *aliases):
            if label in taken or label in countries:
                raise CatalogError(
                    f"{name}: group {key}: name {label} is already used by a group or a country"
                )
            taken.add(label)
        groups[key] = CountryGroup(
            name=key,
            title=str(body.get("title", "")),
            citation=citation.strip(),
            members=frozenset(members),
            aliases=tuple(aliases),
        )
    return groups
