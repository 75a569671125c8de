"""The facts about one configured location that the policy engine reasons about."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LocationFacts:
    """Where a location's bytes sit and who runs it, resolved from the catalog.

    `country` is None for multi-country regions (e.g. GCS `eu`): policies that allow-list
    countries exclude them, deny lists cannot prove them safe, so they are excluded there too.
    `vendor_hq` is None for the company's own data centers (`provider: self`).
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
