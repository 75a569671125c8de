"""The catalog's records: who runs a store, where a region is, which countries form a group."""

from __future__ import annotations

from dataclasses import dataclass

SELF_PROVIDER = "self"
"""Provider id of the operator's own data centers: no vendor, country set per location."""

CONTINENTS = frozenset(
    {"Africa", "Antarctica", "Asia", "Europe", "North America", "Oceania", "South America"}
)
"""Continent names used in the data; Asia includes the Middle East."""


class CatalogError(Exception):
    """An unknown provider, region, country or group, or broken catalog data.

    The message is one readable line and suggests close matches where there are any.
    """


@dataclass(frozen=True, slots=True)
class Provider:
    """A storage vendor and the jurisdiction of its ultimate parent.

    `hq_country` is None only for `self` (the operator's own hardware has no vendor).
    """

    id: str
    name: str
    hq_country: str | None
    parent: str
    s3_compatible: bool
    opendal_scheme: str
    product: str
    notes: str

    @property
    def is_self(self) -> bool:
        return self.id == SELF_PROVIDER


@dataclass(frozen=True, slots=True)
class Region:
    """One place a provider stores bytes, and who runs it.

    `country` is None when the region spans several countries (GCS `eu`, R2 location hints).
    `countries` is where the bytes may sit: `{country}` for a single-country region, the member
    states of a multi-country region, empty when the provider does not say (such a region can
    never prove where data sits). `continent` is empty when the region spans continents.

    Who runs it matters to the law as much as where (28 CFR 202 and PADFA look at ownership):
    `operator` is the entity that runs the region (a local partner such as Sinnet for AWS
    Beijing, else the provider), `parent` its ultimate parent and `parent_share` the percent of
    the operator the parent owns (None = unknown). HQ fields are ISO codes, None only for `self`.

    Prices are list prices in USD (None = unknown): first-tier standard storage per GB-month and
    first paid tier of internet egress per GB; `price_source` and `price_date` (YYYY-MM) say
    where a price comes from, both empty when the region has no price.
    """

    provider: str
    id: str
    city: str
    country: str | None
    countries: frozenset[str]
    continent: str
    endpoint: str
    storage_usd_per_gb_month: float | None
    egress_usd_per_gb: float | None
    price_source: str
    price_date: str
    operator: str
    operator_hq: str | None
    parent: str
    parent_hq: str | None
    parent_share: int | None
    notes: str


@dataclass(frozen=True, slots=True)
class Country:
    """An ISO 3166-1 alpha-2 code with its English short name and continent."""

    code: str
    name: str
    continent: str


@dataclass(frozen=True, slots=True)
class CountryGroup:
    """A named set of countries that a law or policy refers to as a whole."""

    name: str
    title: str
    citation: str
    members: frozenset[str]
    aliases: tuple[str, ...] = ()
