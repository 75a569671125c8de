"""`residency sweep` through the real CLI: it erases at once what a migration had to leave
behind, reclaims orphans after the grace period, and never a byte an object still needs."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

from migrate_support import AWS, ORACLE, SRC, World, audit_details, payload, placed, run_cli

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


def test_sweep_erases_what_had_to_leave_at_once_and_orphans_after_grace(world: World) -> None:
    migrated_world(world)
    # migrate erased the Alibaba copies itself: nothing is left for the sweep there.
    assert not any((world.dir(SRC) / f"us/u{i}.bin").exists() for i in range(N))
    assert len(audit_details(world, "erased")) == N
    # A run killed between its commit and its erasure leaves a blob that must leave, and a
    # write that died before its commit leaves an old intent with half a blob.
    left = world.dir(SRC) / "us/left-behind.bin"
    left.write_bytes(b"a US person's record")
    abandoned = fresh_blob_key()
    (world.dir(ORACLE) / abandoned).parent.mkdir(parents=True, exist_ok=True)
    (world.dir(ORACLE) / abandoned).write_bytes(b"half a copy")
    fresh_orphan = fresh_blob_key()
    (world.dir(ORACLE) / fresh_orphan).parent.mkdir(parents=True, exist_ok=True)
    (world.dir(ORACLE) / fresh_orphan).write_bytes(b"replaced a moment ago")
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    con = sqlite3.connect(world.root / "data" / "residency.db")
    con.execute(
        "insert into garbage_blobs (location, blob_key, reason, created, claimed) "
        "values (?, 'us/left-behind.bin', 'migrated', ?, ?)",
        (SRC, now, now),
    )
    con.execute(
        "insert into garbage_blobs (location, blob_key, reason, created) "
        "values (?, ?, 'replaced', ?)",
        (ORACLE, fresh_orphan, now),
    )
    con.execute(
        "insert into blob_intents (location, blob_key, created) values (?, ?, ?)",
        (ORACLE, abandoned, "2000-01-01 00:00:00.000000"),
    )
    con.commit()
    con.close()

    # Within the grace period: the bytes that must leave go at once (a stale claim is no
    # obstacle), old orphans go, a fresh orphan stays.
    code, out, err = cli(world, "sweep", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["grace_seconds"] == 3600
    assert (first["erased"], first["intents_expired"], first["deleted"]) == (1, 1, 1)
    assert first["erase_failures"] == []
    assert not left.exists()
    assert not (world.dir(ORACLE) / abandoned).exists()
    assert (world.dir(ORACLE) / fresh_orphan).exists()
    erased = audit_details(world, "erased")
    assert len(erased) == N + 1
    assert erased[-1][1]["message"] == f"erased from {SRC}"

    code, out, err = cli(world, "sweep", "--grace", "0")
    assert code == 0, err
    assert "1 orphaned blobs deleted" in out
    assert not (world.dir(ORACLE) / fresh_orphan).exists()
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
    assert again["deleted"] == again["intents_expired"] == again["erased"] == 0


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
        "values ('gone-elsewhere', 'k', 'replaced', '2000-01-01 00:00:00.000000')"
    )
    con.commit()
    con.close()
    code, out, err = cli(world, "sweep", "--grace", "0", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["deleted"], result["skipped"]) == (0, 1)
    con = sqlite3.connect(world.root / "data" / "residency.db")
    try:
        left = con.execute("select location from garbage_blobs").fetchall()
    finally:
        con.close()
    assert left == [("gone-elsewhere",)]


def test_bytes_that_must_leave_an_unreachable_location_are_reported(world: World) -> None:
    migrated_world(world)
    con = sqlite3.connect(world.root / "data" / "residency.db")
    con.execute(
        "insert into garbage_blobs (location, blob_key, reason, created) "
        "values ('gone-elsewhere', 'us/k', 'migrated', '2000-01-01 00:00:00.000000')"
    )
    con.commit()
    con.close()
    code, out, err = cli(world, "sweep")
    assert code == 1, out + err
    assert "not erased: gone-elsewhere us/k: location gone-elsewhere is not configured" in err
    code, out, err = cli(world, "sweep", "--json")
    assert code == 1
    assert json.loads(out)["erase_failures"][0]["location"] == "gone-elsewhere"
