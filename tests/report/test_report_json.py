"""`residency report --json` over a real database: every number checked exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from report_support import ALI, AWS, EU, OCI, SCRIPT_KEY, World, run_cli

from residency.catalog import load_catalog
from residency.config import LocationConfig

GIB = 1 << 30


def report(world: World, *args: str) -> tuple[int, dict[str, Any]]:
    r = run_cli("report", "--json", *world.args(), *args, cwd=world.root)
    assert r.code in (0, 1), r.stderr
    assert r.stderr == ""
    return r.code, json.loads(r.stdout)


def egress_price(provider: str, region: str) -> float:
    facts = load_catalog().facts_for(LocationConfig(name="x", provider=provider, region=region))
    assert facts.egress_usd_per_gb is not None
    return facts.egress_usd_per_gb


def usage(rows: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    return {r["key"]: (r["objects"], r["bytes"]) for r in rows}


def test_residency_map_counts_objects_once_and_bytes_per_replica(world: World) -> None:
    code, data = report(world)
    assert code == 1  # findings: some objects are out of compliance
    assert data["policy"]["name"] == "health-2025"
    assert data["policy"]["citation"] == "28 CFR Part 202 (DOJ bulk sensitive data rule, 2025)"
    assert data["totals"] == {
        "objects": 8,
        "bytes": 12700,
        "noncurrent_versions": 0,  # no bucket is versioned
        "noncurrent_bytes": 0,
        "stored_bytes": 17700,
        "placed_objects": 8,
        "locations": 4,
        "countries": 3,
    }
    by_location = {r["location"]: (r["objects"], r["bytes"]) for r in data["locations"]}
    assert by_location == {ALI: (4, 9500), OCI: (2, 5000), AWS: (3, 2500), EU: (1, 700)}
    assert [r["location"] for r in data["locations"]] == [ALI, OCI, AWS, EU]  # biggest first
    ali = data["locations"][0]
    assert (ali["country"], ali["vendor_hq"], ali["city"]) == ("SG", "CN", "Singapore")
    # Two US locations hold patient-2, ok.json (twice), stray and cn/user: 4 objects.
    assert usage(data["by_country"]) == {"SG": (4, 9500), "US": (4, 7500), "DE": (1, 700)}
    assert [r["label"] for r in data["by_country"]] == ["Singapore", "United States", "Germany"]
    assert usage(data["by_provider"]) == {
        "alibaba": (4, 9500),
        "oci": (2, 5000),
        "aws": (4, 3200),
    }
    assert usage(data["by_region"]) == {
        "alibaba/ap-southeast-1": (4, 9500),
        "oci/us-ashburn-1": (2, 5000),
        "aws/us-east-1": (3, 2500),
        "aws/eu-central-1": (1, 700),
    }


def test_violations_reasons_and_planner_fixes(world: World) -> None:
    _, data = report(world)
    assert data["violations_total"] == 5
    assert data["violations_bytes"] == 5000
    rows = data["violations"]
    assert [(v["bucket"], v["key"], v["size"]) for v in rows] == [
        ("clinic", "us/patient-2.json", 3000),
        ("clinic", "us/patient-1.json", 1000),
        ("clinic", SCRIPT_KEY, 500),
        ("shop", "eu/stray.json", 400),
        ("shop", "cn/user.json", 100),
    ]
    p2, p1, script, stray, cn = rows
    assert p2["locations"] == [ALI, OCI]
    assert p2["rule"] == "us-health"
    assert (p2["source"], p2["copy_to"], p2["delete_from"]) == (OCI, [AWS], [ALI])
    assert p2["fix"] == f"copy from {OCI} to {AWS}; then delete from {ALI}"
    (reason,) = p2["reasons"]
    assert reason.startswith(f"{ALI}: ")
    assert "country SG not allowed by rule us-health" in reason
    # Alibaba's Singapore subsidiary runs the region: its owner's CN headquarters excludes it.
    assert "HQ CN" in reason
    assert "COUNTRIES_OF_CONCERN" in reason
    # Oracle first (the rule's preference), then a second provider.
    assert (p1["source"], p1["copy_to"], p1["delete_from"]) == (ALI, [OCI, AWS], [ALI])
    assert script["copy_to"] == [OCI, AWS]
    assert script["key"] == SCRIPT_KEY
    assert (stray["rule"], stray["copy_to"], stray["delete_from"]) == (
        "eea-personal",
        [EU],
        [AWS],
    )
    assert stray["reasons"] == [
        f"{AWS}: country US not allowed by rule eea-personal (allowed: EEA)"
    ]
    assert cn["unplaceable"] is True
    assert cn["copy_to"] == []
    assert cn["delete_from"] == []
    assert "allows none of the 4 configured locations" in cn["reasons"][0]
    assert cn["fix"].startswith("no compliant location is configured")


def test_fix_cost_is_the_planners_estimate(world: World) -> None:
    _, data = report(world)
    oci = 3000 / GIB * egress_price("oci", "us-ashburn-1")  # patient-2: Oracle -> AWS
    aws = 400 / GIB * egress_price("aws", "us-east-1")  # stray: us-east-1 -> eu-central-1
    assert data["fix"] == {
        "objects": 5,
        "bytes": 5000,
        "copies": 6,
        "copy_bytes": 6400,
        "deletes": 4,
        "delete_bytes": 4900,
        "unplaceable": 1,
        "unplaceable_bytes": 100,
        "egress_usd": aws + oci,
        "egress_usd_by_provider": {"aws": aws, "oci": oci},
        # The catalog has no Alibaba egress price: two copies each of patient-1 and the script.
        "egress_unpriced_bytes": {"alibaba": 3000},
    }
    # The same numbers `residency plan` computes object by object.
    r = run_cli("plan", "--json", *world.args(), cwd=world.root)
    assert r.code == 1, r.stderr
    plan = json.loads(r.stdout)
    for field in ("copies", "copy_bytes", "deletes", "delete_bytes", "unplaceable"):
        assert plan[field] == data["fix"][field], field
    assert plan["moves"] + plan["unplaceable"] == data["violations_total"]
    assert plan["egress_unpriced_bytes"] == data["fix"]["egress_unpriced_bytes"]
    assert plan["egress_usd_by_provider"] == {
        k: round(v, 6) for k, v in data["fix"]["egress_usd_by_provider"].items()
    }


def test_rules_and_countries_of_concern(world: World) -> None:
    _, data = report(world)
    rules = {r["rule"]: (r["objects"], r["bytes"], r["violations"]) for r in data["rules"]}
    assert rules == {
        "us-health": (4, 6500, 3),
        "eea-personal": (2, 1100, 1),
        "cn-personal": (1, 100, 1),
        "(none: no law restricts it)": (1, 5000, 0),  # the public video
    }
    us = next(r for r in data["rules"] if r["rule"] == "us-health")
    assert us["citation"] == "28 CFR 202.241; 28 CFR 202.601"
    assert us["source"].endswith("policy.yaml:5")
    concern = data["concern"]
    assert concern["group"] == "COUNTRIES_OF_CONCERN"
    assert set(concern["countries"]) == {"CN", "HK", "MO", "CU", "IR", "KP", "RU", "VE"}
    # Everything on Alibaba (HQ CN), wherever the region is: also the public video.
    assert (concern["objects"], concern["bytes"]) == (4, 9500)
    assert [r["location"] for r in concern["locations"]] == [ALI]


def test_audit_counts_and_newest_first(world: World) -> None:
    _, data = report(world)
    kinds = {k["kind"]: k for k in data["audit"]["kinds"]}
    assert list(kinds) == ["refusal", "access_denied", "threshold_hit"]  # no placements
    assert {k: v["count"] for k, v in kinds.items()} == {
        "refusal": 3,
        "access_denied": 2,
        "threshold_hit": 1,
    }
    assert [e["target"] for e in kinds["refusal"]["recent"]] == [
        "clinic/us/c",
        "clinic/us/b",
        "clinic/us/a",
    ]
    assert kinds["refusal"]["recent"][0]["summary"] == "third refusal"
    assert kinds["access_denied"]["recent"][0]["summary"] == "operation=PUT"
    assert kinds["threshold_hit"]["recent"][0]["summary"] == "100,000 US persons reached"


def test_caps_and_audit_window(world: World) -> None:
    _, data = report(world, "--top", "2", "--recent", "1")
    assert data["violations_total"] == 5  # the total stays exact when the list is capped
    assert data["violations_limit"] == 2
    assert [v["key"] for v in data["violations"]] == ["us/patient-2.json", "us/patient-1.json"]
    kinds = {k["kind"]: k for k in data["audit"]["kinds"]}
    assert kinds["refusal"]["count"] == 3
    assert [e["target"] for e in kinds["refusal"]["recent"]] == ["clinic/us/c"]
    _, data = report(world, "--top", "0", "--since", "2999-01-01T00:00:00Z")
    assert data["violations"] == []
    assert data["violations_total"] == 5
    assert data["audit"]["since"] == "2999-01-01T00:00:00.000000Z"
    assert [k["count"] for k in data["audit"]["kinds"]] == [0, 0, 0]
    _, data = report(world, "--since", "all")
    assert data["audit"]["since"] is None
    assert [k["count"] for k in data["audit"]["kinds"]] == [3, 2, 1]


def test_compliant_under_a_permissive_policy_exits_0(world: World, tmp_path: Path) -> None:
    permissive = tmp_path / "anything.yaml"
    permissive.write_text(
        "name: anything\nrules:\n  - id: no-kp\n    constraints: {deny_countries: [KP]}\n"
    )
    out = tmp_path / "ok.html"
    code, data = report(world, "--policy", str(permissive), "-o", str(out))
    assert code == 0
    assert data["violations_total"] == 0
    assert data["violations"] == []
    assert data["fix"]["copies"] == 0
    assert data["fix"]["egress_usd"] == 0
    assert data["totals"]["objects"] == 8
    assert "Every object is where the policy allows it." in out.read_text()


def test_location_removed_from_config_still_shows_its_data(world: World) -> None:
    config = world.config.read_text()
    # Drop the EU location from the configuration: its data is still recorded there.
    import yaml

    doc = yaml.safe_load(config)
    doc["locations"] = [loc for loc in doc["locations"] if loc["name"] != EU]
    world.config.write_text(yaml.safe_dump(doc))
    _, data = report(world)
    eu = next(r for r in data["locations"] if r["location"] == EU)
    assert eu["configured"] is False
    assert eu["country"] is None
    assert (eu["objects"], eu["bytes"]) == (1, 700)
    assert usage(data["by_country"])["?"] == (1, 700)
    assert data["totals"]["countries"] == 2  # SG and US; the unknown one is not a country
