"""kill -9 at random moments, resume, repeat: zero loss, every checksum matching."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

from migrate_support import (
    AWS,
    ORACLE,
    SRC,
    World,
    adopt_and_plan,
    json_lines,
    payload,
    placed,
    run_cli,
)

N = 240


def test_sigkill_and_resume_until_done(world: World) -> None:
    sizes = {i: 2048 + (i * 397) % 6000 for i in range(N)}
    for i, size in sizes.items():
        world.put_native(f"us/u{i:04d}.bin", payload(i, size))
    plan = adopt_and_plan(world)

    rng = random.Random()
    env = {**os.environ, "NO_COLOR": "1"}
    # Throttled (20 KB/s and 10 requests/s: about 5 objects/s) so that each run is still
    # copying when it is killed, however fast the machine is.
    cmd = [
        sys.executable,
        "-m",
        "residency",
        "migrate",
        str(plan),
        "--json",
        "-j",
        "8",
        "--bwlimit",
        "20K",
        "--max-rps",
        "10",
        *world.args(),
    ]
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(
            cmd, cwd=world.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(2.0, 4.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        # At every kill point each object is fully readable somewhere. A kill between a
        # commit and its erasure leaves source blobs that must still leave: verify says so.
        v = run_cli("verify", "--deep", "--json", *world.args(), cwd=world.root)
        found = json.loads(v.stdout)
        assert found["objects"] == N
        assert found["mismatches"] == []
        assert v.code == (1 if found["leftovers"] else 0), v.stdout + v.stderr
        assert all(x["location"] == SRC for x in found["leftovers"])
    assert kills >= 2, "the runs finished too fast to be killed; raise N"

    r = run_cli("migrate", str(plan), "--json", *world.args(), cwd=world.root, timeout=300)
    assert r.code == 0, r.stdout + r.stderr
    journal = json_lines(r.stdout)[-1]["journal"]
    assert journal.get("done") == N
    assert journal["failed"] == 0

    for i, size in sizes.items():
        want = payload(i, size)
        assert placed(world, "tiktok", f"us/u{i:04d}.bin") == {ORACLE: want, AWS: want}
    v = run_cli("verify", "--deep", "--json", *world.args(), cwd=world.root)
    assert v.code == 0, v.stdout
    report = json.loads(v.stdout)
    assert report["objects"] == N
    assert report["blobs"] == 2 * N
    # The batched audit appends kept the hash chain intact through every kill.
    a = run_cli("audit", "verify", *world.args(), cwd=world.root)
    assert a.code == 0, a.stdout + a.stderr
    # The released source blobs were erased, each once, including those a kill cut off between
    # the commit and the erasure (the next run erased them first). Blobs of attempts cut short
    # by a kill are still covered by their intents (fresh keys, never reused), so the sweep
    # reclaims them; none of them is referenced by the object.
    import sqlite3

    con = sqlite3.connect(world.root / "data" / "residency.db")
    try:
        garbage = con.execute("select location, count(*) from garbage_blobs group by 1").fetchall()
        moved = con.execute(
            "select count(*) from audit_entries where kind='migration_step' "
            "and detail like '%\"moved\"%'"
        ).fetchone()[0]
        erased = con.execute(
            "select count(*) from audit_entries where kind='migration_step' "
            "and detail like '%\"erased\"%'"
        ).fetchone()[0]
        live_intents = con.execute(
            "select count(*) from blob_intents i join segments s on s.blob_key = i.blob_key"
        ).fetchone()[0]
    finally:
        con.close()
    assert dict(garbage) == {}
    assert moved == N  # one audit entry per object: nothing was switched twice
    assert erased == N
    assert not any(p.is_file() for p in world.dir(SRC).rglob("*"))
    assert live_intents == 0
