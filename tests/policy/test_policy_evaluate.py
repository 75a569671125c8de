"""Evaluator semantics on hand-built policies: matching, reasons, preferences, replicas."""

from __future__ import annotations

from dataclasses import replace

import pytest
from policy_helpers import WORLD, by_name, facts

from residency.policy import (
    Constraints,
    CountryTerm,
    Match,
    ObjectAttrs,
    Policy,
    Preference,
    Rule,
    evaluate,
    load_policy,
)

COC = CountryTerm(
    spec="@COUNTRIES_OF_CONCERN",
    group="COUNTRIES_OF_CONCERN",
    countries=frozenset({"CN", "HK", "MO", "CU", "IR", "KP", "RU", "VE"}),
)


def term(*codes: str) -> CountryTerm:
    return CountryTerm(spec=",".join(codes), countries=frozenset(codes))


def policy(*rules: Rule, groups: dict[str, frozenset[str]] | None = None) -> Policy:
    return Policy(name="t", rules=rules, groups=groups or {})


def rule(rid: str = "r", match: Match | None = None, **constraints: object) -> Rule:
    return Rule(id=rid, match=match or Match(), constraints=Constraints(**constraints))  # type: ignore[arg-type]


def test_reasons_name_the_rule_and_the_group() -> None:
    p = policy(rule("us-sensitive", deny_countries=(COC,), deny_vendor_hq=(COC,)))
    d = evaluate(p, ObjectAttrs("personal.health", "US"), WORLD)
    reasons = {e.location: e.reason for e in d.exclusions}
    assert reasons["aws-cn-north-1"] == (
        "country CN denied by rule us-sensitive (group COUNTRIES_OF_CONCERN)"
    )
    assert reasons["alibaba-ap-southeast-1"] == (
        "vendor HQ CN (alibaba) denied by rule us-sensitive (group COUNTRIES_OF_CONCERN)"
    )
    assert reasons["alibaba-cn-hangzhou"] == (
        "country CN denied by rule us-sensitive (group COUNTRIES_OF_CONCERN); "
        "vendor HQ CN (alibaba) denied by rule us-sensitive (group COUNTRIES_OF_CONCERN)"
    )
    assert reasons["gcp-eu"] == (
        "multi-country region not allowed by rule us-sensitive "
        "(its countries cannot be checked against the denied countries)"
    )
    assert "self-dc-de-1" in d.allowed  # own data center: no vendor to deny


def test_explicit_codes_need_no_group_and_providers_are_checked() -> None:
    p = policy(
        rule(
            "r",
            deny_countries=(term("US"),),
            allow_providers=("aws", "hetzner"),
            deny_providers=("hetzner",),
        )
    )
    d = evaluate(
        p,
        ObjectAttrs("x"),
        by_name(["aws-us-east-1", "oci-us-ashburn-1", "hetzner-fsn1", "aws-eu-central-1"]),
    )
    reasons = {e.location: e.reason for e in d.exclusions}
    assert reasons["aws-us-east-1"] == "country US denied by rule r"
    assert reasons["oci-us-ashburn-1"] == (
        "country US denied by rule r; provider oci not allowed by rule r (allowed: aws, hetzner)"
    )
    assert reasons["hetzner-fsn1"] == "provider hetzner denied by rule r"
    assert d.chosen == ("aws-eu-central-1",)


def test_first_matching_rule_wins_and_matching_fields() -> None:
    eu = frozenset({"DE", "FR"})
    rules = (
        rule("by-tenant", Match(tenant=("acme-*",)), allow_countries=(term("FR"),)),
        rule(
            "by-bucket",
            Match(bucket=("hr",), data_class=("personal.*",)),
            allow_countries=(term("DE"),),
        ),
        rule(
            "by-subject",
            Match(subject=(CountryTerm(spec="EU", group="EU", countries=eu),)),
            allow_countries=(term("JP"),),
        ),
        rule("fallback"),
    )
    p = policy(*rules, groups={"EU": eu, "EEA": eu | {"NO"}})
    assert evaluate(p, ObjectAttrs("public", tenant="acme-1"), WORLD).rule == "by-tenant"
    assert evaluate(p, ObjectAttrs("personal.hr", bucket="hr"), WORLD).rule == "by-bucket"
    # `personal.*` does not match `personal` itself.
    assert evaluate(p, ObjectAttrs("personal", bucket="hr"), WORLD).rule == "fallback"
    assert evaluate(p, ObjectAttrs("public", subject="FR"), WORLD).rule == "by-subject"
    # A group subject matches when it overlaps the rule's subjects (EEA includes DE, FR).
    assert evaluate(p, ObjectAttrs("public", subject="@eea"), WORLD).rule == "by-subject"
    assert evaluate(p, ObjectAttrs("public", subject="US"), WORLD).rule == "fallback"
    assert evaluate(p, ObjectAttrs("public"), WORLD).rule == "fallback"  # unknown subject


def test_no_matching_rule_denies_with_a_reason_per_location() -> None:
    p = policy(rule("only-public", Match(data_class=("public",))))
    d = evaluate(p, ObjectAttrs("personal", "US"), WORLD[:3])
    assert not d.ok
    assert d.rule is None
    assert d.allowed == ()
    assert d.chosen == ()
    assert [e.location for e in d.exclusions] == [f.name for f in WORLD[:3]]
    assert all("no rule of policy t matches data class personal" in e.reason for e in d.exclusions)


