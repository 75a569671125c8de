"""The TikTok examples as reported: Project Texas and Clover (2022-23), the US joint venture (2026).

Every law of preset:default still applies to the data it covers; the examples' own rules only
narrow. US users' data: in the US, two providers, Oracle first, never Alibaba (nor any vendor
run or controlled from a country of concern). EU users' data: in the EEA, nearest Ireland.
Public videos: anywhere, cheapest. PRC users' data: PIPL, mainland China only.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from policy_helpers import facts

from residency.catalog import LocationFacts, load_catalog
from residency.config import load_settings
from residency.policy import Decision, ObjectAttrs, Policy, evaluate, load_policy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CATALOG = load_catalog()
EEA = CATALOG.group("EEA")
US_PERSONAL = ["personal", "personal.health", "personal.identifiers", "biometric", "geolocation"]


@cache
def locations() -> tuple[LocationFacts, ...]:
    settings = load_settings(EXAMPLES / "tiktok-locations.yaml")
    return tuple(CATALOG.facts_for(cfg) for cfg in settings.locations)


@cache
def texas() -> Policy:
    return load_policy(EXAMPLES / "tiktok-2022.yaml")


@cache
def usds() -> Policy:
    return load_policy(EXAMPLES / "tiktok-usds-2026.yaml")


def decide(
    policy: Policy,
    data_class: str,
    subject: str | None,
    where: tuple[LocationFacts, ...] | list[LocationFacts] | None = None,
) -> Decision:
    return evaluate(
        policy, ObjectAttrs(data_class, subject), locations() if where is None else where
    )


def reasons(d: Decision) -> dict[str, str]:
    return {e.location: e.reason for e in d.exclusions}


def test_locations_file_is_a_residency_config() -> None:
    assert [(f.name, f.provider, f.country) for f in locations()] == [
        ("alibaba-ap-southeast-1", "alibaba", "SG"),
        ("oracle-us-ashburn-1", "oci", "US"),
        ("aws-us-east-1", "aws", "US"),
        ("aws-eu-central-1", "aws", "DE"),
    ]
    alibaba = locations()[0]
    # Run by a Singapore company that Alibaba Group (HQ CN) controls: the law looks through it.
    assert (alibaba.operator_hq, alibaba.parent_hq) == ("SG", "CN")
    settings = load_settings(EXAMPLES / "tiktok-locations.yaml")
    assert all(c.scheme == "fs" for c in settings.locations)
    assert all(c.options["root"].startswith("./residency-data/") for c in settings.locations)


def test_both_examples_extend_default_and_only_add_rules() -> None:
    default = load_policy("preset:default")
    for p, own in [
        (texas(), ["project-texas", "project-clover"]),
        (usds(), ["us-users-oracle-us-only"]),
    ]:
        assert p.extends == ("preset:default",)
        assert [r.id for r in p.rules] == [*own, *(r.id for r in default.rules)]
        assert p.placement == default.placement
        assert p.exceptions == ()
        for r in p.rules[: len(own)]:
            assert r.citation, r.id
            assert r.description, r.id


# -- Project Texas ----------------------------------------------------------------------------


@pytest.mark.parametrize("data_class", US_PERSONAL)
def test_us_users_data_in_the_us_on_two_providers_oracle_first(data_class: str) -> None:
    d = decide(texas(), data_class, "US")
    assert d.ok
    assert d.rule_ids[0] == "project-texas"
    assert "clean-cloud-us-personal" in d.rule_ids  # the law still applies alongside
    assert d.replicas == 2
    assert d.spreads == ("provider",)
    assert d.chosen == ("oracle-us-ashburn-1", "aws-us-east-1")
    why = reasons(d)
    alibaba = why["alibaba-ap-southeast-1"]
    assert "country SG not allowed by rule project-texas (allowed: US_SOIL)" in alibaba
    assert "provider alibaba denied by rule project-texas" in alibaba
    assert "owned by Alibaba Group Holding Ltd. (HQ CN)" in alibaba
    assert why["aws-eu-central-1"] == (
        "country DE not allowed by rule project-texas (allowed: US_SOIL)"
    )
    assert d.message.endswith(
        "2 copies in distinct providers on oracle-us-ashburn-1, aws-us-east-1 "
        "(preferring oracle-us-ashburn-1)."
    )


def test_us_users_data_never_on_alibaba_even_in_the_us() -> None:
    # Alibaba's US region is on US soil, but it is Alibaba: denied by name and by control.
    alibaba_us = facts("alibaba", "us-east-1")
    assert alibaba_us.country == "US"
    d = decide(texas(), "personal", "US", [alibaba_us, *locations()])
    assert d.ok
    assert "alibaba-us-east-1" not in d.allowed
    why = reasons(d)["alibaba-us-east-1"]
    assert "provider alibaba denied by rule project-texas" in why
    assert "control threshold of rule project-texas" in why
    assert "control threshold of rule clean-cloud-us-personal" in why
    assert "country US" not in why
    assert d.chosen == ("oracle-us-ashburn-1", "aws-us-east-1")


def test_us_users_data_is_refused_when_only_one_us_provider_remains() -> None:
    alibaba, _, aws, _ = locations()
    d = decide(texas(), "personal", "US", [alibaba, aws])
    assert not d.ok
    assert d.refusal == "replicas"
    assert d.chosen == ()
    assert d.allowed == ("aws-us-east-1",)
    assert "needs 2 copies in distinct providers" in d.message


def test_us_territories_are_us_soil() -> None:
    d = decide(texas(), "personal", "PR")
    assert "project-texas" in d.rule_ids
    assert d.chosen == ("oracle-us-ashburn-1", "aws-us-east-1")


# -- Project Clover ---------------------------------------------------------------------------


@pytest.mark.parametrize("subject", ["DE", "FR", "IE", "NO", "EU", "EEA"])
def test_eu_users_data_stays_in_the_eea(subject: str) -> None:
    d = decide(texas(), "personal", subject)
    assert d.ok
    assert d.rule_ids == ("project-clover", "gdpr-eea-or-adequate")
    assert d.allowed == ("aws-eu-central-1",)
    assert d.chosen == ("aws-eu-central-1",)
    assert reasons(d)["aws-us-east-1"].startswith(
        "country US not allowed by rule project-clover (allowed: EEA)"
    )


def test_eu_users_data_prefers_ireland_and_never_a_vendor_of_concern() -> None:
    where = [
        facts("aws", "eu-central-1"),  # DE
        facts("alibaba", "eu-central-1"),  # DE, controlled from CN
        facts("gcp", "eu"),  # every member in the EU
        facts("aws", "ap-northeast-1"),  # JP: GDPR-adequate, but not EEA
        facts("aws", "eu-north-1"),  # SE
        facts("aws", "eu-west-1"),  # IE
    ]
    d = decide(texas(), "personal", "FR", where)
    assert d.ok
    assert d.chosen == ("aws-eu-west-1",)
    assert d.allowed[0] == "aws-eu-west-1"
    assert set(d.allowed) == {"aws-eu-central-1", "gcp-eu", "aws-eu-north-1", "aws-eu-west-1"}
    why = reasons(d)
    assert "control threshold of rule project-clover" in why["alibaba-eu-central-1"]
    assert "gdpr" not in why["alibaba-eu-central-1"]  # GDPR alone would allow Frankfurt
    assert (
        why["aws-ap-northeast-1"] == "country JP not allowed by rule project-clover (allowed: EEA)"
    )
    for f in where:
        if f.name in d.allowed:
            assert (f.countries or {f.country}) <= EEA


# -- everything else follows the laws of preset:default ---------------------------------------


@pytest.mark.parametrize("subject", ["US", "DE", "CN", None])
def test_public_videos_go_anywhere_cheapest(subject: str | None) -> None:
    d = decide(texas(), "public", subject)
    assert d.ok
    assert d.unrestricted
    assert d.rule is None
    assert d.allowed == (
        "aws-us-east-1",  # 0.023
        "aws-eu-central-1",  # 0.0245
        "oracle-us-ashburn-1",  # 0.0255
        "alibaba-ap-southeast-1",  # no catalog price: last
    )
    assert d.chosen == ("aws-us-east-1",)


def test_prc_users_data_follows_pipl_and_is_refused_without_a_mainland_location() -> None:
    d = decide(texas(), "personal", "CN")
    assert not d.ok
    assert d.refusal == "no-location"
    assert d.rule_ids == ("pipl-mainland-only",)
    assert "pipl-mainland-only" in d.message
    assert "it allows none of the 4 configured locations" in d.message
    for e in d.exclusions:
        assert "not allowed by rule pipl-mainland-only (allowed: CHINA_MAINLAND)" in e.reason
    mainland = decide(texas(), "personal", "CN", [*locations(), facts("alibaba", "cn-hangzhou")])
    assert mainland.chosen == ("alibaba-cn-hangzhou",)


def test_a_user_of_two_jurisdictions_gets_both_projects_and_is_refused_naming_them() -> None:
    d = decide(texas(), "personal", "US,DE")
    assert not d.ok
    assert d.refusal == "no-location"
    assert {"project-texas", "project-clover"} <= set(d.rule_ids)
    assert "project-texas allows only US_SOIL" in d.message
    assert "project-clover allows only EEA" in d.message


def test_users_no_rule_protects_are_unrestricted() -> None:
    d = decide(texas(), "personal", "JP")
    assert d.ok
    assert d.unrestricted
    assert d.chosen == ("aws-us-east-1",)


# -- the 2026 US joint venture ----------------------------------------------------------------


@pytest.mark.parametrize("data_class", [*US_PERSONAL, "genomic", "government"])
def test_2026_us_users_data_only_in_oracles_us_cloud(data_class: str) -> None:
    oci_frankfurt = facts("oci", "eu-frankfurt-1")
    d = decide(usds(), data_class, "US", [*locations(), oci_frankfurt])
    assert d.ok
    assert d.rule_ids[0] == "us-users-oracle-us-only"
    assert d.allowed == ("oracle-us-ashburn-1",)
    assert d.chosen == ("oracle-us-ashburn-1",)
    why = reasons(d)
    assert why["aws-us-east-1"] == (
        "provider aws not allowed by rule us-users-oracle-us-only (allowed: oci)"
    )
    assert why["oci-eu-frankfurt-1"] == (
        "country DE not allowed by rule us-users-oracle-us-only (allowed: US)"
    )
    assert "provider alibaba not allowed" in why["alibaba-ap-southeast-1"]


def test_2026_other_users_follow_the_default_laws() -> None:
    eu = decide(usds(), "personal", "DE")
    assert eu.rule_ids == ("gdpr-eea-or-adequate",)
    assert eu.allowed == ("aws-eu-central-1",)
    public = decide(usds(), "public", "US")
    assert public.unrestricted
    assert public.chosen == ("aws-us-east-1",)
    cn = decide(usds(), "personal", "CN")
    assert not cn.ok
    assert cn.rule_ids == ("pipl-mainland-only",)
