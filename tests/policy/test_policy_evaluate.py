"""Evaluator semantics on hand-built policies: scope, intersection, reasons, unknowns, replicas."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from policy_helpers import WORLD, by_name, facts

from residency.policy import (
    Constraints,
    CountryTerm,
    ObjectAttrs,
    Policy,
    PolicyException,
    Preference,
    Rule,
    Scope,
    evaluate,
    load_policy,
)

COC = CountryTerm(
    spec="@COUNTRIES_OF_CONCERN",
    group="COUNTRIES_OF_CONCERN",
    countries=frozenset({"CN", "HK", "MO", "CU", "IR", "KP", "RU", "VE"}),
)
EU = frozenset({"DE", "FR"})


def term(*codes: str) -> CountryTerm:
    return CountryTerm(spec=",".join(codes), countries=frozenset(codes))


def policy(*rules: Rule, **fields: object) -> Policy:
    groups = {"EU": EU, "EEA": EU | {"NO"}}
    return Policy(name="t", rules=rules, groups=groups, **fields)  # type: ignore[arg-type]


def rule(rid: str = "r", scope: Scope | None = None, **constraints: object) -> Rule:
    return Rule(id=rid, scope=scope or Scope(), constraints=Constraints(**constraints))  # type: ignore[arg-type]


def test_reasons_name_the_rule_and_the_group() -> None:
    p = policy(rule("us-sensitive", deny_countries=(COC,), deny_vendor_hq=(COC,)))
    d = evaluate(p, ObjectAttrs("personal.health", "US"), WORLD)
    reasons = {e.location: e.reason for e in d.exclusions}
    # Alibaba's Singapore region is run by a Singapore subsidiary its Chinese parent controls.
    assert reasons["alibaba-ap-southeast-1"] == (
        "operator Alibaba Cloud (Singapore) Private Limited is 100% owned by Alibaba Group "
        "Holding Ltd. (HQ CN), at or above the 50% control threshold of rule us-sensitive "
        "(group COUNTRIES_OF_CONCERN)"
    )
    assert reasons["alibaba-cn-hangzhou"] == (
        "country CN denied by rule us-sensitive (group COUNTRIES_OF_CONCERN); "
        "vendor HQ CN (alibaba) denied by rule us-sensitive (group COUNTRIES_OF_CONCERN)"
    )
    assert reasons["aws-cn-north-1"].startswith(
        "country CN denied by rule us-sensitive (group COUNTRIES_OF_CONCERN)"
    )
    assert "self-dc-de-1" in d.allowed  # own data center: no vendor to deny
    assert d.rule == "us-sensitive"


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
        ObjectAttrs("public"),
        by_name(["aws-us-east-1", "oci-us-ashburn-1", "hetzner-fsn1", "aws-eu-central-1"]),
    )
    reasons = {e.location: e.reason for e in d.exclusions}
    assert reasons["aws-us-east-1"] == "country US denied by rule r"
    assert reasons["oci-us-ashburn-1"] == (
        "country US denied by rule r; provider oci not allowed by rule r (allowed: aws, hetzner)"
    )
    assert reasons["hetzner-fsn1"] == "provider hetzner denied by rule r"
    assert d.chosen == ("aws-eu-central-1",)


def test_every_rule_in_scope_applies_and_the_allowed_set_is_the_intersection() -> None:
    p = policy(
        rule(
            "eu-only",
            Scope(subject=(CountryTerm(spec="EU", group="EU", countries=EU),)),
            allow_countries=(term("DE", "FR", "JP"),),
        ),
        rule("no-aws", Scope(data_class=("personal",)), deny_providers=("aws",)),
        rule("hr-bucket", Scope(bucket=("hr",)), allow_countries=(term("DE"),)),
        rule("acme", Scope(tenant=("acme-*",)), deny_countries=(term("JP"),)),
    )
    d = evaluate(p, ObjectAttrs("personal.health", "FR", tenant="acme-1"), WORLD)
    assert d.rule_ids == ("eu-only", "no-aws", "acme")  # `personal` covers personal.health
    assert set(d.allowed) == {"hetzner-fsn1", "self-dc-de-1", "tencent-eu-frankfurt"}
    hr = evaluate(p, ObjectAttrs("personal", "FR", bucket="hr"), WORLD)
    assert hr.rule_ids == ("eu-only", "no-aws", "hr-bucket")
    assert "aws-ap-northeast-1" not in hr.allowed  # JP: allowed by eu-only, not by hr-bucket


def test_a_rule_out_of_scope_adds_nothing_and_no_rule_means_unrestricted() -> None:
    p = policy(
        rule(
            "eu-only",
            Scope(
                data_class=("personal",),
                subject=(CountryTerm(spec="EU", group="EU", countries=EU),),
            ),
            allow_countries=(term("DE"),),
        )
    )
    for obj in (ObjectAttrs("personal", "US"), ObjectAttrs("public", "DE")):
        d = evaluate(p, obj, WORLD)
        assert d.ok
        assert d.unrestricted
        assert d.allowed == tuple(f.name for f in WORLD)
        assert d.message.startswith("No law or rule of policy t restricts")


def test_unknown_subject_counts_as_every_protected_subject_or_is_refused() -> None:
    eu_rule = rule(
        "eu-only",
        Scope(
            data_class=("personal",), subject=(CountryTerm(spec="EU", group="EU", countries=EU),)
        ),
        allow_countries=(term("DE"),),
    )
    d = evaluate(policy(eu_rule), ObjectAttrs("personal"), WORLD)
    assert d.rule_ids == ("eu-only",)
    assert set(d.allowed) == {
        "aws-eu-central-1",
        "hetzner-fsn1",
        "self-dc-de-1",
        "tencent-eu-frankfurt",
    }
    refused = evaluate(policy(eu_rule, unknown_subject="refuse"), ObjectAttrs("personal"), WORLD)
    assert not refused.ok
    assert refused.refusal == "unknown-subject"
    assert "x-amz-meta-residency-subject" in refused.message


def test_unclassified_is_every_class_the_rules_cover() -> None:
    p = policy(
        rule("health", Scope(data_class=("personal.health",)), allow_countries=(term("DE"),)),
        rule("genomic", Scope(data_class=("genomic",)), deny_providers=("hetzner",)),
    )
    d = evaluate(p, ObjectAttrs("unclassified", "US"), WORLD)
    assert d.rule_ids == ("health", "genomic")
    assert set(d.allowed) == {"aws-eu-central-1", "self-dc-de-1", "tencent-eu-frankfurt"}


@pytest.mark.parametrize(
    ("obj", "kind", "hint"),
    [
        (ObjectAttrs("health", "US"), "unknown-class", "did you mean personal.health"),
        (ObjectAttrs("financial", "US"), "unknown-class", "personal.financial"),
        (ObjectAttrs("personal", "UK"), "unknown-subject", "did you mean GB"),
        (ObjectAttrs("personal", "EL"), "unknown-subject", "did you mean GR"),
        (ObjectAttrs("personal", "US,XX"), "unknown-subject", "'XX'"),
    ],
)
def test_unknown_class_or_subject_is_refused_never_anywhere(
    obj: ObjectAttrs, kind: str, hint: str
) -> None:
    p = policy(countries=frozenset({"US", "DE", "GB", "GR", "FR", "NO"}))
    d = evaluate(p, obj, WORLD)
    assert not d.ok
    assert d.refusal == kind
    assert d.allowed == ()
    assert d.chosen == ()
    assert hint in d.message


def test_several_subjects_bring_all_their_laws_and_a_conflict_names_the_rules() -> None:
    p = policy(
        rule("us", Scope(subject=(term("US"),)), allow_countries=(term("US"),)),
        rule("de", Scope(subject=(term("DE"),)), allow_countries=(term("DE"),)),
    )
    assert evaluate(p, ObjectAttrs("personal", "US"), WORLD).ok
    d = evaluate(p, ObjectAttrs("personal", "DE,US"), WORLD)
    assert not d.ok
    assert d.refusal == "no-location"
    assert d.rule_ids == ("us", "de")
    assert "the rules conflict (us allows only US, de allows only DE)" in d.message


def test_volume_threshold_applies_above_it_or_when_the_count_is_unknown() -> None:
    p = policy(rule("bulk", Scope(over_subjects=1000), deny_vendor_hq=(COC,)))
    alibaba = by_name(["alibaba-ap-southeast-1"])
    assert evaluate(p, ObjectAttrs("biometric", "US", 1000), alibaba).ok
    assert not evaluate(p, ObjectAttrs("biometric", "US", 1001), alibaba).ok
    assert not evaluate(p, ObjectAttrs("biometric", "US"), alibaba).ok


def test_operator_and_ownership_decide_vendor_rules_not_the_brand() -> None:
    us = facts("aws", "us-east-1")
    sinnet = replace(
        us,
        name="bj",
        country="CN",
        countries=frozenset({"CN"}),
        operator="Sinnet",
        operator_hq="CN",
        parent="Sinnet",
        parent_hq="CN",
        parent_share=100,
    )
    sovereign = replace(
        us,
        name="eusc",
        country="DE",
        countries=frozenset({"DE"}),
        operator="AWS EU GmbH",
        operator_hq="DE",
        parent="Amazon.com Inc.",
        parent_hq="US",
        parent_share=100,
    )
    minority = replace(sovereign, name="jv", parent_hq="CN", parent_share=30)
    p = policy(rule("coc", deny_vendor_hq=(COC,)))
    d = evaluate(p, ObjectAttrs("public"), [sinnet, sovereign, minority])
    reasons = {e.location: e.reason for e in d.exclusions}
    assert reasons["bj"] == (
        "vendor HQ CN (Sinnet, which runs aws us-east-1) denied by rule coc "
        "(group COUNTRIES_OF_CONCERN)"
    )
    assert d.allowed == ("eusc", "jv")  # 30 % is below the 50 % control threshold
    padfa = policy(rule("padfa", deny_vendor_hq=(COC,), vendor_control_pct=20))
    reasons = {
        e.location: e.reason for e in evaluate(padfa, ObjectAttrs("public"), [minority]).exclusions
    }
    assert (
        "30% owned by Amazon.com Inc. (HQ CN), at or above the 20% control threshold"
        in reasons["jv"]
    )
    no_us = policy(rule("no-us-control", deny_vendor_hq=(term("US"),)))
    assert evaluate(no_us, ObjectAttrs("public"), [sovereign]).allowed == ()


def test_multi_country_regions_are_judged_by_their_members() -> None:
    gcs_eu = replace(facts("gcp", "eu"), countries=frozenset({"DE", "FR"}))
    unknown = replace(facts("gcp", "eu"), name="hint", countries=frozenset())
    p = policy(rule("eea", allow_countries=(term("DE", "FR", "NO"),)))
    d = evaluate(p, ObjectAttrs("public"), [gcs_eu, unknown])
    assert d.allowed == ("gcp-eu",)
    assert d.exclusions[0].reason.startswith("multi-country region with unknown member countries")
    narrow = policy(rule("de", allow_countries=(term("DE"),)))
    d = evaluate(narrow, ObjectAttrs("public"), [gcs_eu])
    assert (
        d.exclusions[0].reason
        == "multi-country region spans FR, not allowed by rule de (allowed: DE)"
    )
    deny = policy(rule("no-fr", deny_countries=(term("FR"),)))
    assert evaluate(deny, ObjectAttrs("public"), [gcs_eu]).exclusions[0].reason == (
        "country FR denied by rule no-fr"
    )


def test_designated_party_lists_exclude_by_name() -> None:
    p = policy(
        rule("listed", deny_listed=("DOJ_COVERED_PERSONS",)),
        party_lists={"DOJ_COVERED_PERSONS": frozenset({"oracle corp."})},
    )
    locs = by_name(["oci-us-ashburn-1", "aws-us-east-1"])
    d = evaluate(p, ObjectAttrs("public"), locs)
    assert d.allowed == ("aws-us-east-1",)
    assert "on the designated-party list DOJ_COVERED_PERSONS used by rule listed" in (
        d.exclusions[0].reason
    )


def test_exceptions_lift_one_rule_at_named_locations_until_they_expire() -> None:
    gdpr = rule("gdpr", Scope(data_class=("personal",)), allow_countries=(term("DE"),))
    us_only = rule("us-block", Scope(data_class=("personal",)), deny_providers=("oci",))
    exc = PolicyException(
        id="sccs-2026",
        relaxes="gdpr",
        mechanism="gdpr-art46-sccs",
        locations=("aws-us-east-1", "oci-us-ashburn-1"),
        evidence="DPA-17",
        expires=dt.date(2027, 6, 30),
    )
    p = policy(gdpr, us_only, exceptions=(exc,))
    locs = by_name(["aws-us-east-1", "oci-us-ashburn-1", "aws-ap-northeast-1", "hetzner-fsn1"])
    d = evaluate(p, ObjectAttrs("personal", "DE"), locs, today=dt.date(2026, 12, 1))
    assert d.allowed == ("aws-us-east-1", "hetzner-fsn1")
    assert d.exceptions == ("sccs-2026",)
    # The exception lifts gdpr only: oci stays excluded by us-block, Japan by gdpr.
    reasons = {e.location: e.reason for e in d.exclusions}
    assert reasons["oci-us-ashburn-1"] == "provider oci denied by rule us-block"
    expired = evaluate(p, ObjectAttrs("personal", "DE"), locs, today=dt.date(2027, 7, 1))
    assert expired.allowed == ("hetzner-fsn1",)
    assert expired.exceptions == ()
    assert expired.notes == ("exception sccs-2026 expired on 2027-06-30: not applied",)


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
    cheapest = evaluate(
        policy(rule(prefer=Preference(kind="cheapest"))), ObjectAttrs("public"), locs
    )
    prices = [f.storage_usd_per_gb_month for f in by_name(cheapest.allowed)]
    assert prices[-1] is None  # own data center: no catalog price, last
    assert prices[:-1] == sorted(p for p in prices if p is not None)
    nearest = evaluate(
        policy(rule(prefer=Preference(kind="nearest", country="DE", continent="Europe"))),
        ObjectAttrs("public"),
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
        ObjectAttrs("public"),
        locs,
    )
    assert explicit.allowed[:2] == ("hetzner-fsn1", "aws-us-east-1")
    configured = evaluate(policy(rule()), ObjectAttrs("public"), locs)
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
    d = evaluate(policy(rule(replicas=3, spread=spread)), ObjectAttrs("public"), locs)
    assert d.ok
    assert d.chosen == expected
    assert "3 copies in distinct" in d.message


def test_combined_placement_takes_the_most_replicas_and_every_spread() -> None:
    p = policy(
        rule("two-providers", replicas=2, spread="provider"),
        rule("three-countries", replicas=3, spread="country"),
    )
    locs = by_name(
        [
            "aws-us-east-1",
            "aws-eu-central-1",
            "hetzner-fsn1",
            "oci-us-ashburn-1",
            "aws-ap-northeast-1",
            "self-dc-de-1",
        ]
    )
    d = evaluate(p, ObjectAttrs("public"), locs)
    assert d.replicas == 3
    assert d.spreads == ("provider", "country")
    chosen = by_name(list(d.chosen))
    assert len({f.provider for f in chosen}) == 3
    assert len({f.country for f in chosen}) == 3


def test_not_enough_locations_for_replicas_is_a_decision_not_an_exception() -> None:
    p = policy(
        rule("two-countries", allow_countries=(term("DE", "US"),), replicas=3, spread="country")
    )
    d = evaluate(
        p,
        ObjectAttrs("public"),
        by_name(["aws-us-east-1", "aws-eu-central-1", "hetzner-fsn1", "aws-ap-northeast-1"]),
    )
    assert not d.ok
    assert d.refusal == "replicas"
    assert d.chosen == ()
    assert d.allowed == ("aws-us-east-1", "aws-eu-central-1", "hetzner-fsn1")
    assert d.message == (
        "Policy t applies rule two-countries to data class public (unknown subject) and needs 3 "
        "copies in distinct countries, but the allowed locations (aws-us-east-1, "
        "aws-eu-central-1, hetzner-fsn1) span only 2 distinct countries (DE, US)."
    )


def test_no_candidates() -> None:
    d = evaluate(policy(rule()), ObjectAttrs("public"), [])
    assert not d.ok
    assert "no locations are configured" in d.message


def test_decision_to_dict_is_json_ready() -> None:
    import json

    d = evaluate(load_policy("preset:default"), ObjectAttrs("personal.health", "US"), WORLD)
    data = json.loads(json.dumps(d.to_dict()))
    assert data["ok"] is True
    ids = [r["id"] for r in data["rules"]]
    assert ids == ["doj-bulk-sensitive", "clean-cloud-us-personal"]
    assert data["rules"][0]["source"].startswith("residency/policy/presets/us-doj-bulk-data.yaml:")
    assert "28 CFR" in data["rules"][0]["citation"]
    assert data["chosen"] == list(d.chosen)
    assert {"location", "reason"} == set(data["exclusions"][0])
