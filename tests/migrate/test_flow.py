"""Adopt -> plan -> migrate -> verify through the real CLI, on fs locations."""

from __future__ import annotations

import json
from pathlib import Path

from migrate_support import AWS, ORACLE, SRC, World, json_lines, payload, placed, run_cli


def cli(world: World, *args: str) -> tuple[int, str, str]:
    r = run_cli(*args, *world.args(), cwd=world.root)
    return r.code, r.stdout, r.stderr


def test_adopt_plan_migrate_verify(world: World) -> None:
    for i in range(12):
        world.put_native(f"us/user{i}.bin", payload(i, 1000 + i))
    world.put_native("videos/v1.public", b"p" * 500)

    code, out, err = cli(
        world,
        "adopt",
        SRC,
        "--bucket",
        "tiktok",
        "--tenant",
        "bytedance",
        "--rules",
        str(world.root / "rules.yaml"),
        "--json",
    )
    assert code == 0, err
    adopted = json.loads(out)
    assert adopted["adopted"] == 13
    assert adopted["by_class"] == {"personal": 12, "public": 1}

    plan = world.root / "plan.jsonl"
    code, out, err = cli(world, "plan", "-o", str(plan), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["objects"] == 13
    # 12 US objects: copy to Oracle and AWS (2 replicas, distinct providers), drop Alibaba.
    assert summary["moves"] == 12
    assert summary["copies"] == 24
    assert summary["deletes"] == 12
    assert summary["routes"][f"{SRC} -> {ORACLE}"]["objects"] == 12
    # The catalog has no Alibaba egress price: the bytes are reported, not guessed in USD.
    assert summary["egress_unpriced_bytes"]["alibaba"] == 2 * sum(1000 + i for i in range(12))
    assert "alibaba" not in summary["egress_usd_by_provider"]
    assert summary["unplaceable"] == 0

    code, out, err = cli(world, "migrate", str(plan), "--json")
    assert code == 0, err
    result = json_lines(out)[-1]
    assert result["event"] == "result"
    assert result["done"] == 12
    assert result["failed"] == 0
    # Release means erase: the Alibaba copies are gone once the new ones are durable.
    assert result["erased"] == 12
    assert result["erased_bytes"] == sum(1000 + i for i in range(12))
    assert result["erase_failures"] == []

    for i in range(12):
        want = payload(i, 1000 + i)
        assert placed(world, "tiktok", f"us/user{i}.bin") == {ORACLE: want, AWS: want}
        assert not (world.dir(SRC) / f"us/user{i}.bin").exists()
    assert (world.dir(SRC) / "videos/v1.public").read_bytes() == b"p" * 500
    code, out, err = cli(world, "verify", "--deep", "--json")
    assert code == 0, out + err
    assert json.loads(out)["blobs"] == 12 * 2 + 1

    # Nothing left to do: a new plan is empty, and re-running the old one is a no-op.
    code, out, _ = cli(world, "plan", "--json")
    assert json.loads(out)["moves"] == 0
    code, out, _ = cli(world, "migrate", str(plan), "--json")
    assert code == 0
    assert json_lines(out)[-1]["done"] == 0


def test_plan_reports_objects_without_compliant_location(world: World, tmp_path: Path) -> None:
    world.put_native("us/a.bin", b"a" * 10)
    world.put_native("eu/b.bin", b"b" * 10)
    code, _, err = cli(
        world,
        "adopt",
        SRC,
        "--bucket",
        "tbk",
        "--tenant",
        "x",
        "--rules",
        str(world.root / "rules.yaml"),
    )
    assert code == 0, err
    plan = tmp_path / "p.jsonl"
    code, out, err = cli(world, "plan", "-o", str(plan), "--json")
    summary = json.loads(out)
    # EEA personal data: no EEA location is configured.
    assert code == 1, out + err
    assert summary["unplaceable"] == 1
    assert summary["unplaceable_sample"][0]["key"] == "eu/b.bin"
    lines = json_lines(plan.read_text())
    ops = [str(line.get("op")) for line in lines[1:-1]]
    assert sorted(ops) == ["move", "unplaceable"]
    code, out, err = cli(world, "plan")
    assert code == 1
    assert "no compliant location" in out
    assert "eu/b.bin" in out


def test_adding_a_replica_keeps_keys_and_never_overwrites_foreign_blobs(world: World) -> None:
    # US data already at AWS (compliant) needs its second replica at Oracle.
    for i in range(3):
        path = world.dir(AWS) / f"us/{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload(i, 700))
    # Oracle already holds an unrelated blob under one of those native keys.
    foreign = world.dir(ORACLE) / "us/2.bin"
    foreign.parent.mkdir(parents=True, exist_ok=True)
    foreign.write_bytes(b"not yours")
    code, _, err = cli(
        world,
        "adopt",
        AWS,
        "--bucket",
        "tiktok",
        "--tenant",
        "bt",
        "--rules",
        str(world.root / "rules.yaml"),
    )
    assert code == 0, err
    plan = world.root / "p.jsonl"
    code, out, err = cli(world, "plan", "-o", str(plan), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["copies"], summary["deletes"]) == (3, 0)
    assert list(summary["routes"]) == [f"{AWS} -> {ORACLE}"]

    code, out, err = cli(world, "migrate", str(plan), "--json")
    assert code == 1
    result = json_lines(out)[-1]
    assert result["done"] == 2
    assert [f["key"] for f in result["failures"]] == ["us/2.bin"]
    assert "did not write" in result["failures"][0]["error"]
    assert foreign.read_bytes() == b"not yours"
    for i in range(2):
        # Same (native) key at both locations: the model's one key per segment.
        assert placed(world, "tiktok", f"us/{i}.bin") == {
            AWS: payload(i, 700),
            ORACLE: payload(i, 700),
        }
        assert (world.dir(ORACLE) / f"us/{i}.bin").read_bytes() == payload(i, 700)
    assert placed(world, "tiktok", "us/2.bin") == {AWS: payload(2, 700)}
