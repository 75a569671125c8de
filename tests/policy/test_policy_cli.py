"""`residency policy ...` run as a real subprocess, as a user would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DEFAULT_LOCATIONS = 6  # residency.defaults: the built-in six

SCCS = """\
name: with-sccs
extends: [preset:default]
exceptions:
  - id: sccs-aws-us
    relaxes: gdpr-eea-or-adequate
    mechanism: gdpr-art46-sccs
    locations: [aws-us-east-1]
    evidence: DPA 2026-17
    expires: 2999-12-31
  - id: sccs-oci-old
    relaxes: gdpr-eea-or-adequate
    mechanism: gdpr-art46-sccs
    locations: [oci-us-ashburn-1]
    evidence: DPA 2019-03
    expires: 2021-12-31
"""


def test_check_ok_lists_rules(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("policy", "check", "preset:default")
    assert r.code == 0, r.stderr
    assert r.stdout.startswith("ok: policy default: 9 rules from 6 files")
    assert "doj-bulk-sensitive  (residency/policy/presets/us-doj-bulk-data.yaml:" in r.stdout
    assert "catch-all" not in r.stdout


def test_check_error_is_one_line_per_problem_with_exit_2(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "bad.yaml").write_text(
        "rules:\n  - id: r\n    constraints:\n      deny_countries: ['@EEAA']\n      replica: 2\n"
    )
    r = cli("policy", "check", "bad.yaml")
    assert r.code == 2
    assert r.stdout == ""
    assert "Traceback" not in r.stderr
    assert (
        "bad.yaml:5: rules[0].constraints.replica: unknown field (did you mean 'replicas'?)"
        in r.stderr
    )
    r = cli("policy", "check", "bad.yaml", "--json")
    assert r.code == 2
    problems = json.loads(r.stdout)["problems"]
    assert problems == [
        {
            "file": "bad.yaml",
            "line": 5,
            "path": "rules[0].constraints.replica",
            "message": "unknown field (did you mean 'replicas'?)",
        }
    ]


def test_check_rejects_the_old_match_key_and_unknown_classes(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "old.yaml").write_text("rules:\n  - id: r\n    match: {data_class: personal}\n")
    r = cli("policy", "check", "old.yaml")
    assert r.code == 2
    assert "old.yaml:3: rules[0].match: unknown field" in r.stderr
    (tmp_path / "cls.yaml").write_text("rules:\n  - id: r\n    scope: {data_class: [helth]}\n")
    r = cli("policy", "check", "cls.yaml")
    assert r.code == 2
    assert "cls.yaml:2:" in r.stderr
    assert "unknown data class 'helth'; did you mean personal.health?" in r.stderr


def test_check_json_and_missing_file(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("policy", "check", str(EXAMPLES / "tiktok-2022.yaml"), "--json")
    assert r.code == 0
    data = json.loads(r.stdout)
    assert data["ok"]
    assert data["policy"] == "tiktok-2022"
    assert data["rules"] == 11
    assert data["rule_ids"][:2] == ["project-texas", "project-clover"]
    assert data["sources"][1] == "residency/policy/presets/default.yaml"
    r = cli("policy", "check", "nope.yaml")
    assert r.code == 2
    assert "nope.yaml: file not found" in r.stderr
    r = cli("policy", "check", "preset:nope")
    assert r.code == 2
    assert "unknown preset 'nope'" in r.stderr


def test_explain_us_health_lists_every_applying_rule(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("policy", "explain", "preset:default", "--class", "personal.health", "--subject", "US")
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "policy:    default"
    assert lines[1] == "object:    class personal.health (from header), subject US"
    assert lines[2] == "rules:"
    assert lines[3].startswith("  doj-bulk-sensitive  [us-doj-bulk-data]  28 CFR 202.240")
    assert "  (residency/policy/presets/us-doj-bulk-data.yaml:" in lines[3]
    assert lines[4].startswith("  clean-cloud-us-personal  [us-clean-cloud]  ")
    assert "verdict:   compliant" in lines
    assert "chosen:    aws-us-east-1" in lines  # cheapest allowed
    assert "allowed:   aws-us-east-1, aws-eu-central-1, oci-us-ashburn-1, own-dc-de" in lines
    out = r.stdout
    assert (
        "alibaba-ap-southeast-1  operator Alibaba Cloud (Singapore) Private Limited is 100% "
        "owned by Alibaba Group Holding Ltd. (HQ CN), at or above the 50% control threshold "
        "of rule doj-bulk-sensitive (group COUNTRIES_OF_CONCERN)"
    ) in out
    assert "tencent-eu-frankfurt    vendor HQ CN (tencent) denied by rule doj-bulk-sensitive" in out
    assert lines[-1] == (
        "Policy default applies rules doj-bulk-sensitive, clean-cloud-us-personal to data class "
        "personal.health (subject US): 1 copy on aws-us-east-1 (cheapest storage price first)."
    )


def test_explain_unrestricted_says_no_law_restricts_it(cli) -> None:  # type: ignore[no-untyped-def]
    for args in (["--class", "public"], ["--class", "personal", "--subject", "JP"]):
        r = cli("policy", "explain", "preset:default", *args)
        assert r.code == 0, r.stderr
        assert "rules:     none: no law in force restricts this" in r.stdout.splitlines()
        assert f"allowed:   {', '.join(['aws-us-east-1', 'aws-eu-central-1'])}" in r.stdout
        assert "excluded:" not in r.stdout
        assert "No law or rule of policy default restricts" in r.stdout
    r = cli("policy", "explain", "preset:us-doj-bulk-data", "--class", "personal.health")
    assert r.code == 0
    r = cli(
        "policy", "explain", "preset:us-doj-bulk-data", "--class", "personal.health",
        "--subject", "DE", "--json",
    )  # fmt: skip
    d = json.loads(r.stdout)["decision"]
    assert d["unrestricted"] is True
    assert d["rules"] == []
    assert d["exclusions"] == []


def test_explain_unclassified_data_is_refused_saying_what_to_send(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("policy", "explain", "preset:default")
    assert r.code == 1
    assert "object:    class unclassified (from default), subject unknown" in r.stdout
    assert "verdict:   NO COMPLIANT PLACEMENT" in r.stdout
    assert "chosen:    -" in r.stdout
    assert "Classify the object (x-amz-meta-residency-class, x-amz-meta-residency-subject)" in (
        r.stdout
    )


def test_explain_no_compliant_location_exits_1(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli(
        "policy", "explain", "preset:default", "--class", "personal", "--subject", "RU", "--json"
    )
    assert r.code == 1
    data = json.loads(r.stdout)
    assert data["object"]["subject"] == "RU"
    assert data["object"]["class_source"] == "header"
    d = data["decision"]
    assert d["ok"] is False
    assert d["refusal"] == "no-location"
    assert [x["id"] for x in d["rules"]] == ["ru-personal-data-in-russia"]
    assert d["rules"][0]["policy"] == "ru-242fz"
    assert d["chosen"] == []
    assert len(d["exclusions"]) == DEFAULT_LOCATIONS
    assert f"it allows none of the {DEFAULT_LOCATIONS} configured locations" in d["message"]


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["--class", "health", "--subject", "US"], "did you mean personal.health?"),
        (["--class", "financial"], "did you mean personal.financial?"),
        (["--class", "personal", "--subject", "UK"], "did you mean GB?"),
        (["--class", "personal", "--subject", "EL"], "did you mean GR?"),
        (["--class", "personal", "--subject", "XX"], "'XX' is not an ISO 3166-1 alpha-2"),
        (["--class", "personal health"], "is not a data class"),
        (["--count", "10000000001"], "more data subjects than there are people"),
    ],
)
def test_explain_unknown_class_or_subject_is_one_error_line_with_a_hint(
    cli,  # type: ignore[no-untyped-def]
    args: list[str],
    hint: str,
) -> None:
    r = cli("policy", "explain", "preset:default", *args)
    assert r.code == 2  # bad input: the value is not one the policy can reason about
    assert r.stdout == ""
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ")
    assert hint in lines[0]


def test_explain_several_subjects_apply_every_law(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli(
        "policy", "explain", "preset:default", "--class", "personal", "--subject", "us, de",
        "--json",
    )  # fmt: skip
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["object"]["subject"] == "DE,US"
    d = data["decision"]
    assert [x["id"] for x in d["rules"]] == ["clean-cloud-us-personal", "gdpr-eea-or-adequate"]
    assert d["allowed"] == ["aws-eu-central-1", "own-dc-de"]
    assert set(d) >= {
        "ok", "refusal", "rules", "unrestricted", "exceptions", "replicas", "spreads",
        "allowed", "chosen", "exclusions", "notes", "message",
    }  # fmt: skip


def test_explain_shows_the_exception_it_used_and_the_expired_one(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "p.yaml").write_text(SCCS)
    r = cli("policy", "check", "p.yaml")
    assert r.code == 0, r.stderr
    r = cli("policy", "explain", "p.yaml", "--class", "personal", "--subject", "DE")
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "exception: sccs-aws-us" in lines
    assert "note:      exception sccs-oci-old expired on 2021-12-31: not applied" in lines
    assert "chosen:    aws-us-east-1" in lines  # cheapest, allowed by the exception only
    assert any(
        line.startswith("  oci-us-ashburn-1") and "gdpr-eea-or-adequate" in line for line in lines
    )
    r = cli("policy", "explain", "p.yaml", "--class", "personal", "--subject", "DE", "--json")
    d = json.loads(r.stdout)["decision"]
    assert d["exceptions"] == ["sccs-aws-us"]
    assert d["notes"] == ["exception sccs-oci-old expired on 2021-12-31: not applied"]
    assert "aws-us-east-1" in d["allowed"]
    assert "oci-us-ashburn-1" not in d["allowed"]
    # Not personal data of an EEA subject: the relaxed rule does not apply, nothing to show.
    r = cli("policy", "explain", "p.yaml", "--class", "personal", "--subject", "US")
    assert "exception:" not in r.stdout
    assert "note:" not in r.stdout


def test_explain_with_locations_file_and_classifiers(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "p.yaml").write_text(
        f"extends: ['{EXAMPLES / 'tiktok-2022.yaml'}']\n"
        "classifiers:\n  - prefix: us/users/\n    class: personal\n    subject: US\n"
    )
    r = cli(
        "policy",
        "explain",
        "p.yaml",
        "--key",
        "us/users/42.json",
        "--locations",
        str(EXAMPLES / "tiktok-locations.yaml"),
        "--json",
    )
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["object"]["data_class"] == "personal"
    assert data["object"]["subject"] == "US"
    assert data["object"]["class_source"].startswith("classifier prefix 'us/users/'")
    assert data["decision"]["chosen"] == ["oracle-us-ashburn-1", "aws-us-east-1"]
    assert data["decision"]["rules"][0]["id"] == "project-texas"


def test_explain_cn_users_of_the_tiktok_example_are_refused_naming_pipl(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli(
        "policy", "explain", str(EXAMPLES / "tiktok-2022.yaml"), "--class", "personal",
        "--subject", "CN", "--locations", str(EXAMPLES / "tiktok-locations.yaml"),
    )  # fmt: skip
    assert r.code == 1
    assert "  pipl-mainland-only  [cn-pipl]  " in r.stdout
    assert "verdict:   NO COMPLIANT PLACEMENT" in r.stdout


def test_explain_usage_errors_exit_2(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "locs.yaml").write_text(
        "locations:\n  - {name: x, provider: alibabba, region: ap-southeast-1}\n"
    )
    r = cli("policy", "explain", "preset:default", "--locations", "locs.yaml")
    assert r.code == 2
    assert "unknown provider 'alibabba'" in r.stderr
    r = cli("policy", "explain", "preset:default", "--locations", "missing.yaml")
    assert r.code == 2
    assert "missing.yaml" in r.stderr
    (tmp_path / "empty.yaml").write_text("locations: []\n")
    r = cli("policy", "explain", "preset:default", "--locations", "empty.yaml")
    assert r.code == 2
    assert "no `locations:` configured" in r.stderr
    for args in (
        [],
        ["preset:default", "--count", "-1"],
        ["preset:default", "--bogus"],
        ["preset:nope"],
        ["nope.yaml"],
    ):
        r = cli("policy", "explain", *args)
        assert r.code == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_presets_json_lists_rules_and_citations(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("policy", "presets", "--json")
    assert r.code == 0
    presets = {p["name"]: p for p in json.loads(r.stdout)}
    assert set(presets) >= {
        "us-doj-bulk-data",
        "us-clean-cloud",
        "eu-gdpr",
        "cn-pipl",
        "ru-242fz",
        "default",
    }
    assert "catch-all" not in presets
    assert "28 CFR Part 202" in presets["us-doj-bulk-data"]["citation"]
    assert all(rule["citation"] for p in presets.values() for rule in p["rules"])
    assert presets["default"]["extends"] == [
        "us-doj-bulk-data",
        "us-clean-cloud",
        "eu-gdpr",
        "cn-pipl",
        "ru-242fz",
    ]
    r = cli("policy", "presets")
    assert r.code == 0
    assert "preset:eu-gdpr" in r.stdout
    assert "gdpr-eea-or-adequate" in r.stdout
