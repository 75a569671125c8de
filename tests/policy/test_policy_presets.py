"""Each preset against real catalog regions: every law in scope applies, each for its own reason.

Written from the law, not from the engine's output: 28 CFR 202 (bulk thresholds, countries and
covered vendors of concern, incl. 50 % ownership), Clean Cloud (vendors only), GDPR Ch. V (EEA
or adequate countries), PIPL (mainland China), 152-FZ/242-FZ (Russia). A law whose scope does
not cover an object adds nothing; what is unknown is refused; only an exception widens.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path

import pytest
from policy_helpers import WORLD, by_name, facts, write

from residency.catalog import LocationFacts, load_catalog
from residency.policy import (
    DATA_CLASSES,
    Decision,
    ObjectAttrs,
    Policy,
    evaluate,
    list_presets,
    load_policy,
    preset_names,
)
from residency.policy.effective import effective_policy, narrow

CATALOG = load_catalog()
COC = CATALOG.group("COUNTRIES_OF_CONCERN")
EEA = CATALOG.group("EEA")
EEA_OR_ADEQUATE = EEA | CATALOG.group("GDPR_ADEQUATE")
LAW_PRESETS = ("us-doj-bulk-data", "us-clean-cloud", "eu-gdpr", "cn-pipl", "ru-242fz")
PERSONAL_CLASSES = [
    "personal",
    "personal.health",
    "personal.financial",
    "personal.identifiers",
    "genomic",
    "biometric",
    "geolocation",
]
# (class, bulk threshold of 28 CFR 202.205 in US persons, the rule that covers it)
DOJ_THRESHOLDS = [
    ("genomic", 100, "doj-omic"),
    ("biometric", 1_000, "doj-bulk-biometric-geolocation"),
    ("geolocation", 1_000, "doj-bulk-biometric-geolocation"),
    ("personal.health", 10_000, "doj-bulk-sensitive"),
    ("personal.financial", 10_000, "doj-bulk-sensitive"),
    ("personal.identifiers", 100_000, "doj-bulk-identifiers"),
]
DOJ_CLASSES = [c for c, _, _ in DOJ_THRESHOLDS] + ["government"]

# Regions the law looks at closely, from the real catalog (not in WORLD).
GCP_ASIA = facts("gcp", "asia")  # multi-country, includes HK
R2_EU = facts("cloudflare", "jurisdiction-eu")  # multi-country, bounded to the EU
R2_WEUR = facts("cloudflare", "weur")  # a location hint: member countries unknown
AZURE_CHINA = facts("azure", "chinanorth")  # run by 21Vianet's Shanghai Blue Cloud
AWS_NINGXIA = facts("aws", "cn-northwest-1")  # run by NWCD
AWS_EUSC = facts("aws", "eusc-de-east-1")  # German operator, owned by Amazon (US)
ALIBABA_US = facts("alibaba", "us-east-1")  # in the US, run by Alibaba's Singapore subsidiary
ALIBABA_DE = facts("alibaba", "eu-central-1")
AWS_IRELAND = facts("aws", "eu-west-1")
MORE = (GCP_ASIA, R2_EU, R2_WEUR, AZURE_CHINA, AWS_NINGXIA, AWS_EUSC, ALIBABA_US, ALIBABA_DE)
EVERYWHERE = (*WORLD, *MORE, AWS_IRELAND)


@cache
def preset(name: str) -> Policy:
    return load_policy(f"preset:{name}")


def decide(
    policy: str | Policy,
    data_class: str,
    subject: str | None = None,
    count: int | None = None,
    where: tuple[LocationFacts, ...] | list[LocationFacts] = WORLD,
    **kw: object,
) -> Decision:
    p = preset(policy) if isinstance(policy, str) else policy
    return evaluate(p, ObjectAttrs(data_class, subject, count, **kw), where)  # type: ignore[arg-type]


def reasons(d: Decision) -> dict[str, str]:
    return {e.location: e.reason for e in d.exclusions}


def by_any_name(names: tuple[str, ...]) -> list[LocationFacts]:
    index = {f.name: f for f in EVERYWHERE}
    return [index[n] for n in names]


def coc_controlled(f: LocationFacts, pct: int = 50) -> bool:
    """Run from, or owned at least `pct` % from, a country of concern (28 CFR 202.211)."""
    hq = f.operator_hq or f.vendor_hq
    share = 100 if f.parent_share is None else f.parent_share
    return hq in COC or (f.parent_hq in COC and share >= pct)


def places(f: LocationFacts) -> frozenset[str]:
    return f.countries or (frozenset({f.country}) if f.country else frozenset())


# -- the catalog facts these tests rely on ----------------------------------------------------


def test_catalog_facts_the_law_looks_at() -> None:
    beijing = facts("aws", "cn-north-1")
    assert (beijing.country, beijing.operator_hq) == ("CN", "CN")
    assert "Sinnet" in beijing.operator
    singapore = facts("alibaba", "ap-southeast-1")
    assert (singapore.country, singapore.operator_hq, singapore.parent_hq) == ("SG", "SG", "CN")
    assert (singapore.parent_share or 0) >= 50
    assert "Alibaba Group" in singapore.parent
    assert AWS_NINGXIA.operator_hq == "CN"
    assert AZURE_CHINA.operator_hq == "CN"
    assert (AWS_EUSC.operator_hq, AWS_EUSC.parent_hq) == ("DE", "US")
    gcs_eu = facts("gcp", "eu")
    assert gcs_eu.country is None
    assert gcs_eu.countries
    assert gcs_eu.countries <= EEA
    assert R2_EU.countries
    assert R2_EU.countries <= EEA
    assert GCP_ASIA.country is None
    assert "HK" in GCP_ASIA.countries
    assert R2_WEUR.countries == frozenset()


# -- the preset set ---------------------------------------------------------------------------


def test_every_preset_loads_and_cites_its_law() -> None:
    presets = {p.name: p for p in list_presets()}
    # More regimes are being added; the five laws and `default` must always be there.
    assert set(presets) >= {*LAW_PRESETS, "default"}
    assert "catch-all" not in presets  # a catch-all contradicts "what is unknown is refused"
    assert sorted(presets) == preset_names()
    for p in presets.values():
        assert p.description, p.name
        assert p.citation, p.name
        assert p.rules, p.name
        for rule in p.rules:
            assert rule.citation, (p.name, rule.id)
            assert rule.description, (p.name, rule.id)
            assert rule.source.startswith("residency/policy/presets/"), (p.name, rule.id)
            # Every class a rule covers is in the closed vocabulary.
            assert set(rule.scope.data_class) <= set(p.classes), (p.name, rule.id)


def test_default_composes_the_five_laws_and_adds_no_rule_of_its_own() -> None:
    p = preset("default")
    assert p.extends == LAW_PRESETS
    assert p.placement.prefer.kind == "cheapest"
    assert {r.policy for r in p.rules} == set(LAW_PRESETS)
    assert [r.id for r in p.rules] == [
        "doj-government-related",
        "doj-omic",
        "doj-bulk-biometric-geolocation",
        "doj-bulk-sensitive",
        "doj-bulk-identifiers",
        "clean-cloud-us-personal",
        "gdpr-eea-or-adequate",
        "pipl-mainland-only",
        "ru-personal-data-in-russia",
    ]
    assert p.party_lists == {"DOJ_COVERED_PERSONS": frozenset()}
    assert set(p.classes) == set(DATA_CLASSES)


def test_doj_preset_rules_and_party_list() -> None:
    p = preset("us-doj-bulk-data")
    scopes = {r.id: (r.scope.data_class, r.scope.over_subjects) for r in p.rules}
    assert scopes == {
        "doj-government-related": (("government",), None),
        "doj-omic": (("genomic",), 100),
        "doj-bulk-biometric-geolocation": (("biometric", "geolocation"), 1000),
        "doj-bulk-sensitive": (("personal.health", "personal.financial"), 10000),
        "doj-bulk-identifiers": (("personal.identifiers",), 100000),
    }
    for r in p.rules:
        # US persons include persons in the territories (28 CFR 202.256).
        assert r.scope.protected() == frozenset({"US", "AS", "GU", "MP", "PR", "UM", "VI"}), r.id
        assert r.constraints.deny_listed == ("DOJ_COVERED_PERSONS",), r.id
        assert r.constraints.vendor_control_pct == 50, r.id
    assert "DOJ_COVERED_PERSONS" in p.party_lists


# -- US: 28 CFR 202 and Clean Cloud -----------------------------------------------------------


@pytest.mark.parametrize("name", ["us-doj-bulk-data", "default"])
@pytest.mark.parametrize("data_class", DOJ_CLASSES)
def test_us_sensitive_data_never_in_or_with_a_country_of_concern(
    name: str, data_class: str
) -> None:
    d = decide(name, data_class, "US", where=EVERYWHERE)
    assert d.ok
    assert any(r.startswith("doj-") for r in d.rule_ids)
    for f in by_any_name(d.allowed):
        assert places(f), f.name
        assert not places(f) & COC, f.name
        assert not coc_controlled(f), f.name
    why = reasons(d)
    assert "country CN denied by rule doj-" in why["aws-cn-north-1"]
    assert "(group COUNTRIES_OF_CONCERN)" in why["aws-cn-north-1"]
    assert "country HK denied by rule doj-" in why["aws-ap-east-1"]
    assert "country HK denied by rule doj-" in why["gcp-asia"]  # one member is enough
    assert "country RU denied by rule doj-" in why["tencent-eu-moscow"]
    assert "vendor HQ CN (tencent) denied by rule doj-" in why["tencent-eu-frankfurt"]
    # Alibaba outside China: its local subsidiary is controlled from China (202.211(a)(3)).
    for loc in ("alibaba-ap-southeast-1", "alibaba-us-east-1", "alibaba-eu-central-1"):
        assert "is 100% owned by Alibaba Group" in why[loc]
        assert "at or above the 50% control threshold of rule doj-" in why[loc]
    assert why["cloudflare-weur"].startswith("multi-country region not allowed by rule doj-")
    # Not in a country of concern, not a covered vendor: allowed, however far away; a
    # multi-country region whose members are all outside the countries of concern too.
    assert {
        "aws-us-east-1",
        "aws-eu-central-1",
        "aws-af-south-1",
        "self-dc-de-1",
        "gcp-eu",
        "cloudflare-jurisdiction-eu",
        "aws-eusc-de-east-1",
    } <= set(d.allowed)


@pytest.mark.parametrize(("data_class", "threshold", "rule_id"), DOJ_THRESHOLDS)
def test_doj_bulk_thresholds_apply_above_the_threshold_or_when_the_count_is_unknown(
    data_class: str, threshold: int, rule_id: str
) -> None:
    alibaba = by_name(["alibaba-ap-southeast-1", "aws-us-east-1"])
    at = decide("us-doj-bulk-data", data_class, "US", threshold, alibaba)
    assert at.unrestricted
    assert at.ok
    assert at.allowed == ("alibaba-ap-southeast-1", "aws-us-east-1")
    for count in (threshold + 1, None):  # an unknown count is treated as bulk
        d = decide("us-doj-bulk-data", data_class, "US", count, alibaba)
        assert d.rule_ids == (rule_id,), count
        assert d.allowed == ("aws-us-east-1",)
        assert f"control threshold of rule {rule_id}" in reasons(d)["alibaba-ap-southeast-1"]


@pytest.mark.parametrize("count", [None, 0, 1, 10**10])
def test_government_related_data_has_no_volume_threshold(count: int | None) -> None:
    d = decide("us-doj-bulk-data", "government", "US", count)
    assert d.rule_ids == ("doj-government-related",)
    assert "alibaba-ap-southeast-1" not in d.allowed


def test_us_health_data_is_denied_at_alibaba_for_the_laws_reason_not_by_default() -> None:
    d = decide("us-doj-bulk-data", "personal.health", "US")
    assert d.ok
    assert d.rule_ids == ("doj-bulk-sensitive",)
    assert d.rule == "doj-bulk-sensitive"
    assert d.rules[0].policy == "us-doj-bulk-data"
    assert "202.241" in d.rules[0].citation
    assert reasons(d)["alibaba-ap-southeast-1"] == (
        "operator Alibaba Cloud (Singapore) Private Limited is 100% owned by Alibaba Group "
        "Holding Ltd. (HQ CN), at or above the 50% control threshold of rule "
        "doj-bulk-sensitive (group COUNTRIES_OF_CONCERN)"
    )
    assert "default" not in d.message
    assert d.message.startswith(
        "Policy us-doj-bulk-data applies rule doj-bulk-sensitive to data class personal.health"
    )


@pytest.mark.parametrize("subject", ["DE", "JP", "CN", "GB"])
@pytest.mark.parametrize("data_class", [*DOJ_CLASSES, "personal"])
def test_other_subjects_are_not_restricted_by_the_us_rule_alone(
    subject: str, data_class: str
) -> None:
    d = decide("us-doj-bulk-data", data_class, subject)
    assert d.ok
    assert d.unrestricted
    assert d.rules == ()
    assert d.rule is None
    assert d.exclusions == ()
    assert d.allowed == tuple(f.name for f in WORLD)
    assert d.message.startswith(
        f"No law or rule of policy us-doj-bulk-data restricts data class {data_class} "
        f"(subject {subject})"
    )


def test_us_rule_alone_leaves_generic_personal_and_public_data_unrestricted() -> None:
    # 28 CFR 202 covers listed categories of sensitive data, not personal data as such.
    for data_class in ("personal", "public"):
        assert decide("us-doj-bulk-data", data_class, "US").unrestricted


def test_unknown_subject_under_the_us_rule_alone_is_anywhere_but_a_country_of_concern() -> None:
    d = decide("us-doj-bulk-data", "personal.health")
    assert d.ok
    assert d.rule_ids == ("doj-bulk-sensitive",)
    assert set(d.allowed) == {
        f.name for f in WORLD if not places(f) & COC and not coc_controlled(f)
    }


def test_operators_add_covered_persons_to_the_doj_list(tmp_path: Path) -> None:
    # 28 CFR 202.211(a)(5): the Covered Persons List excludes a vendor by name.
    path = write(
        tmp_path,
        "p.yaml",
        "extends: [preset:us-doj-bulk-data]\n"
        "party_lists:\n  DOJ_COVERED_PERSONS: ['hetzner online gmbh']\n",
    )
    p = load_policy(path)
    d = decide(p, "personal.health", "US")
    assert "hetzner-fsn1" not in d.allowed
    assert reasons(d)["hetzner-fsn1"] == (
        "Hetzner Online GmbH is on the designated-party list DOJ_COVERED_PERSONS used by rule "
        "doj-bulk-sensitive"
    )
    assert decide(p, "personal.health", "DE").unrestricted  # only the rules that list it use it


def test_clean_cloud_is_about_vendors_not_countries() -> None:
    d = decide("us-clean-cloud", "personal", "US", where=EVERYWHERE)
    assert d.ok
    assert d.rule_ids == ("clean-cloud-us-personal",)
    for f in by_any_name(d.allowed):
        assert not coc_controlled(f), f.name
    # A US vendor's Hong Kong region and a multi-country region including HK: not a vendor
    # matter, so Clean Cloud does not exclude them.
    assert {"aws-ap-east-1", "gcp-asia", "aws-us-east-1", "self-dc-de-1"} <= set(d.allowed)
    # The Chinese regions of US brands are run by Chinese operators: the operator decides.
    why = reasons(d)
    assert why["aws-cn-north-1"].startswith("vendor HQ CN (Beijing Sinnet")
    assert (
        "which runs aws cn-north-1) denied by rule clean-cloud-us-personal" in why["aws-cn-north-1"]
    )
    assert "country CN" not in why["aws-cn-north-1"]
    assert "which runs aws cn-northwest-1" in why["aws-cn-northwest-1"]
    assert "which runs azure chinanorth" in why["azure-chinanorth"]
    # Amazon's European Sovereign Cloud: a German operator owned by a US parent: allowed.
    assert "aws-eusc-de-east-1" in d.allowed


# -- the examples under preset:default -----------------------------------------------


def test_default_us_personal_data_not_at_alibaba_singapore_or_aws_beijing() -> None:
    d = decide("default", "personal", "US")
    assert d.ok
    assert d.rule_ids == ("clean-cloud-us-personal",)
    assert "alibaba-ap-southeast-1" not in d.allowed
    assert "aws-cn-north-1" not in d.allowed
    assert "aws-eu-central-1" in d.allowed
    why = reasons(d)
    assert "owned by Alibaba Group" in why["alibaba-ap-southeast-1"]
    assert "Sinnet" in why["aws-cn-north-1"]


@pytest.mark.parametrize(
    ("data_class", "subject", "kind", "hint"),
    [
        ("financial", "US", "unknown-class", "did you mean personal.financial?"),
        ("health", "US", "unknown-class", "did you mean personal.health?"),
        ("personal.helth", "US", "unknown-class", "personal.health"),
        ("personal", "XX", "unknown-subject", "'XX' is not an ISO 3166-1 alpha-2 country code"),
        ("personal", "EL", "unknown-subject", "did you mean GR?"),
        ("personal", "UK", "unknown-subject", "did you mean GB?"),
        ("public", "UK", "unknown-subject", "did you mean GB?"),
        ("personal.health", "US,UK", "unknown-subject", "did you mean GB?"),
    ],
)
def test_unknown_class_or_subject_is_refused_with_a_suggestion(
    data_class: str, subject: str, kind: str, hint: str
) -> None:
    d = decide("default", data_class, subject, where=EVERYWHERE)
    assert not d.ok
    assert d.refusal == kind
    assert not d.unrestricted
    assert d.allowed == ()
    assert d.chosen == ()
    assert len(d.exclusions) == len(EVERYWHERE)  # mainland China included: never "anywhere"
    assert hint in d.message
    if kind == "unknown-class":
        assert "send one of biometric, genomic, geolocation, government, personal," in d.message
        assert "declare it under `classes:`" in d.message


def test_unclassified_data_with_an_unknown_subject_is_refused_saying_what_to_send() -> None:
    d = decide("default", "unclassified")
    assert not d.ok
    assert d.refusal == "no-location"
    assert set(d.rule_ids) == {r.id for r in preset("default").rules}
    assert d.allowed == ()
    assert "x-amz-meta-residency-class" in d.message
    assert "x-amz-meta-residency-subject" in d.message
    assert "the rules conflict" in d.message
    # Classified, the same bytes are placed.
    assert decide("default", "public").ok


def test_personal_data_with_an_unknown_subject_counts_as_every_protected_subject() -> None:
    d = decide("default", "personal")
    assert not d.ok
    assert d.refusal == "no-location"
    assert set(d.rule_ids) == {
        "clean-cloud-us-personal",
        "gdpr-eea-or-adequate",
        "pipl-mainland-only",
        "ru-personal-data-in-russia",
    }
    assert "x-amz-meta-residency-subject" in d.message


@pytest.mark.parametrize(
    ("subject", "rules"),
    [
        ("DE", {"gdpr-eea-or-adequate"}),
        ("CN", {"pipl-mainland-only"}),
        ("JP", set()),  # no law of the five protects Japanese subjects
        (
            "US",
            {
                "doj-government-related",
                "doj-omic",
                "doj-bulk-biometric-geolocation",
                "doj-bulk-sensitive",
                "doj-bulk-identifiers",
                "clean-cloud-us-personal",
            },
        ),
    ],
)
def test_unclassified_data_of_a_known_subject_is_every_class_that_subjects_laws_cover(
    subject: str, rules: set[str]
) -> None:
    d = decide("default", "unclassified", subject)
    assert set(d.rule_ids) == rules
    assert d.ok


def test_us_and_german_subject_gets_both_laws() -> None:
    d = decide("default", "personal", "US,DE", where=EVERYWHERE)
    assert d.ok
    assert d.rule_ids == ("clean-cloud-us-personal", "gdpr-eea-or-adequate")
    assert d.rule == "clean-cloud-us-personal,gdpr-eea-or-adequate"
    for f in by_any_name(d.allowed):
        assert places(f) <= EEA_OR_ADEQUATE, f.name
        assert not coc_controlled(f), f.name
    why = reasons(d)
    assert "country US not allowed by rule gdpr-eea-or-adequate" in why["aws-us-east-1"]
    assert "tencent-eu-frankfurt" not in d.allowed  # GDPR alone would allow it: Clean Cloud
    assert "control threshold of rule clean-cloud-us-personal" in why["alibaba-eu-central-1"]
    # Order and spelling of the subjects do not matter.
    assert decide("default", "personal", "DE,US", where=EVERYWHERE).allowed == d.allowed
    health = decide("default", "personal.health", "US,DE")
    assert health.rule_ids == (
        "doj-bulk-sensitive",
        "clean-cloud-us-personal",
        "gdpr-eea-or-adequate",
    )


def test_a_subject_of_two_conflicting_laws_is_refused_naming_the_rules() -> None:
    # PRC personal information must stay in mainland China; US persons' bulk health data must
    # never be there: no location satisfies both.
    d = decide("default", "personal.health", "CN,US", where=EVERYWHERE)
    assert not d.ok
    assert d.refusal == "no-location"
    assert {"doj-bulk-sensitive", "pipl-mainland-only"} <= set(d.rule_ids)
    assert "doj-bulk-sensitive" in d.message
    assert "pipl-mainland-only" in d.message
    why = reasons(d)
    assert "country CN denied by rule doj-bulk-sensitive" in why["alibaba-cn-hangzhou"]
    assert "not allowed by rule pipl-mainland-only" in why["aws-us-east-1"]
    # Two allow-lists that share no country: the message names the conflict.
    eu_ru = decide("default", "personal", "DE,RU")
    assert not eu_ru.ok
    assert (
        "the rules conflict (gdpr-eea-or-adequate allows only EEA, GDPR_ADEQUATE, "
        "ru-personal-data-in-russia allows only RU)" in eu_ru.message
    )


# -- EU: GDPR Chapter V -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["eu-gdpr", "default"])
@pytest.mark.parametrize("subject", ["DE", "FR", "NO", "IS", "EU", "EEA"])
@pytest.mark.parametrize("data_class", PERSONAL_CLASSES)
def test_eea_personal_data_only_in_the_eea_or_adequate_countries(
    name: str, subject: str, data_class: str
) -> None:
    d = decide(name, data_class, subject, where=EVERYWHERE)
    assert d.ok
    assert d.rule_ids == ("gdpr-eea-or-adequate",)
    assert d.rules[0].policy == "eu-gdpr"
    for f in by_any_name(d.allowed):
        assert places(f), f.name
        assert places(f) <= EEA_OR_ADEQUATE, f.name
    # Japan: whole-country adequacy; EU-bounded multi-country regions: every member is in.
    assert {"aws-ap-northeast-1", "gcp-eu", "cloudflare-jurisdiction-eu"} <= set(d.allowed)
    why = reasons(d)
    assert why["aws-us-east-1"] == (
        "country US not allowed by rule gdpr-eea-or-adequate (allowed: EEA, GDPR_ADEQUATE)"
    )
    assert "country SG not allowed" in why["alibaba-ap-southeast-1"]
    assert why["cloudflare-weur"].startswith("multi-country region with unknown member countries")
    assert why["gcp-asia"].startswith("multi-country region spans HK, ID, IN,")
    assert "JP" not in why["gcp-asia"]  # adequate members are not the problem


def test_gdpr_does_not_restrict_what_it_does_not_cover() -> None:
    for data_class, subject in [("public", "DE"), ("personal", "US"), ("government", "DE")]:
        d = decide("eu-gdpr", data_class, subject)
        assert d.ok, (data_class, subject)
        assert d.unrestricted, (data_class, subject)
        assert d.allowed == tuple(f.name for f in WORLD)
        assert "No law or rule of policy eu-gdpr restricts" in d.message


def test_extending_gdpr_with_a_looser_rule_cannot_loosen_it(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "loose.yaml",
        "name: loose\nextends: [preset:eu-gdpr]\nrules:\n"
        "  - id: eu-data-in-the-us-too\n"
        "    scope: {data_class: [personal], subject: ['@EEA']}\n"
        "    constraints: {allow_countries: [US, DE]}\n",
    )
    d = decide(load_policy(path), "personal", "DE")
    assert d.rule_ids == ("eu-data-in-the-us-too", "gdpr-eea-or-adequate")
    assert "aws-us-east-1" not in d.allowed
    assert "oci-us-ashburn-1" not in d.allowed
    assert "country US not allowed by rule gdpr-eea-or-adequate" in reasons(d)["aws-us-east-1"]
    assert set(d.allowed) <= set(decide("eu-gdpr", "personal", "DE").allowed)


def test_only_a_named_dated_exception_widens_and_only_where_it_says(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sccs.yaml",
        "name: sccs\nextends: [preset:default]\nexceptions:\n"
        "  - id: sccs-aws-us\n"
        "    relaxes: gdpr-eea-or-adequate\n"
        "    mechanism: gdpr-art46-sccs\n"
        "    locations: [aws-us-east-1]\n"
        "    evidence: DPA 2026-17 with Amazon Web Services EMEA SARL\n"
        "    expires: 2027-06-30\n",
    )
    p = load_policy(path)
    today = dt.date(2026, 12, 1)
    d = evaluate(p, ObjectAttrs("personal", "DE"), WORLD, today=today)
    assert d.exceptions == ("sccs-aws-us",)
    assert "aws-us-east-1" in d.allowed
    assert "oci-us-ashburn-1" not in d.allowed  # not named
    assert "alibaba-ap-southeast-1" not in d.allowed
    # US data: the relaxed rule does not apply, so the exception is not used.
    us = evaluate(p, ObjectAttrs("personal", "US"), WORLD, today=today)
    assert us.exceptions == ()
    # Personal data of a US and a German subject: Clean Cloud still applies at the named
    # location, GDPR is lifted there.
    both = evaluate(p, ObjectAttrs("personal", "US,DE"), WORLD, today=today)
    assert "aws-us-east-1" in both.allowed
    assert both.exceptions == ("sccs-aws-us",)
    on_expiry = evaluate(p, ObjectAttrs("personal", "DE"), WORLD, today=dt.date(2027, 6, 30))
    assert "aws-us-east-1" in on_expiry.allowed
    expired = evaluate(p, ObjectAttrs("personal", "DE"), WORLD, today=dt.date(2027, 7, 1))
    assert "aws-us-east-1" not in expired.allowed
    assert expired.exceptions == ()
    assert expired.notes == ("exception sccs-aws-us expired on 2027-06-30: not applied",)


# -- China and Russia -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cn-pipl", "default"])
@pytest.mark.parametrize("data_class", PERSONAL_CLASSES)
def test_prc_personal_information_only_in_mainland_china(name: str, data_class: str) -> None:
    d = decide(name, data_class, "CN", where=EVERYWHERE)
    assert d.ok
    assert d.rule_ids == ("pipl-mainland-only",)
    # Whoever runs them: mainland regions of Chinese and of US brands alike.
    assert set(d.allowed) == {
        "alibaba-cn-hangzhou",
        "aws-cn-north-1",
        "aws-cn-northwest-1",
        "azure-chinanorth",
    }
    why = reasons(d)
    assert "country HK not allowed by rule pipl-mainland-only" in why["aws-ap-east-1"]
    assert why["gcp-asia"].startswith("multi-country region spans")


@pytest.mark.parametrize("name", ["ru-242fz", "default"])
@pytest.mark.parametrize("data_class", PERSONAL_CLASSES)
def test_russian_personal_data_only_in_russia(name: str, data_class: str) -> None:
    d = decide(name, data_class, "RU")
    assert d.ok
    assert d.rule_ids == ("ru-personal-data-in-russia",)
    assert set(d.allowed) == {"tencent-eu-moscow", "huawei-ru-northwest-2"}
    assert reasons(d)["aws-eu-central-1"] == (
        "country DE not allowed by rule ru-personal-data-in-russia (allowed: RU)"
    )


@pytest.mark.parametrize("name", LAW_PRESETS)
def test_a_law_preset_alone_does_not_deny_what_it_does_not_cover(name: str) -> None:
    for obj in [("public", "DE"), ("public", None), ("personal", "JP")]:
        d = decide(name, *obj)
        assert d.ok, obj
        assert d.unrestricted, obj
        assert d.exclusions == ()


# -- public data and placement ----------------------------------------------------------------


@pytest.mark.parametrize("subject", ["US", "CN", "DE", "RU", "US,DE", None])
def test_public_data_anywhere_cheapest_first(subject: str | None) -> None:
    d = decide("default", "public", subject)
    assert d.ok
    assert d.unrestricted
    assert d.rule is None
    assert d.rule_ids == ()
    assert set(d.allowed) == {f.name for f in WORLD}
    assert d.exclusions == ()
    prices = [f.storage_usd_per_gb_month for f in by_name(d.allowed)]
    known = [p for p in prices if p is not None]
    assert known == sorted(known)
    assert prices[: len(known)] == known  # unknown prices last
    assert by_name(d.chosen)[0].storage_usd_per_gb_month == min(known)
    assert d.message.startswith("No law or rule of policy default restricts data class public")
    assert d.message.endswith("(cheapest storage price first).")


def test_decision_fields() -> None:
    d = decide("default", "personal.health", "US")
    assert d.rule == "doj-bulk-sensitive,clean-cloud-us-personal"
    assert [(r.id, r.policy) for r in d.rules] == [
        ("doj-bulk-sensitive", "us-doj-bulk-data"),
        ("clean-cloud-us-personal", "us-clean-cloud"),
    ]
    assert all(r.citation and r.source.count(":") == 1 for r in d.rules)
    assert d.refusal is None
    assert not d.unrestricted
    assert d.replicas == 1
    assert d.spreads == ("location",)
    data = d.to_dict()
    assert data["rules"][0]["id"] == "doj-bulk-sensitive"
    assert data["unrestricted"] is False
    assert data["refusal"] is None


# -- bucket policies (effective.py): a bucket preset only narrows ----------------------------


def _operator_policies(tmp: Path) -> dict[str, Policy]:
    examples = Path(__file__).resolve().parents[2] / "examples"
    strict = write(
        tmp,
        "strict.yaml",
        "name: strict\nextends: [preset:default]\nunknown_subject: refuse\n"
        "rules:\n  - id: everything-in-germany\n    constraints: {allow_countries: [DE]}\n",
    )
    sccs = write(
        tmp,
        "sccs.yaml",
        "name: sccs\nextends: [preset:eu-gdpr]\nexceptions:\n"
        "  - {id: sccs, relaxes: gdpr-eea-or-adequate, mechanism: gdpr-art46-sccs,\n"
        "     locations: [aws-us-east-1], evidence: DPA-1, expires: 2999-12-31}\n",
    )
    return {
        "default": preset("default"),
        "eu-gdpr": preset("eu-gdpr"),
        "tiktok-2022": load_policy(examples / "tiktok-2022.yaml"),
        "tiktok-usds-2026": load_policy(examples / "tiktok-usds-2026.yaml"),
        "strict": load_policy(strict),
        "sccs": load_policy(sccs),
    }


NARROW_OBJECTS = [
    ObjectAttrs(c, s, n, bucket="b")
    for c in ("public", "unclassified", "personal", "personal.health", "genomic", "government")
    for s in (None, "US", "DE", "CN", "RU", "IN", "US,DE")
    for n in (None, 50)
]


def test_narrowing_with_any_preset_never_allows_what_the_operator_denied(tmp_path: Path) -> None:
    for op_name, operator in _operator_policies(tmp_path).items():
        for bucket_preset in preset_names():
            narrowed = effective_policy(operator, f"preset:{bucket_preset}")
            assert narrowed.exceptions == operator.exceptions
            assert narrowed.rules[: len(operator.rules)] == operator.rules
            for obj in NARROW_OBJECTS:
                before = evaluate(operator, obj, EVERYWHERE)
                after = evaluate(narrowed, obj, EVERYWHERE)
                assert set(after.allowed) <= set(before.allowed), (op_name, bucket_preset, obj)
                assert set(before.rule_ids) <= set(after.rule_ids), (op_name, bucket_preset, obj)


def test_a_bucket_naming_default_does_not_loosen_a_stricter_operator(tmp_path: Path) -> None:
    operators = _operator_policies(tmp_path)
    usds = effective_policy(operators["tiktok-usds-2026"], "preset:default")
    d = evaluate(usds, ObjectAttrs("personal", "US"), EVERYWHERE)
    assert d.allowed == ("oci-us-ashburn-1",)  # only Oracle's US cloud
    assert "us-users-oracle-us-only" in d.rule_ids
    no_oracle = [f for f in EVERYWHERE if f.provider != "oci"]
    assert evaluate(usds, ObjectAttrs("personal", "US"), no_oracle).allowed == ()
    strict = effective_policy(operators["strict"], "preset:default")
    assert strict.unknown_subject == "refuse"
    refused = evaluate(strict, ObjectAttrs("personal"), WORLD)
    assert refused.refusal == "unknown-subject"
    assert set(evaluate(strict, ObjectAttrs("public"), WORLD).allowed) == {
        f.name for f in WORLD if f.country == "DE"
    }


def test_a_bucket_policy_adds_its_law_but_never_its_exceptions(tmp_path: Path) -> None:
    operators = _operator_policies(tmp_path)
    # An operator without GDPR: a bucket naming preset:eu-gdpr brings it in.
    us_only = effective_policy(preset("us-doj-bulk-data"), "preset:eu-gdpr")
    assert evaluate(preset("us-doj-bulk-data"), ObjectAttrs("personal", "DE"), WORLD).unrestricted
    d = evaluate(us_only, ObjectAttrs("personal", "DE"), WORLD)
    assert d.rule_ids == ("gdpr-eea-or-adequate",)
    assert "aws-us-east-1" not in d.allowed
    # The operator's own exception still applies in the bucket (widening is the operator's) ...
    sccs = effective_policy(operators["sccs"], "preset:default")
    assert "aws-us-east-1" in evaluate(sccs, ObjectAttrs("personal", "DE"), WORLD).allowed
    # ... but a bucket policy's exceptions are never taken.
    bucket = operators["sccs"].model_copy(update={"name": "bucket"})
    narrowed = narrow(preset("eu-gdpr"), bucket)
    assert narrowed.exceptions == ()
    assert "aws-us-east-1" not in evaluate(narrowed, ObjectAttrs("personal", "DE"), WORLD).allowed


def test_a_bucket_preset_declares_its_classes_in_its_buckets() -> None:
    itar = effective_policy(preset("default"), "preset:us-itar")
    assert "itar" not in preset("default").classes
    assert "itar" in itar.classes
    d = evaluate(itar, ObjectAttrs("itar"), EVERYWHERE)
    assert set(d.rule_ids) == {"itar-never-proscribed", "itar-plaintext-us-only"}
    for f in by_any_name(d.allowed):
        assert places(f) == frozenset({"US"}), f.name
        assert not coc_controlled(f), f.name
    assert evaluate(preset("default"), ObjectAttrs("itar"), WORLD).refusal == "unknown-class"


def test_an_operator_rule_with_a_laws_id_does_not_switch_the_law_off(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "op.yaml",
        "name: op\nrules:\n  - id: pipl-mainland-only\n    scope: {bucket: [archive]}\n",
    )
    narrowed = effective_policy(load_policy(path), "preset:cn-pipl")
    d = evaluate(narrowed, ObjectAttrs("personal", "CN", bucket="b"), WORLD)
    assert set(d.allowed) == {"alibaba-cn-hangzhou", "aws-cn-north-1"}
