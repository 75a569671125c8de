"""`migrate` re-decides every copy: a plan is a proposal checked against the policy in force and
the stored classification, never an authority (issue 12, item 2), through the real CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import yaml
from migrate_support import (
    AWS,
    ORACLE,
    POLICY,
    SRC,
    World,
    json_lines,
    payload,
    placed,
    run_cli,
)

HEALTH_RULES = """\
rules:
  - {prefix: "health/", class: personal.health, subject: US}
  - {prefix: "us/", class: personal, subject: US}
"""


def cli(world: World, *args: str) -> tuple[int, str, str]:
    r = run_cli(*args, *world.args(), cwd=world.root)
    return r.code, r.stdout, r.stderr


def adopt_at_aws_and_plan(world: World) -> Path:
    """US health and personal records at AWS (allowed; the rule wants Oracle as well)."""
    for i in range(3):
        path = world.dir(AWS) / f"health/h{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload(i, 900))
    path = world.dir(AWS) / "us/u0.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload(9, 800))
    rules = world.root / "health-rules.yaml"
    rules.write_text(HEALTH_RULES)
    code, _, err = cli(
        world, "adopt", AWS, "--bucket", "clinic", "--tenant", "bt", "--rules", str(rules)
    )
    assert code == 0, err
    plan = world.root / "plan.jsonl"
    code, out, err = cli(world, "plan", "-o", str(plan), "--json")
    assert code == 0, out + err
    assert json.loads(out)["routes"] == {f"{AWS} -> {ORACLE}": {"objects": 4, "bytes": 3500}}
    return plan


def edit_plan(plan: Path, target: Path, *, prefix: str, copy: list[str]) -> None:
    """The plan with a new id and, for actions whose key starts with `prefix`, new copies."""
    lines = [json.loads(line) for line in plan.read_text().splitlines()]
    lines[0]["id"] = "edited-" + lines[0]["id"][:20]
    for line in lines[1:-1]:
        if line.get("op") == "move" and line["key"].startswith(prefix):
            line["copy"] = copy
    target.write_text("".join(json.dumps(line) + "\n" for line in lines))


def audit(world: World, kind: str) -> list[tuple[str, dict[str, object]]]:
    con = sqlite3.connect(world.root / "data" / "residency.db")
    try:
        rows = con.execute(
            "select target, detail from audit_entries where kind = ? order by seq", (kind,)
        ).fetchall()
    finally:
        con.close()
    return [(t, json.loads(d)) for t, d in rows]


def test_an_edited_plan_cannot_send_us_health_data_to_alibaba(world: World) -> None:
    plan = adopt_at_aws_and_plan(world)
    edited = world.root / "edited.jsonl"
    edit_plan(plan, edited, prefix="health/", copy=[SRC])

    code, out, err = cli(world, "migrate", str(edited), "--json")
    assert code == 1, out + err
    result = json_lines(out)[-1]
    assert (result["done"], result["refused"], result["failed"]) == (1, 3, 3)
    refusals = sorted(f["key"] for f in result["failures"] if f["refused"])
    assert refusals == ["health/h0.bin", "health/h1.bin", "health/h2.bin"]
    assert all(SRC in f["error"] and "personal.health" in f["error"] for f in result["failures"])
    # Not one byte reached Alibaba; the honest copy went on.
    assert not world.dir(SRC).exists() or not any(p.is_file() for p in world.dir(SRC).rglob("*"))
    for i in range(3):
        assert placed(world, "clinic", f"health/h{i}.bin") == {AWS: payload(i, 900)}
    assert placed(world, "clinic", "us/u0.bin") == {AWS: payload(9, 800), ORACLE: payload(9, 800)}
    # Each refusal is in the audit trail with its reason.
    refused = audit(world, "refusal")
    assert sorted(t for t, _ in refused) == [f"clinic/health/h{i}.bin" for i in range(3)]
    assert all(d["location"] == SRC and d["data_class"] == "personal.health" for _, d in refused)

    # People get the same, one line per refusal.
    code, out, err = cli(world, "migrate", str(edited))
    assert code == 1
    assert "3 refused by policy tiktok-2022" in out
    assert err.count("refused: clinic/health/") == 3
    assert "Traceback" not in err


def test_an_edited_plan_cannot_drop_a_compliant_copy(world: World) -> None:
    plan = adopt_at_aws_and_plan(world)
    lines = [json.loads(line) for line in plan.read_text().splitlines()]
    lines[0]["id"] = "drops-the-good-copy"
    for line in lines[1:-1]:
        line["delete"] = [AWS]
    edited = world.root / "drop.jsonl"
    edited.write_text("".join(json.dumps(line) + "\n" for line in lines))
    code, out, _ = cli(world, "migrate", str(edited), "--json")
    assert code == 1
    result = json_lines(out)[-1]
    assert result["refused"] == 4
    assert "allows" in result["failures"][0]["error"]
    for i in range(3):
        assert (world.dir(AWS) / f"health/h{i}.bin").read_bytes() == payload(i, 900)


def test_a_plan_made_under_another_policy_is_refused_unless_replanned(world: World) -> None:
    plan = adopt_at_aws_and_plan(world)
    # The operator changes the policy: AWS first now.
    changed = yaml.safe_load(Path(POLICY).read_text())
    changed["rules"][0]["constraints"]["prefer"] = [AWS]
    new_policy = world.root / "policy-v2.yaml"
    new_policy.write_text(yaml.safe_dump(changed))
    config = yaml.safe_load(world.config.read_text())
    config["policy"] = str(new_policy)
    world.config.write_text(yaml.safe_dump(config))

    code, out, err = cli(world, "migrate", str(plan))
    assert code == 2, out + err
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "made under another policy or catalog" in err
    assert "residency plan" in err
    assert "--replan" in err
    assert placed(world, "clinic", "us/u0.bin") == {AWS: payload(9, 800)}

    code, out, err = cli(world, "migrate", str(plan), "--replan", "--json")
    assert code == 0, out + err
    assert "re-planned under tiktok-2022" in err
    result = json_lines(out)[-1]
    assert result["plan"] != json.loads(plan.read_text().splitlines()[0])["id"]
    assert result["done"] == 4
    assert placed(world, "clinic", "us/u0.bin") == {AWS: payload(9, 800), ORACLE: payload(9, 800)}


def test_a_plan_made_under_other_location_facts_is_refused(world: World) -> None:
    plan = adopt_at_aws_and_plan(world)
    config = yaml.safe_load(world.config.read_text())
    for loc in config["locations"]:
        if loc["name"] == ORACLE:
            loc["region"] = "us-phoenix-1"  # the same name now stands for another region
    world.config.write_text(yaml.safe_dump(config))
    code, out, err = cli(world, "migrate", str(plan))
    assert code == 2, out + err
    assert "the catalog or the locations" in err

    # A plan from before plans recorded what they were made under is refused the same way.
    lines = plan.read_text().splitlines()
    head = json.loads(lines[0])
    del head["policy_sha256"], head["catalog_sha256"]
    old = world.root / "old.jsonl"
    old.write_text("\n".join([json.dumps(head), *lines[1:]]) + "\n")
    code, _, err = cli(world, "migrate", str(old))
    assert code == 2
    assert "does not record the policy and catalog" in err


def test_migrate_needs_a_policy(world: World, tmp_path: Path) -> None:
    plan = adopt_at_aws_and_plan(world)
    config = yaml.safe_load(world.config.read_text())
    del config["policy"]
    world.config.write_text(yaml.safe_dump(config))
    code, out, err = cli(world, "migrate", str(plan))
    assert code == 2
    assert "no policy: pass --policy (the plan was made under tiktok-2022)" in err
    code, out, err = cli(world, "migrate", str(plan), "--policy", POLICY, "--json")
    assert code == 0, out + err
    assert json_lines(out)[-1]["done"] == 4
