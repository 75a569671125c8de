"""The facts about one configured location that the policy engine reasons about."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LocationFacts:
    """Where a location's bytes sit and who runs it, resolved from the catalog.

    `country` is None for multi-country regions (e.g. GCS `eu`); `countries` is where the bytes
    may sit: `{country}` for a single-country region, the member set of a multi-country region,
    empty when nobody knows (R2 location hints), so such a location can never prove a country.

    `vendor_hq` is the brand's HQ (None for the company's own data centers, `provider: self`).
    Laws also look at who runs the region and who owns that entity (28 CFR 202: 50 %, PADFA:
    20 %), so `operator` is the entity that runs it (the provider unless a local partner does,
    e.g. Sinnet for AWS Beijing), `operator_hq` its HQ, `parent` its ultimate parent, `parent_hq`
    the parent's HQ and `parent_share` the percent of the operator the parent owns (None =
    unknown). The defaults keep constructors that predate these fields working.
    """

    name: str
    provider: str
    provider_name: str
    vendor_hq: str | None
    region: str
    city: str
    country: str | None
    continent: str
    storage_usd_per_gb_month: float | None = None
    egress_usd_per_gb: float | None = None
    countries: frozenset[str] = frozenset()
    operator: str = ""
    operator_hq: str | None = None
    parent: str = ""
    parent_hq: str | None = None
    parent_share: int | None = None