def test_multi_country_region_fails_allow_lists() -> None:
    p = policy(rule("eea", allow_countries=(term("DE", "FR"),)))
    d = evaluate(p, ObjectAttrs("personal"), by_name(["gcp-eu", "hetzner-fsn1"]))
    assert d.exclusions[0].reason == (
        "multi-country region not allowed by rule eea (it allows only DE,FR)"
    )
    assert d.chosen == ("hetzner-fsn1",)


def test_preferences() -> None:
    locs = by_name(
        [
            "aws-us-east-1",
            "alibaba-cn-hangzhou",
            "aws-eu-central-1",
            "self-dc-de-1",
            "hetzner-fsn1",
            "aws-ap-northeast-1",
        ]
    )
    cheapest = evaluate(policy(rule(prefer=Preference(kind="cheapest"))), ObjectAttrs("x"), locs)
    prices = [f.storage_usd_per_gb_month for f in by_name(cheapest.allowed)]
    assert prices[-1] is None  # own data center: no catalog price, last
    assert prices[:-1] == sorted(p for p in prices if p is not None)
    nearest = evaluate(
        policy(rule(prefer=Preference(kind="nearest", country="DE", continent="Europe"))),
        ObjectAttrs("x"),
        locs,
    )
    assert nearest.allowed[:3] == ("aws-eu-central-1", "self-dc-de-1", "hetzner-fsn1")
    assert nearest.allowed[3:] == ("aws-us-east-1", "alibaba-cn-hangzhou", "aws-ap-northeast-1")
    explicit = evaluate(
        policy(
            rule(
                prefer=Preference(
                    kind="explicit", locations=("hetzner-fsn1", "nope", "aws-us-east-1")
                )
            )
        ),
        ObjectAttrs("x"),
        locs,
    )
    assert explicit.allowed[:2] == ("hetzner-fsn1", "aws-us-east-1")
    assert explicit.allowed[2:] == (
        "alibaba-cn-hangzhou",
        "aws-eu-central-1",
        "self-dc-de-1",
        "aws-ap-northeast-1",
    )
    configured = evaluate(policy(rule()), ObjectAttrs("x"), locs)
    assert configured.allowed == tuple(f.name for f in locs)


@pytest.mark.parametrize(
    ("spread", "expected"),
    [
        ("location", ("aws-us-east-1", "aws-us-east-1-copy", "aws-eu-central-1")),
        ("region", ("aws-us-east-1", "aws-eu-central-1", "hetzner-fsn1")),
        ("provider", ("aws-us-east-1", "hetzner-fsn1", "self-dc-de-1")),
        ("country", ("aws-us-east-1", "aws-eu-central-1", "aws-ap-northeast-1")),
    ],
)
def test_replicas_spread(spread: str, expected: tuple[str, ...]) -> None:
    us = facts("aws", "us-east-1")
    locs = [
        us,
        replace(us, name="aws-us-east-1-copy"),
        *by_name(
            ["aws-eu-central-1", "hetzner-fsn1", "self-dc-de-1", "gcp-eu", "aws-ap-northeast-1"]
        ),
    ]
    d = evaluate(policy(rule(replicas=3, spread=spread)), ObjectAttrs("x"), locs)
    assert d.ok
    assert d.chosen == expected
    assert "3 copies in distinct" in d.message


def test_not_enough_locations_for_replicas_is_a_decision_not_an_exception() -> None:
    p = policy(
        rule("two-countries", allow_countries=(term("DE", "US"),), replicas=3, spread="country")
    )
    d = evaluate(
        p,
        ObjectAttrs("x"),
        by_name(["aws-us-east-1", "aws-eu-central-1", "hetzner-fsn1", "aws-ap-northeast-1"]),
    )
    assert not d.ok
    assert d.chosen == ()
    assert d.allowed == ("aws-us-east-1", "aws-eu-central-1", "hetzner-fsn1")
    assert d.message == (
        "Rule two-countries of policy t applies to data class x (unknown subject) and needs 3 "
        "copies in distinct countries, but the allowed locations (aws-us-east-1, "
        "aws-eu-central-1, hetzner-fsn1) span only 2 distinct countries (DE, US)."
    )


def test_no_candidates() -> None:
    d = evaluate(policy(rule()), ObjectAttrs("x"), [])
    assert not d.ok
    assert "no locations are configured" in d.message


def test_decision_to_dict_is_json_ready() -> None:
    import json

    d = evaluate(load_policy("preset:default"), ObjectAttrs("personal.health", "US"), WORLD)
    data = json.loads(json.dumps(d.to_dict()))
    assert data["ok"] is True
    assert data["rule"] == "doj-bulk-sensitive"
    assert data["chosen"] == list(d.chosen)
    assert {"location", "reason"} == set(data["exclusions"][0])
    assert data["rule_source"].startswith("residency/policy/presets/us-doj-bulk-data.yaml:")
    assert "28 CFR" in data["citation"]
