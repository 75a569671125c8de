"""Out-of-the-box locations: what `residency serve` and `policy explain` use with no config.

Six local directories that stand for real regions, chosen to exercise every default rule:
two US clouds, a Chinese cloud outside China, a Chinese cloud in the EU, a US cloud in the EU
and an own data center in Germany. Bytes stay on local disk under `data_dir/locations/`.
"""

from __future__ import annotations

from pathlib import Path

from residency.config import LocationConfig

# (name, provider, region, country, city): country/city only for the own data center.
_DEFAULTS: tuple[tuple[str, str, str, str | None, str | None], ...] = (
    ("aws-us-east-1", "aws", "us-east-1", None, None),
    ("oci-us-ashburn-1", "oci", "us-ashburn-1", None, None),
    ("alibaba-ap-southeast-1", "alibaba", "ap-southeast-1", None, None),
    ("tencent-eu-frankfurt", "tencent", "eu-frankfurt", None, None),
    ("aws-eu-central-1", "aws", "eu-central-1", None, None),
    ("own-dc-de", "self", "dc-de-1", "DE", "Frankfurt"),
)


def default_locations(data_dir: Path = Path("./residency-data")) -> list[LocationConfig]:
    """One `fs` location per default region, each in its own directory under `data_dir`."""
    return [
        LocationConfig(
            name=name,
            provider=provider,
            region=region,
            scheme="fs",
            options={"root": str(data_dir / "locations" / name)},
            country=country,
            city=city,
        )
        for name, provider, region, country, city in _DEFAULTS
    ]
