"""Queries over the catalog: look up providers and regions, expand groups, resolve locations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from residency.catalog.facts import LocationFacts
from residency.catalog.model import (
    CatalogError,
    Country,
    CountryGroup,
    Provider,
    Region,
)
from residency.catalog.suggest import close_matches, did_you_mean

if TYPE_CHECKING:
    from residency.config import LocationConfig


class Catalog:
    """Providers, regions, countries and country groups, parsed once and then only read.

    The collections are shared by every caller in the process (see `load_catalog`): treat them
    as read-only.
    """

    def __init__(
        self,
        providers: Mapping[str, Provider],
        regions: Sequence[Region],
        countries: Mapping[str, Country],
        groups: Mapping[str, CountryGroup],
    ) -> None:
        self.providers: dict[str, Provider] = dict(providers)
        self.regions: list[Region] = list(regions)
        self.countries: dict[str, Country] = dict(countries)
        self.group_info: dict[str, CountryGroup] = dict(groups)
        self.groups: dict[str, frozenset[str]] = {n: g.members for n, g in groups.items()}
        self._regions_by_key = {(r.provider, r.id): r for r in self.regions}
        self._group_names = {n: n for n in self.groups}
        for group in groups.values():
            for alias in group.aliases:
                self._group_names[alias] = group.name

    # -- providers and regions ------------------------------------------------------------------

    def provider(self, provider_id: str) -> Provider:
        """The provider with this id (`aws`, `alibaba`, `self`, …)."""
        found = self.providers.get(provider_id)
        if found is None:
            raise CatalogError(
                f"unknown provider {provider_id!r}"
                + (
                    did_you_mean(provider_id, self.providers)
                    or "; see `residency catalog providers`"
                )
            )
        return found

    def region(self, provider: str, region_id: str) -> Region:
        """The region `region_id` of `provider`, e.g. `region("oci", "us-ashburn-1")`."""
        self.provider(provider)
        found = self._regions_by_key.get((provider, region_id))
        if found is not None:
            return found
        own = [r.id for r in self.regions if r.provider == provider]
        message = f"unknown region {region_id!r} for provider {provider}"
        hint = did_you_mean(region_id, own)
        if not hint:
            elsewhere = sorted({r.provider for r in self.regions if r.id == region_id})
            if elsewhere:
                hint = f"; {region_id!r} is a region of {', '.join(elsewhere)}"
            else:
                hint = f"; see `residency catalog regions --provider {provider}`"
        raise CatalogError(message + hint)

    def find_regions(
        self,
        provider: str | None = None,
        country: str | None = None,
        group: str | None = None,
    ) -> list[Region]:
        """Regions matching every given filter, in catalog order.

        `group` takes a group name (`EU`, `@EEA`). A region matches only where every country its
        bytes may sit in matches: GCS `eu` (EU member states) is in group EU but in no single
        country, and a region whose members nobody publishes (R2 hints) never matches.
        """
        if provider is not None:
            self.provider(provider)
        code = self.country(country).code if country is not None else None
        members = self.group(group) if group is not None else None
        return [
            r
            for r in self.regions
            if (provider is None or r.provider == provider)
            and (code is None or r.countries == {code})
            and (members is None or (bool(r.countries) and r.countries <= members))
        ]

    # -- countries and groups -------------------------------------------------------------------

    def country(self, code: str) -> Country:
        """The country for an ISO 3166-1 alpha-2 code, case-insensitive (`de` → Germany)."""
        found = self.countries.get(code.strip().upper())
        if found is None:
            raise CatalogError(f"unknown country code {code!r}" + self._country_hint(code))
        return found

    def country_name(self, code: str) -> str:
        """English short name for an ISO code: `country_name("KR")` → `"South Korea"`."""
        return self.country(code).name

    def group(self, name: str) -> frozenset[str]:
        """Members of a built-in group; `name` is case-insensitive and may start with '@'."""
        return self.groups[self._group_name(name)]

    def group_details(self, name: str) -> CountryGroup:
        """The group's title, citation and members (same lookup rules as `group`)."""
        return self.group_info[self._group_name(name)]

    def _group_name(self, name: str) -> str:
        bare = name.strip().removeprefix("@")
        canonical = self._group_names.get(bare.upper())
        if canonical is None:
            raise CatalogError(
                f"unknown country group {name!r}"
                + (did_you_mean(bare, self.groups) or self._groups_hint())
            )
        return canonical

    def expand(self, spec: str) -> frozenset[str]:
        """Countries named by `spec`: an ISO code (`US`) or a group (`EU`, `@countries_of_concern`).

        A bare name is a group if one has that name, else a country code; with a leading '@' it
        must be a group.
        """
        text = spec.strip()
        name = text.removeprefix("@").upper()
        canonical = self._group_names.get(name)
        if canonical is not None:
            return self.groups[canonical]
        if text.startswith("@"):
            extra = f"; {name} is a country: write it without '@'" if name in self.countries else ""
            raise CatalogError(
                f"unknown country group {spec!r}"
                + (extra or did_you_mean(name, self.groups) or self._groups_hint())
            )
        if name in self.countries:
            return frozenset({name})
        hint = did_you_mean(name, self.groups) or self._country_hint(text)
        raise CatalogError(f"unknown country or group {spec!r}" + (hint or self._groups_hint()))

    # -- configured locations -------------------------------------------------------------------

    def facts_for(self, cfg: LocationConfig) -> LocationFacts:
        """The facts the policy engine reasons about for one configured location.

        A cloud location takes country, member countries, continent, vendor HQ, operator and
        owner, and prices from its region; a `country:` in the config must agree with the
        catalog (it cannot move a region). Provider `self` is an own data center: its country
        comes from the config and is required, its region id is the operator's own label, it
        has no vendor, and the operator runs it itself (every HQ and the share None).
        """
        try:
            provider = self.provider(cfg.provider)
            if provider.is_self:
                return self._own_facts(cfg, provider)
            region = self.region(provider.id, cfg.region)
            if cfg.country is not None and cfg.country.upper() != region.country:
                where = (
                    f"is in {region.country}"
                    if region.country
                    else "spans several countries and cannot be pinned to one"
                )
                raise CatalogError(
                    f"country {cfg.country} conflicts with the catalog: "
                    f"{provider.id} {region.id} {where}; remove `country:`"
                )
        except CatalogError as exc:
            raise CatalogError(f"location {cfg.name!r}: {exc}") from None
        return LocationFacts(
            name=cfg.name,
            provider=provider.id,
            provider_name=provider.name,
            vendor_hq=provider.hq_country,
            region=region.id,
            city=cfg.city or region.city,
            country=region.country,
            continent=region.continent,
            storage_usd_per_gb_month=region.storage_usd_per_gb_month,
            egress_usd_per_gb=region.egress_usd_per_gb,
            countries=region.countries,
            operator=region.operator,
            operator_hq=region.operator_hq,
            parent=region.parent,
            parent_hq=region.parent_hq,
            parent_share=region.parent_share,
        )

    def _own_facts(self, cfg: LocationConfig, provider: Provider) -> LocationFacts:
        if cfg.country is None:
            raise CatalogError(
                "provider 'self' (own data center) needs `country:` set to the ISO code of "
                "the country where the hardware sits, e.g. country: DE"
            )
        country = self.country(cfg.country)
        return LocationFacts(
            name=cfg.name,
            provider=provider.id,
            provider_name=provider.name,
            vendor_hq=None,
            region=cfg.region,
            city=cfg.city or "",
            country=country.code,
            continent=country.continent,
            countries=frozenset({country.code}),
            operator=provider.name,
        )

    # -- hints ----------------------------------------------------------------------------------

    def _country_hint(self, text: str) -> str:
        """Suggest codes by code and by name, so `Germany` or `GE` both lead somewhere."""
        by_name = {c.name: c.code for c in self.countries.values()}
        names = close_matches(text.strip(), by_name)
        if names:
            listed = " or ".join(f"{by_name[n]} ({n})" for n in names)
            return f"; did you mean {listed}?"
        return did_you_mean(text.strip().upper(), self.countries) or (
            "; use an ISO 3166-1 alpha-2 code such as US or DE"
        )

    def _groups_hint(self) -> str:
        return f"; known groups: {', '.join(sorted(self.groups))}"
