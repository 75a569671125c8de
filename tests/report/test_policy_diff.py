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
