"""`residency migrate --engine ray` on a real local Ray instance, through the real CLI.

One Ray head (2 CPUs, no dashboard) serves the whole module; each CLI run joins it with
`--ray-address`, as a run on a cluster would.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from migrate_support import AWS, ORACLE, SRC, World, json_lines, make_world, payload, run_cli

SIZES = [1000 + 37 * i for i in range(12)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Ray head on this machine, stopped (by its pid) when the module is done."""
    exe = shutil.which("ray")
    assert exe, "ray is required (pip install 'residency[ray]')"
    port = free_port()
    log = tmp_path_factory.mktemp("ray") / "head.log"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                exe,
                "start",
                "--head",
                "--block",
                f"--port={port}",
                "--num-cpus=2",
                "--include-dashboard=false",
                "--disable-usage-stats",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(60)


def cli(world: World, *args: str) -> tuple[int, str, str]:
    r = run_cli(*args, *world.args(), cwd=world.root)
    return r.code, r.stdout, r.stderr


def planned_world(root: Path, moto: Any = None) -> tuple[World, Path]:
    """Twelve US users' objects in Alibaba Singapore (native layout), one public video, and a
    plan moving the US data to Oracle (fs) and AWS (fs, or an S3 endpoint with `moto`)."""
    extra = None
    if moto is not None:
        extra = [
            {
                "name": AWS,
                "provider": "aws",
                "region": "us-east-1",
                "scheme": "s3",
                "options": moto.location_options(moto.new_bucket()),
            }
        ]
    world = make_world(root, extra)
    for i, size in enumerate(SIZES):
        world.put_native(f"us/user{i}.bin", payload(i, size))
    world.put_native("videos/v1.public", b"p" * 500)
    rules = str(world.root / "rules.yaml")
    code, _, err = cli(world, "adopt", SRC, "-b", "tiktok", "--tenant", "bd", "--rules", rules)
    assert code == 0, err
    plan = world.root / "plan.jsonl"
    code, _, err = cli(world, "plan", "-o", str(plan), "--json")
    assert code == 0, err
    return world, plan


def placements(world: World) -> dict[str, list[str]]:
    con = sqlite3.connect(world.root / "data" / "residency.db")
    try:
        rows = con.execute(
            "select v.key, p.location from object_versions v "
            "join placements p on p.object_version_id = v.id "
            "where v.is_latest order by v.key, p.location"
        ).fetchall()
    finally:
        con.close()
    out: dict[str, list[str]] = {}
    for key, location in rows:
        out.setdefault(key, []).append(location)
    return out


def shard_runs(world: World, plan_id: str) -> dict[str, int]:
    con = sqlite3.connect(world.root / "data" / "residency.db")
    try:
        return dict(
            con.execute(
                "select r.id, count(a.id) from migration_runs r "
                "join migration_actions a on a.run_id = r.id where r.id like ? group by r.id",
                (f"{plan_id}-s%",),
            ).fetchall()
        )
    finally:
        con.close()


def test_migrate_on_ray_fs_and_s3(tmp_path: Path, moto_server: Any, ray_address: str) -> None:
    world, plan = planned_world(tmp_path, moto_server)
    plan_id = json.loads(plan.read_text().splitlines()[0])["id"]

    code, out, err = cli(
        world, "migrate", str(plan), "--engine", "ray", "--ray-address", ray_address,
        "--ray-tasks", "2", "--json",
    )  # fmt: skip
    assert code == 0, err
    lines = json_lines(out)
    result = lines[-1]
    assert result["event"] == "result"
    assert result["plan"] == plan_id
    assert (result["done"], result["skipped"], result["failed"]) == (12, 0, 0)
    # Every US object copied twice: to Oracle's directory and to the S3 endpoint.
    assert result["copied_bytes"] == 2 * sum(SIZES)
    assert result["journal"]["done"] == 12
    assert result["journal"]["total"] == 12
    progress = [line for line in lines if line["event"] == "progress"]
    assert progress[-1]["objects"] == 12
    assert progress[-1]["bytes"] == 2 * sum(SIZES)

    # Two shards, each journaled as a run of its own, together the whole plan.
    runs = shard_runs(world, plan_id)
    assert sorted(runs) == [f"{plan_id}-s0of2", f"{plan_id}-s1of2"]
    assert sum(runs.values()) == 12
    assert all(n > 0 for n in runs.values())

    placed = placements(world)
    for i in range(12):
        assert placed[f"us/user{i}.bin"] == sorted([AWS, ORACLE])
    assert placed["videos/v1.public"] == [SRC]

    code, out, err = cli(world, "verify", "--deep", "--json")
    assert code == 0, out + err
    verified = json.loads(out)
    assert verified["mismatches"] == []
    assert verified["blobs"] == 2 * 12 + 1
    code, out, err = cli(world, "audit", "verify")
    assert code == 0, out + err

    # Running the same plan again finds every shard finished: nothing is copied.
    code, out, err = cli(
        world, "migrate", str(plan), "--engine", "ray", "--ray-address", ray_address,
        "--ray-tasks", "2", "--json",
    )  # fmt: skip
    assert code == 0, err
    again = json_lines(out)[-1]
    assert (again["done"], again["failed"], again["copied_bytes"]) == (0, 0, 0)
    assert again["journal"]["done"] == 12
    assert placements(world) == placed


