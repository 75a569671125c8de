"""The README tour's migration, command for command (issue 12: "release means erase"): on fs
locations and with the Alibaba source on a moto-backed s3 location, then the source listed
directly: no byte of a US person remains there, and only then does `report` say compliant."""

from __future__ import annotations

import json
import os
import re
import shlex
import sqlite3
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
import yaml
from migrate_support import REPO, SRC, World, make_world, payload

import testkit

N = 8
SKIPPED = ("--engine",)  # the Ray line runs in test_ray_engine.py (a Ray start per run)


def tour() -> tuple[dict[str, str], list[list[str]]]:
    """The tour's environment and `residency` commands from "Move existing data" on (up to
    the governance part), and its `residency report` line."""
    text = (REPO / "README.md").read_text()
    found = re.search(r"```sh\n(.*?)```", text[text.index("## A short tour") :], re.S)
    assert found is not None
    lines = found.group(1).replace("\\\n", " ").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# Move existing data"))
    end = next(i for i, line in enumerate(lines) if line.startswith("# Governance"))
    part = lines[start:end] + [x for x in lines[end:] if x.startswith("residency report")]
    env: dict[str, str] = {}
    commands: list[list[str]] = []
    for line in part:
        command = line.split(" #", 1)[0].strip()
        if command.startswith("export "):
            name, _, value = command.removeprefix("export ").partition("=")
            env[name] = value
        elif command.startswith("residency ") and not any(s in command for s in SKIPPED):
            commands.append(shlex.split(command)[1:])
    return env, commands


def test_the_tour_is_what_this_test_runs() -> None:
    env, commands = tour()
    assert env == {"RESIDENCY_POLICY": "examples/tiktok-2022.yaml"}
    assert [c[0] for c in commands] == [
        "adopt",
        "plan",
        "migrate",
        "verify",
        "scan",
        "policy",
        "report",
    ]


def run_tour(world: World, source_blobs: Any) -> None:
    """Every tour command in `world.root`, as a user in that directory would type it."""
    config = yaml.safe_load(world.config.read_text())
    del config["policy"]  # the tour's `export RESIDENCY_POLICY=...` says which one
    world.config.write_text(yaml.safe_dump(config))
    (world.root / "examples").symlink_to(REPO / "examples")
    (world.root / "users.csv").write_text(
        "key,class,subject\n"
        + "".join(f"us/user{i}.bin,personal,US\n" for i in range(N))
        + "videos/v1.mp4,public,\n"
    )
    env, commands = tour()

    def cli(*args: str) -> testkit.CliResult:
        return testkit.run_cli(*args, cwd=world.root, env=env, timeout=300)

    adopt, *rest = commands
    r = cli(*adopt)
    assert r.code == 0, r.stdout + r.stderr
    # Before the move: US persons' data at Alibaba, and the report says so.
    r = cli("report", "--json", "-o", "before.html")
    assert r.code == 1
    assert json.loads(r.stdout)["violations_total"] == N
    assert len(source_blobs()) == N + 1

    for args in rest:
        r = cli(*args)
        if args[:2] == ["policy", "diff"]:
            # The 2026 rules keep US users' data on Oracle alone: the AWS copies would break.
            assert r.code == 1, (args, r.stdout, r.stderr)
            assert f"would break:  {N} objects" in r.stdout
            assert "rule us-users-oracle-us-only" in r.stdout
            continue
        assert r.code == 0, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr

    # The source, listed directly: only the public video is left.
    assert source_blobs() == ["videos/v1.mp4"]
    # ...and only now is the report compliant.
    r = cli("report", "--json", "-o", "after.html")
    assert r.code == 0, r.stdout
    after = json.loads(r.stdout)
    assert after["compliant"] is True
    assert (after["violations_total"], after["leftover_blobs"]) == (0, 0)
    con = sqlite3.connect(world.root / "data" / "residency.db")
    try:
        details = [
            json.loads(d)
            for (d,) in con.execute(
                "select detail from audit_entries where kind = ?", ("migration_step",)
            )
        ]
    finally:
        con.close()
    erased = [d for d in details if d.get("step") == "erased"]
    assert len(erased) == N
    assert {d["message"] for d in erased} == {f"erased from {SRC}"}


def test_the_tour_on_fs_locations(world: World) -> None:
    for i in range(N):
        world.put_native(f"us/user{i}.bin", payload(i, 900 + i))
    world.put_native("videos/v1.mp4", b"v" * 700)

    def source_blobs() -> list[str]:
        root = world.dir(SRC)
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

    run_tour(world, source_blobs)


def test_the_tour_with_the_source_on_s3(tmp_path: Path, moto_server: Any) -> None:
    bucket = moto_server.new_bucket()
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_server.endpoint,
        aws_access_key_id=moto_server.access_key,
        aws_secret_access_key=moto_server.secret_key,
        region_name=moto_server.region,
    )
    for i in range(N):
        s3.put_object(Bucket=bucket, Key=f"legacy/us/user{i}.bin", Body=payload(i, 900 + i))
    s3.put_object(Bucket=bucket, Key="legacy/videos/v1.mp4", Body=b"v" * 700)
    s3.put_object(Bucket=bucket, Key="elsewhere/not-ours.bin", Body=b"outside the root")
    source = {
        "name": SRC,
        "provider": "alibaba",
        "region": "ap-southeast-1",
        "scheme": "s3",
        "options": moto_server.location_options(bucket, root="/legacy/"),
    }
    world = make_world(tmp_path, extra=[source])

    def source_blobs() -> list[str]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="legacy/")
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        return sorted(k.removeprefix("legacy/") for k in keys)

    run_tour(world, source_blobs)
    assert s3.get_object(Bucket=bucket, Key="elsewhere/not-ours.bin")["Body"].read() == (
        b"outside the root"
    )


@pytest.fixture(autouse=True)
def _no_ambient_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tour sets RESIDENCY_POLICY itself; one in the caller's environment must not count."""
    if "RESIDENCY_POLICY" in os.environ:
        monkeypatch.delenv("RESIDENCY_POLICY")
