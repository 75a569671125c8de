"""Helpers for the migration tests: a small TikTok world (an Alibaba Singapore bucket full of
user data, US targets) and a way to run the real CLI."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import testkit
from residency.policy import Policy
from testkit import CliResult

REPO = Path(__file__).resolve().parents[2]
POLICY = str(REPO / "examples" / "tiktok-2022.yaml")
SRC = "alibaba-ap-southeast-1"
ORACLE = "oracle-us-ashburn-1"
AWS = "aws-us-east-1"

RULES = """\
rules:
  - {prefix: "us/", class: personal, subject: US}
  - {prefix: "eu/", class: personal, subject: DE}
  - {regex: "\\\\.public$", class: public}
"""


@dataclass
class World:
    root: Path
    config: Path
    locations: dict[str, dict[str, Any]]

    def dir(self, location: str) -> Path:
        return Path(self.locations[location]["options"]["root"])

    def put_native(self, key: str, data: bytes) -> None:
        path = self.dir(SRC) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def args(self) -> list[str]:
        return ["--config", str(self.config)]


def tiktok_policy() -> Policy:
    """The policy the world's residency.yaml configures, for tests that drive the engine."""
    from residency.policy import load_policy

    return load_policy(POLICY)


def make_world(root: Path, extra: list[dict[str, Any]] | None = None) -> World:
    locs = {
        name: {
            "name": name,
            "provider": provider,
            "region": region,
            "scheme": "fs",
            "options": {"root": str(root / "stores" / name)},
        }
        for name, provider, region in (
            (SRC, "alibaba", "ap-southeast-1"),
            (ORACLE, "oci", "us-ashburn-1"),
            (AWS, "aws", "us-east-1"),
        )
    }
    for loc in extra or []:
        locs[loc["name"]] = loc
    config = root / "residency.yaml"
    config.write_text(
        yaml.safe_dump(
            {"data_dir": str(root / "data"), "policy": POLICY, "locations": list(locs.values())}
        )
    )
    (root / "rules.yaml").write_text(RULES)
    return World(root, config, locs)


def payload(i: int, size: int) -> bytes:
    """Distinct, reproducible bytes per object."""
    seed = f"object-{i}-".encode()
    return (seed * (size // len(seed) + 1))[:size]


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def placed(world: World, bucket: str, key: str) -> dict[str, bytes]:
    """The bytes of the latest version of `key` at each location the database places it."""
    import sqlite3

    con = sqlite3.connect(world.root / "data" / "residency.db")
    try:
        rows = con.execute(
            "select p.location, s.blob_key from object_versions v "
            "join buckets b on b.id = v.bucket_id "
            "join segments s on s.object_version_id = v.id "
            "join placements p on p.object_version_id = v.id "
            "where b.name = ? and v.key = ? and v.is_latest order by p.location, s.seq",
            (bucket, key),
        ).fetchall()
    finally:
        con.close()
    out: dict[str, bytes] = {}
    for location, blob_key in rows:
        out[location] = out.get(location, b"") + (world.dir(location) / blob_key).read_bytes()
    return out


def run_cli(*args: str, cwd: Path, timeout: float = 300) -> CliResult:
    """`python -m residency ARGS` in a subprocess, as a user would run it."""
    return testkit.run_cli(*args, cwd=cwd, timeout=timeout)


def adopt_and_plan(world: World, source: str = SRC) -> Path:
    """Adopt `source` into bucket tiktok (tenant bt) by the world's rules; plan to plan.jsonl."""
    r = run_cli(
        "adopt",
        source,
        "--bucket",
        "tiktok",
        "--tenant",
        "bt",
        "--rules",
        str(world.root / "rules.yaml"),
        *world.args(),
        cwd=world.root,
    )
    assert r.code == 0, r.stderr
    plan = world.root / "plan.jsonl"
    r = run_cli("plan", "-o", str(plan), *world.args(), cwd=world.root)
    assert r.code == 0, r.stderr
    return plan


def audit_details(world: World, step: str) -> list[tuple[str, dict[str, Any]]]:
    """(target, detail) of every `migration_step` audit entry of `step` (e.g. `erased`)."""
    con = sqlite3.connect(world.root / "data" / "residency.db")
    try:
        rows = con.execute(
            "select target, detail from audit_entries where kind = 'migration_step'"
        ).fetchall()
    finally:
        con.close()
    found = [(t, json.loads(d)) for t, d in rows]
    return [(t, d) for t, d in found if d.get("step") == step]