def test_other_shard_count_copies_nothing_again(tmp_path: Path, ray_address: str) -> None:
    """A local run first, then Ray with three shards: new shard journals, but every object is
    already where the plan wants it, so the shards only confirm it (fs -> fs)."""
    world, plan = planned_world(tmp_path)
    code, out, err = cli(world, "migrate", str(plan), "--json")
    assert code == 0, err
    placed = placements(world)

    code, out, err = cli(
        world, "migrate", str(plan), "--engine", "ray", "--ray-address", ray_address,
        "--ray-tasks", "3",
    )  # fmt: skip
    assert code == 0, err
    assert "12 objects done, 0 skipped (changed since planning), 0 failed" in out
    assert len(shard_runs(world, json.loads(plan.read_text().splitlines()[0])["id"])) == 3
    assert placements(world) == placed
    code, out, err = cli(world, "verify", "--deep")
    assert code == 0, out + err


def test_failed_objects_are_summed_and_exit_1(tmp_path: Path, ray_address: str) -> None:
    """A source blob lost after planning fails its object in whichever shard holds it; the
    others finish, and the run reports it and exits 1 exactly as a local run would."""
    world, plan = planned_world(tmp_path)
    (world.dir(SRC) / "us" / "user3.bin").unlink()

    code, out, err = cli(
        world, "migrate", str(plan), "--engine", "ray", "--ray-address", ray_address,
        "--ray-tasks", "2", "--attempts", "1", "--json",
    )  # fmt: skip
    assert code == 1, out + err
    result = json_lines(out)[-1]
    assert (result["done"], result["failed"]) == (11, 1)
    assert [f["key"] for f in result["failures"]] == ["us/user3.bin"]
    assert "source blob missing" in result["failures"][0]["error"]
    assert result["journal"]["failed"] == 1
    assert placements(world)["us/user3.bin"] == [SRC]


def _migrate_without_ray(world: World, plan: Path) -> subprocess.CompletedProcess[str]:
    """The CLI in a Python where `import ray` fails, as it does when Ray is not installed."""
    code = (
        "import sys; sys.modules['ray'] = None; "
        "from residency.cli import main; sys.argv[0] = 'residency'; main()"
    )
    return subprocess.run(
        [sys.executable, "-c", code, "migrate", str(plan), "--engine", "ray", *world.args()],
        cwd=world.root,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_refusals_leave_everything_in_place(tmp_path: Path) -> None:
    world, plan = planned_world(tmp_path)
    before = placements(world)

    proc = _migrate_without_ray(world, plan)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: --engine ray needs Ray, which is not installed: pip install 'residency[ray]'"
    ]

    # Nothing listens there: a quick, readable failure (Ray itself would retry for minutes).
    for address in (f"127.0.0.1:{free_port()}", f"ray://127.0.0.1:{free_port()}"):
        code, out, err = cli(
            world, "migrate", str(plan), "--engine", "ray", "--ray-address", address
        )
        assert code == 2, out + err
        assert len(err.strip().splitlines()) == 1, err  # one line, no traceback
        assert "no Ray cluster answers there" in err
    # A cluster on another machine cannot share this machine's SQLite file.
    for address in ("203.0.113.7:6379", "ray://203.0.113.7:10001"):
        code, out, err = cli(
            world, "migrate", str(plan), "--engine", "ray", "--ray-address", address
        )
        assert code == 2, out + err
        assert len(err.strip().splitlines()) == 1, err  # one line, no traceback
        assert "cannot share this SQLite database" in err
        assert "PostgreSQL" in err
    code, out, err = cli(world, "migrate", str(plan), "--ray-address", "auto")
    assert code == 2, out + err
    assert len(err.strip().splitlines()) == 1, err  # one line, no traceback
    assert "--ray-address and --ray-tasks need --engine ray" in err
    assert placements(world) == before


