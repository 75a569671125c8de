"""`residency sweep` through the real CLI: after a migration it reclaims the released sources
and abandoned writes, and never a byte an object still needs."""

from __future__ import annotations

import json
import sqlite3

from migrate_support import AWS, ORACLE, SRC, World, payload, placed, run_cli

from residency.meta.ids import fresh_blob_key

N = 6


def cli(world: World, *args: str) -> tuple[int, str, str]:
    r = run_cli(*args, *world.args(), cwd=world.root)
    return r.code, r.stdout, r.stderr


def migrated_world(world: World) -> None:
    for i in range(N):
        world.put_native(f"us/u{i}.bin", payload(i, 700 + i))
    rules = str(world.root / "rules.yaml")
    code, _, err = cli(
        world, "adopt", SRC, "--bucket", "tiktok", "--tenant", "bt", "--rules", rules
    )
    assert code == 0, err
    plan = world.root / "plan.jsonl"
    assert cli(world, "plan", "-o", str(plan))[0] == 0
    code, _, err = cli(world, "migrate", str(plan), "--json")
    assert code == 0, err


def test_sweep_reclaims_released_sources_and_abandoned_writes(world: World) -> None:
    migrated_world(world)
    # A write that died before its commit: an old intent and the blob it left behind.
    abandoned = fresh_blob_key()
    (world.dir(ORACLE) / abandoned).parent.mkdir(parents=True, exist_ok=True)
    (world.dir(ORACLE) / abandoned).write_bytes(b"half a copy")
    con = sqlite3.connect(world.root / "data" / "residency.db")
    con.execute(
        "insert into blob_intents (location, blob_key, created) values (?, ?, ?)",
        (ORACLE, abandoned, "2000-01-01 00:00:00.000000"),
    )
    con.commit()
    con.close()

    # Within the grace period nothing released a moment ago is touched.
    code, out, err = cli(world, "sweep", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["grace_seconds"] == 3600
    assert (first["intents_expired"], first["deleted"], first["failed"]) == (1, 1, 0)
    assert not (world.dir(ORACLE) / abandoned).exists()
    assert all((world.dir(SRC) / f"us/u{i}.bin").exists() for i in range(N))

    code, out, err = cli(world, "sweep", "--grace", "0")
    assert code == 0, err
    assert f"{N} orphaned blobs deleted" in out
    assert not any((world.dir(SRC) / f"us/u{i}.bin").exists() for i in range(N))
    for i in range(N):
        want = payload(i, 700 + i)
        assert placed(world, "tiktok", f"us/u{i}.bin") == {ORACLE: want, AWS: want}
    code, out, _ = cli(world, "verify", "--deep", "--json")
    assert code == 0, out
    assert json.loads(out)["objects"] == N

    # Nothing left to do: a second sweep is a no-op.
    code, out, _ = cli(world, "sweep", "--grace", "0", "--json")
    assert code == 0
    again = json.loads(out)
    assert again["deleted"] == again["intents_expired"] == again["failed"] == 0


def test_sweep_rejects_a_bad_grace_in_one_line(world: World) -> None:
    for bad in ("soon", "5x", "-1h", ""):
        code, out, err = cli(world, "sweep", "--grace", bad)
        assert code == 2, (bad, out, err)
        assert "--grace" in err
        assert "not a duration" in err
        assert "Traceback" not in err
        assert out == ""


def test_sweep_keeps_garbage_at_unconfigured_locations(world: World) -> None:
    migrated_world(world)
    con = sqlite3.connect(world.root / "data" / "residency.db")
    con.execute(
        "insert into garbage_blobs (location, blob_key, reason, created) "
        "values ('gone-elsewhere', 'k', 'migrated', '2000-01-01 00:00:00.000000')"
    )
    con.commit()
    con.close()
    code, out, err = cli(world, "sweep", "--grace", "0", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["deleted"], result["skipped"]) == (N, 1)
    con = sqlite3.connect(world.root / "data" / "residency.db")
    try:
        left = con.execute("select location from garbage_blobs").fetchall()
    finally:
        con.close()
    assert left == [("gone-elsewhere",)]
