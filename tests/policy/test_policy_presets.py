"""Each preset, against real catalog regions: what law says must (not) happen does (not)."""

from __future__ import annotations

import pytest
from policy_helpers import WORLD, by_name

from residency.catalog import load_catalog
from residency.policy import ObjectAttrs, evaluate, list_presets, load_policy, preset_names

CATALOG = load_catalog()
COC = CATALOG.group("COUNTRIES_OF_CONCERN")
EEA_OR_ADEQUATE = CATALOG.group("EEA") | CATALOG.group("GDPR_ADEQUATE")
DOJ_CLASSES = [
    "genomic",
    "biometric",
    "geolocation",
    "personal.health",
    "personal.financial",
    "personal.identifiers",
    "government",
]
PERSONAL_CLASSES = ["personal", "personal.health", "genomic", "biometric", "geolocation"]


def _where(names: tuple[str, ...]) -> list[tuple[str | None, str | None, str]]:
    return [(f.country, f.vendor_hq, f.provider) for f in by_name(names)]


def test_every_preset_loads_and_cites_its_law() -> None:
    presets = {p.name: p for p in list_presets()}
    assert set(presets) == {
        "us-doj-bulk-data",
        "us-clean-cloud",
        "eu-gdpr",
        "cn-pipl",
        "ru-242fz",
        "catch-all",
        "default",
    }
    assert sorted(presets) == preset_names()
    for p in presets.values():
        assert p.description, p.name
        assert p.citation, p.name
        for rule in p.rules:
            assert rule.citation, (p.name, rule.id)
            assert rule.description, (p.name, rule.id)


@pytest.mark.parametrize("preset", ["us-doj-bulk-data", "default"])
@pytest.mark.parametrize("data_class", DOJ_CLASSES)
def test_us_sensitive_data_never_in_or_with_a_country_of_concern(
    preset: str, data_class: str
) -> None:
    d = evaluate(load_policy(f"preset:{preset}"), ObjectAttrs(data_class, "US"), WORLD)
    assert d.ok
    assert d.rule is not None
    assert d.rule.startswith("doj-")
    for country, hq, provider in _where(d.allowed):
        assert country is not None
        assert country not in COC
        assert hq not in COC
        assert provider not in {"alibaba", "tencent", "huawei"}
    reasons = {e.location: e.reason for e in d.exclusions}
    assert "country CN denied by rule" in reasons["aws-cn-north-1"]
    assert "(group COUNTRIES_OF_CONCERN)" in reasons["aws-cn-north-1"]
    assert "country HK denied" in reasons["aws-ap-east-1"]
    assert "vendor HQ CN (alibaba) denied by rule" in reasons["alibaba-ap-southeast-1"]
    assert "vendor HQ CN (tencent) denied by rule" in reasons["tencent-eu-frankfurt"]
    assert reasons["gcp-eu"].startswith("multi-country region not allowed by rule")
    # Not a CoC, not a CoC vendor: allowed, however far away.
    assert {"aws-us-east-1", "aws-eu-central-1", "aws-af-south-1", "self-dc-de-1"} <= set(d.allowed)


def test_us_health_data_with_only_coc_options_is_refused_with_reasons() -> None:
    candidates = by_name(["alibaba-ap-southeast-1", "aws-cn-north-1", "tencent-eu-frankfurt"])
    d = evaluate(load_policy("preset:default"), ObjectAttrs("personal.health", "US"), candidates)
    assert not d.ok
    assert d.chosen == ()
    assert d.allowed == ()
    assert d.rule == "doj-bulk-sensitive"
    assert "doj-bulk-sensitive" in d.message
    assert "alibaba-ap-southeast-1" in d.message
    assert len(d.exclusions) == 3


def test_us_personal_data_is_kept_off_coc_vendors_but_not_off_coc_countries() -> None:
    d = evaluate(load_policy("preset:us-clean-cloud"), ObjectAttrs("personal", "US"), WORLD)
    assert d.ok
    assert d.rule == "clean-cloud-us-personal"
    assert all(hq not in COC for _, hq, _ in _where(d.allowed))
    # Clean Cloud is about vendors: a US vendor's Beijing region is not excluded by it.
    assert "aws-cn-north-1" in d.allowed