def _shard_tasks_running() -> bool:
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if cmdline and cmdline[0].startswith("ray::_run_shard"):
            return True
    return False


def test_kill_driver_then_resume(tmp_path: Path, ray_address: str) -> None:
    """`kill -9` of the driver mid-run: Ray stops its tasks, the shards' journals hold what
    was committed, and the same command finishes the job without a second copy."""
    world = make_world(tmp_path)
    size = 96 << 10
    for i in range(10):
        world.put_native(f"us/big{i}.bin", payload(i, size))
    rules = str(world.root / "rules.yaml")
    code, _, err = cli(world, "adopt", SRC, "-b", "tiktok", "--tenant", "bd", "--rules", rules)
    assert code == 0, err
    plan = world.root / "plan.jsonl"
    code, _, err = cli(world, "plan", "-o", str(plan))
    assert code == 0, err

    args = [sys.executable, "-m", "residency", "migrate", str(plan), "--engine", "ray"]
    args += ["--ray-address", ray_address, "--ray-tasks", "2", "--bwlimit", "120K", "--json"]
    driver = subprocess.Popen(
        [*args, *world.args()], cwd=world.root, stdout=subprocess.PIPE, text=True
    )
    assert driver.stdout is not None
    for line in driver.stdout:
        event = json.loads(line)
        if event["event"] == "progress" and event["objects"] >= 1:
            break
    else:
        pytest.fail(f"the run ended before it could be killed (exit {driver.wait()})")
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 60
    while _shard_tasks_running():
        assert time.monotonic() < deadline, "Ray kept the dead driver's tasks running"
        time.sleep(0.5)
    interrupted = placements(world)
    moved = [k for k, locs in interrupted.items() if SRC not in locs]
    assert 1 <= len(moved) < 10

    code, out, err = cli(
        world, "migrate", str(plan), "--engine", "ray", "--ray-address", ray_address,
        "--ray-tasks", "2", "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json_lines(out)[-1]
    assert result["failed"] == 0
    assert result["journal"]["done"] == 10
    # What was verified before the kill is not copied again.
    assert result["copied_bytes"] <= 2 * size * (10 - len(moved))
    for key, locs in placements(world).items():
        assert locs == sorted([AWS, ORACLE]), key
    code, out, err = cli(world, "verify", "--deep")
    assert code == 0, out + err
    code, out, err = cli(world, "audit", "verify")
    assert code == 0, out + err


def test_an_unloadable_bucket_policy_stops_a_ray_run_up_front(
    tmp_path: Path, ray_address: str
) -> None:
    """As with the local engine: one line naming the bucket and its file, exit 2, nothing
    moved (not a failure inside a task on some worker)."""
    world, plan = planned_world(tmp_path)
    germany = world.root / "germany.yaml"
    germany.write_text(
        "name: germany\nrules:\n  - id: de\n    constraints: {allow_countries: [DE]}\n"
    )
    code, _, err = cli(world, "bucket", "policy", "tiktok", str(germany))
    assert code == 0, err
    germany.unlink()
    code, out, err = cli(
        world, "migrate", str(plan), "--engine", "ray", "--ray-address", ray_address
    )
    assert code == 2, out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: bucket tiktok: its policy "), lines[0]
    assert "Traceback" not in err
    assert all(where == [SRC] for where in placements(world).values())  # nothing moved
