"""`residency policy ...` run as a real subprocess, as a user would."""

from __future__ import annotations

import json
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_check_ok_lists_rules(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("policy", "check", "preset:default")
    assert r.code == 0, r.stderr
    assert r.stdout.startswith("ok: policy default: 9 rules from 7 files")
    assert "doj-bulk-sensitive  (residency/policy/presets/us-doj-bulk-data.yaml:" in r.stdout


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


def test_check_json_and_missing_file(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("policy", "check", str(EXAMPLES / "tiktok-2022.yaml"), "--json")
    assert r.code == 0
    data = json.loads(r.stdout)
    assert data["ok"]
    assert data["policy"] == "tiktok-2022"
    assert data["rules"] == 11
    assert data["rule_ids"][:2] == ["us-users-in-us", "eea-users-in-eea"]
    r = cli("policy", "check", "nope.yaml")
    assert r.code == 2
    assert "nope.yaml: file not found" in r.stderr
    r = cli("policy", "check", "preset:nope")
    assert r.code == 2
    assert "unknown preset 'nope'" in r.stderr


def test_explain_default_locations_us_health(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("policy", "explain", "preset:default", "--class", "personal.health", "--subject", "US")
    assert r.code == 0, r.stderr
    out = r.stdout
    assert "rule:      doj-bulk-sensitive  (residency/policy/presets/us-doj-bulk-data.yaml:" in out
    assert "chosen:    aws-us-east-1" in out
    assert "allowed:   aws-us-east-1, oci-us-ashburn-1, aws-eu-central-1, own-dc-de" in out
    assert (
        "alibaba-ap-southeast-1  vendor HQ CN (alibaba) denied by rule doj-bulk-sensitive "
        "(group COUNTRIES_OF_CONCERN)"
    ) in out
    assert "tencent-eu-frankfurt    vendor HQ CN (tencent) denied" in out


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
    assert d["rule"] == "ru-personal-data-in-russia"
    assert d["chosen"] == []
    assert len(d["exclusions"]) == 6
    assert "allows none of the 6 configured locations" in d["message"]


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
    assert data["object"]["class_source"].startswith("classifier prefix 'us/users/'")
    assert data["decision"]["chosen"] == ["oracle-us-ashburn-1", "aws-us-east-1"]


def test_explain_bad_inputs(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("policy", "explain", "preset:default", "--class", "personal health")
    assert r.code == 1
    assert "is not a data class" in r.stderr
    assert "Traceback" not in r.stderr
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
    assert "28 CFR Part 202" in presets["us-doj-bulk-data"]["citation"]
    assert all(rule["citation"] for p in presets.values() for rule in p["rules"])
    r = cli("policy", "presets")
    assert r.code == 0
    assert "preset:eu-gdpr" in r.stdout
    assert "gdpr-eea-or-adequate" in r.stdout