@pytest.mark.parametrize("preset", ["eu-gdpr", "default"])
@pytest.mark.parametrize("subject", ["DE", "FR", "NO", "EU", "EEA"])
@pytest.mark.parametrize("data_class", PERSONAL_CLASSES)
def test_eea_personal_data_only_in_eea_or_adequate_countries(
    preset: str, subject: str, data_class: str
) -> None:
    d = evaluate(load_policy(f"preset:{preset}"), ObjectAttrs(data_class, subject), WORLD)
    assert d.ok
    assert d.rule == "gdpr-eea-or-adequate"
    for country, _, _ in _where(d.allowed):
        assert country in EEA_OR_ADEQUATE
    assert "aws-ap-northeast-1" in d.allowed  # Japan: adequacy decision
    reasons = {e.location: e.reason for e in d.exclusions}
    assert reasons["aws-us-east-1"] == (
        "country US not allowed by rule gdpr-eea-or-adequate (allowed: EEA, GDPR_ADEQUATE)"
    )
    assert "country SG not allowed" in reasons["alibaba-ap-southeast-1"]
    assert reasons["gcp-eu"].startswith("multi-country region not allowed")


@pytest.mark.parametrize("preset", ["cn-pipl", "default"])
@pytest.mark.parametrize("data_class", PERSONAL_CLASSES)
def test_prc_personal_information_only_in_mainland_china(preset: str, data_class: str) -> None:
    d = evaluate(load_policy(f"preset:{preset}"), ObjectAttrs(data_class, "CN"), WORLD)
    assert d.ok
    assert d.rule == "pipl-mainland-only"
    assert set(d.allowed) == {"alibaba-cn-hangzhou", "aws-cn-north-1"}
    reasons = {e.location: e.reason for e in d.exclusions}
    assert "country HK not allowed by rule pipl-mainland-only" in reasons["aws-ap-east-1"]


@pytest.mark.parametrize("preset", ["ru-242fz", "default"])
def test_russian_personal_data_only_in_russia(preset: str) -> None:
    d = evaluate(load_policy(f"preset:{preset}"), ObjectAttrs("personal", "RU"), WORLD)
    assert d.ok
    assert d.rule == "ru-personal-data-in-russia"
    assert set(d.allowed) == {"tencent-eu-moscow", "huawei-ru-northwest-2"}


@pytest.mark.parametrize("data_class", ["public", "unclassified"])
@pytest.mark.parametrize("subject", ["US", "CN", "DE", "RU", None])
def test_public_and_unclassified_data_anywhere_cheapest_first(
    data_class: str, subject: str | None
) -> None:
    d = evaluate(load_policy("preset:default"), ObjectAttrs(data_class, subject), WORLD)
    assert d.ok
    assert d.rule == "public-anywhere"
    assert set(d.allowed) == {f.name for f in WORLD}
    assert d.exclusions == ()
    prices = [f.storage_usd_per_gb_month for f in by_name(d.allowed)]
    known = [p for p in prices if p is not None]
    assert known == sorted(known)
    assert prices[: len(known)] == known  # unknown prices last
    cheapest = min(known)
    assert by_name(d.chosen)[0].storage_usd_per_gb_month == cheapest


def test_unmatched_data_goes_to_the_catch_all_in_default() -> None:
    d = evaluate(load_policy("preset:default"), ObjectAttrs("personal", "JP"), WORLD)
    assert d.ok
    assert d.rule == "anything-anywhere"


def test_a_law_preset_alone_denies_what_it_does_not_cover() -> None:
    d = evaluate(load_policy("preset:eu-gdpr"), ObjectAttrs("public", "DE"), WORLD)
    assert not d.ok
    assert d.rule is None
    assert d.chosen == ()
    assert len(d.exclusions) == len(WORLD)
    assert "denies by default" in d.message


def test_default_composition_order_is_documented_order() -> None:
    p = load_policy("preset:default")
    assert [r.id for r in p.rules] == [
        "public-anywhere",
        "doj-government-related",
        "doj-omic",
        "doj-bulk-sensitive",
        "clean-cloud-us-personal",
        "gdpr-eea-or-adequate",
        "pipl-mainland-only",
        "ru-personal-data-in-russia",
        "anything-anywhere",
    ]
    assert p.rules[0].source == "residency/policy/presets/default.yaml:13"
