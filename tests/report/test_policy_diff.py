"""`residency policy diff OLD NEW` over a real database: what the new policy would break."""

from __future__ import annotations

import json
from pathlib import Path

from report_support import ALI, AWS, SCRIPT_KEY, World, run_cli

PERMISSIVE = "name: permissive\nrules:\n  - id: no-kp\n    constraints: {deny_countries: [KP]}\n"


def _diff(world: World, old: str | Path, new: str | Path, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    r = run_cli(
        "policy", "diff", str(old), str(new), *world.args(), "--json", *extra, cwd=world.root
    )
    assert "Traceback" not in r.stderr
    return r.code, (json.loads(r.stdout) if r.stdout.strip() else {})


def test_tightening_the_policy_counts_what_breaks_where_it_goes_and_why(world: World) -> None:
    loose = world.root / "permissive.yaml"
    loose.write_text(PERMISSIVE)
    code, data = _diff(world, loose, world.policy)
    assert code == 1
    assert data["objects"] == 8
    # US health at Alibaba (3 objects), an EU record in the US, a PRC record in the US.
    assert data["breaking"] == {"objects": 5, "bytes": 1000 + 3000 + 500 + 400 + 100}
    assert data["unplaceable"] == {"objects": 1, "bytes": 100}  # no mainland China location
    assert data["leaving_bytes"] == {ALI: 4500, AWS: 500}
    assert data["rules"] == {"us-health": 3, "eea-personal": 1, "cn-personal": 1}
    assert set(data["destinations_bytes"]) <= {"oci-us-ashburn-1", AWS, "aws-eu-central-1"}
    assert data["egress_usd"] > 0
    keys = {item["key"] for item in data["sample"]}
    assert SCRIPT_KEY in keys
    assert data["fixed"]["objects"] == 0


def test_loosening_or_keeping_the_policy_breaks_nothing(world: World) -> None:
    loose = world.root / "permissive.yaml"
    loose.write_text(PERMISSIVE)
    code, data = _diff(world, world.policy, loose)
    assert code == 0
    assert data["breaking"]["objects"] == 0
    assert data["fixed"]["objects"] == 5
    code, same = _diff(world, world.policy, world.policy)
    assert code == 0
    assert same["already_out_of_bounds"]["objects"] == 5
    text = run_cli("policy", "diff", str(world.policy), str(loose), *world.args(), cwd=world.root)
    assert text.code == 0
    assert "would break:  0 objects" in text.stdout


def test_bad_input_is_one_line(world: World, tmp_path: Path) -> None:
    r = run_cli("policy", "diff", "preset:nope", str(world.policy), *world.args(), cwd=world.root)
    assert r.code == 2
    assert "unknown preset 'nope'" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "residency.yaml").write_text(f"data_dir: {empty / 'data'}\n")
    r = run_cli(
        "policy",
        "diff",
        "preset:default",
        "preset:eu-gdpr",
        "--config",
        str(empty / "residency.yaml"),
        cwd=empty,
    )
    assert r.code == 2
    assert "Traceback" not in r.stderr
    assert not (empty / "data" / "residency.db").exists()  # a read never creates a database


def test_plan_report_and_diff_honour_a_bucket_policy_as_the_gateway_does(world: World) -> None:
    """Issue 12: plan ignored a bucket's own policy. One effective policy, every caller."""
    germany = world.root / "germany.yaml"
    germany.write_text(
        "name: germany\nrules:\n  - id: all-in-germany\n    constraints: {allow_countries: [DE]}\n"
    )
    set_it = run_cli("bucket", "policy", "media", str(germany), *world.args(), cwd=world.root)
    assert set_it.code == 0, set_it.stderr
    plan_file = world.root / "plan.jsonl"
    plan = run_cli("plan", *world.args(), "-o", str(plan_file), "--json", cwd=world.root)
    assert plan.code in (0, 1), plan.stderr
    moves = [json.loads(line) for line in plan_file.read_text().splitlines()]
    video = [m for m in moves if m.get("key") == "public/video.mp4"]
    assert len(video) == 1, moves
    assert video[0]["copy"] == ["aws-eu-central-1"]
    report = run_cli("report", "--json", *world.args(), cwd=world.root)
    rows = {r["key"]: r for r in json.loads(report.stdout)["violations"]}
    assert "public/video.mp4" in rows
    # The diff judges each object under its bucket's policy too: a permissive operator
    # policy does not put the video back in bounds.
    loose = world.root / "permissive.yaml"
    loose.write_text(PERMISSIVE)
    code, data = _diff(world, world.policy, loose)
    assert code == 0  # loosening breaks nothing
    assert data["already_out_of_bounds"]["objects"] == 1  # the video, under either


def test_the_report_shows_exceptions_and_the_chain(world: World) -> None:
    policy = world.policy.read_text() + (
        "exceptions:\n"
        "  - id: dpf-aws\n    relaxes: eea-personal\n    mechanism: gdpr-art45-dpf\n"
        "    locations: [aws-us-east-1]\n    evidence: DPF list entry 2026-03\n"
        "    expires: 2099-01-01\n"
        "  - id: old-sccs\n    relaxes: eea-personal\n    mechanism: gdpr-art46-sccs\n"
        "    locations: [oci-us-ashburn-1]\n    evidence: DPA-2019\n    expires: 2020-01-01\n"
    )
    world.policy.write_text(policy)
    r = run_cli("report", "--json", *world.args(), "-o", str(world.root / "r.html"), cwd=world.root)
    data = json.loads(r.stdout)
    exceptions = {e["id"]: e for e in data["policy"]["exceptions"]}
    assert exceptions["dpf-aws"]["active"] is True
    assert exceptions["dpf-aws"]["objects"] == 1  # eu/stray.json at AWS is now in bounds
    assert exceptions["old-sccs"]["active"] is False
    assert data["chain"]["ok"] is True
    assert data["chain"]["entries"] > 0
    html = (world.root / "r.html").read_text()
    assert "dpf-aws" in html
    assert "expired: not applied" in html
    assert "Intact:" in html
