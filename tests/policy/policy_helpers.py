"""Helpers for the policy tests: real catalog facts for named regions, policy files on disk."""

from __future__ import annotations

from pathlib import Path

from residency.catalog import LocationFacts, load_catalog
from residency.config import LocationConfig


def facts(provider: str, region: str, *, country: str | None = None) -> LocationFacts:
    """Facts for `provider/region` from the real catalog; the location is named after both."""
    name = f"{provider}-{region}".replace("_", "-").lower()
    cfg = LocationConfig(name=name, provider=provider, region=region, country=country)
    return load_catalog().facts_for(cfg)


# A spread of real regions that exercises every preset: US and CoC-HQ vendors, CoC countries,
# the EEA, adequate and non-adequate third countries, an own data center, a multi-country region.
WORLD: tuple[LocationFacts, ...] = (
    facts("aws", "us-east-1"),  # US, US vendor
    facts("oci", "us-ashburn-1"),  # US, US vendor
    facts("alibaba", "ap-southeast-1"),  # SG, CN vendor
    facts("alibaba", "cn-hangzhou"),  # CN, CN vendor
    facts("tencent", "eu-frankfurt"),  # DE, CN vendor
    facts("tencent", "eu-moscow"),  # RU, CN vendor
    facts("huawei", "ru-northwest-2"),  # RU, CN vendor
    facts("aws", "eu-central-1"),  # DE, US vendor
    facts("aws", "ap-east-1"),  # HK, US vendor
    facts("aws", "cn-north-1"),  # CN, US vendor
    facts("aws", "ap-northeast-1"),  # JP (GDPR adequate), US vendor
    facts("aws", "af-south-1"),  # ZA, US vendor
    facts("hetzner", "fsn1"),  # DE, DE vendor
    facts("self", "dc-de-1", country="DE"),  # own data center, no vendor
    facts("gcp", "eu"),  # multi-country region
)


def by_name(names: tuple[str, ...] | list[str]) -> list[LocationFacts]:
    index = {f.name: f for f in WORLD}
    return [index[n] for n in names]


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path
