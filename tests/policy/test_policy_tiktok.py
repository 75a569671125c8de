"""The TikTok 2022 example: US users' data off Alibaba and in the US; EU users' data in the EEA."""

from __future__ import annotations

from pathlib import Path

import pytest

from residency.catalog import load_catalog
from residency.config import load_settings
from residency.policy import ObjectAttrs, evaluate, load_policy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def locations() -> list:  # type: ignore[type-arg]
    settings = load_settings(EXAMPLES / "tiktok-locations.yaml")
    catalog = load_catalog()
    return [catalog.facts_for(cfg) for cfg in settings.locations]


@pytest.fixture(scope="module")
def policy():  # type: ignore[no-untyped-def]
    return load_policy(EXAMPLES / "tiktok-2022.yaml")


def test_locations_file_is_a_residency_config(locations: list) -> None:  # type: ignore[type-arg]
    assert [(f.name, f.provider, f.country, f.vendor_hq) for f in locations] == [
        ("alibaba-ap-southeast-1", "alibaba", "SG", "CN"),
        ("oracle-us-ashburn-1", "oci", "US", "US"),
        ("aws-us-east-1", "aws", "US", "US"),
        ("aws-eu-central-1", "aws", "DE", "US"),
    ]
    settings = load_settings(EXAMPLES / "tiktok-locations.yaml")
    assert all(c.scheme == "fs" for c in settings.locations)
    assert all(c.options["root"].startswith("./residency-data/") for c in settings.locations)


@pytest.mark.parametrize("data_class", ["personal", "personal.health", "biometric", "geolocation"])
def test_us_users_data_in_the_us_off_alibaba_two_providers(
    policy,
    locations,
    data_class: str,  # type: ignore[no-untyped-def]
) -> None:
    d = evaluate(policy, ObjectAttrs(data_class, "US"), locations)
    assert d.ok
    assert d.rule == "us-users-in-us"
    assert d.chosen == ("oracle-us-ashburn-1", "aws-us-east-1")  # Oracle first, then AWS
    reasons = {e.location: e.reason for e in d.exclusions}
    assert (
        "vendor HQ CN (alibaba) denied by rule us-users-in-us" in reasons["alibaba-ap-southeast-1"]
    )
    assert "provider alibaba denied by rule us-users-in-us" in reasons["alibaba-ap-southeast-1"]
    assert reasons["aws-eu-central-1"] == (
        "country DE not allowed by rule us-users-in-us (allowed: US_SOIL)"
    )


def test_us_users_data_is_refused_when_only_alibaba_and_one_us_cloud_remain(
    policy,
    locations,  # type: ignore[no-untyped-def]
) -> None:
    d = evaluate(policy, ObjectAttrs("personal", "US"), [locations[0], locations[2]])
    assert not d.ok
    assert d.chosen == ()
    assert "needs 2 copies in distinct providers" in d.message


@pytest.mark.parametrize("subject", ["DE", "FR", "IE", "EU"])
def test_eu_users_data_stays_in_the_eea(policy, locations, subject: str) -> None:  # type: ignore[no-untyped-def]
    d = evaluate(policy, ObjectAttrs("personal", subject), locations)
    assert d.ok
    assert d.rule == "eea-users-in-eea"
    assert d.allowed == ("aws-eu-central-1",)
    assert d.chosen == ("aws-eu-central-1",)


def test_public_videos_go_anywhere_cheapest(policy, locations) -> None:  # type: ignore[no-untyped-def]
    d = evaluate(policy, ObjectAttrs("public", "US"), locations)
    assert d.ok
    assert d.rule == "public-anywhere"
    assert len(d.allowed) == 4
    assert d.chosen == ("aws-us-east-1",)  # 0.023 < 0.0245 < 0.0255; Alibaba SG price unknown


def test_other_jurisdictions_fall_back_to_default_presets(policy, locations) -> None:  # type: ignore[no-untyped-def]
    d = evaluate(policy, ObjectAttrs("personal", "CN"), locations)
    assert not d.ok
    assert d.rule == "pipl-mainland-only"
