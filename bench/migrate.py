"""Migration engine benchmark: residency vs rclone copying the same set, and planning at scale.

Copies (each case starts from an empty destination):

- residency: `adopt` + `plan` + `migrate` through the real CLI (end to end, process start-up
  included), and the `migrate` step alone;
- rclone: `rclone copy` with default settings (`--transfers 4`) and tuned (`--transfers 32`).

Cases: fs -> fs, and moto (S3) -> fs. Every residency copy is also verified (re-read and
checksummed) before the source is released; rclone compares sizes/mod-times only. Planning:
N synthetic objects inserted straight into SQLite, then `plan_to_file` timed in-process.

    python bench/migrate.py --quick      # 2,000 x 16 KiB + 2 x 16 MiB, plan 200k objects
    python bench/migrate.py              # 20,000 x 16 KiB + 20 x 64 MiB, plan 1M objects
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    MIB,
    BenchError,
    Ratio,
    Server,
    describe_machine,
    moto_server,
    print_ratios,
    print_table,
    ratio,
    require_tool,
)

KIB = 1024
POLICY = """\
name: bench-to-oracle
rules:
  - id: to-oracle
    constraints:
      allow_providers: [oci]
"""
SRC, DST = "alibaba-ap-southeast-1", "oracle-us-ashburn-1"


@dataclass(frozen=True)
class Workload:
    small: int
    small_size: int
    large: int
    large_size: int

    @property
    def objects(self) -> int:
        return self.small + self.large

    @property
    def bytes(self) -> int:
        return self.small * self.small_size + self.large * self.large_size

    def describe(self) -> str:
        return (
            f"{self.small:,} x {self.small_size // KIB} KiB + "
            f"{self.large} x {self.large_size // MIB} MiB"
        )


@dataclass(frozen=True)
class Timing:
    name: str
    seconds: float
    objects: int
    nbytes: int

    def row(self) -> tuple[str, str, str, str]:
        return (
            self.name,
            f"{self.seconds:.2f} s",
            f"{self.objects / self.seconds:,.0f} obj/s",
            f"{self.nbytes / MIB / self.seconds:,.1f} MiB/s",
        )


def make_files(root: Path, w: Workload) -> None:
    """Random bytes (incompressible); small objects share one random block, offset per key."""
    block = os.urandom(max(w.small_size * 2, 1))
    for i in range(w.small):
        path = root / f"small/{i // 1000:03d}/{i:06d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        off = i % w.small_size
        path.write_bytes(block[off : off + w.small_size])
    for i in range(w.large):
        path = root / f"large/{i:03d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            left = w.large_size
            while left:
                n = min(left, 8 * MIB)
                f.write(os.urandom(n))
                left -= n


def upload_dir(srv: Server, bucket: str, root: Path) -> None:
    rclone(["copy", str(root), f"moto:{bucket}", "--transfers", "32"], srv)


def rclone_env(srv: Server | None) -> dict[str, str]:
    # A custom CA bundle in the environment makes rclone's S3 client refuse plain HTTP.
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    env["RCLONE_CONFIG"] = os.devnull
    if srv is not None:
        env.update(
            RCLONE_CONFIG_MOTO_TYPE="s3",
            RCLONE_CONFIG_MOTO_PROVIDER="Other",
            RCLONE_CONFIG_MOTO_ENDPOINT=f"http://127.0.0.1:{srv.port}",
            RCLONE_CONFIG_MOTO_ACCESS_KEY_ID="testing",
            RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY="testing",
            RCLONE_CONFIG_MOTO_REGION="us-east-1",
        )
    return env


def rclone(args: list[str], srv: Server | None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [require_tool("rclone"), *args], env=rclone_env(srv), capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise BenchError(f"rclone {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def residency(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "residency", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    if proc.returncode != 0:
        raise BenchError(f"residency {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def residency_copy(work: Path, source: dict[str, object], w: Workload) -> tuple[float, float]:
    """(end-to-end seconds, migrate-only seconds) into a fresh destination and database."""
    run = work / f"res-{uuid.uuid4().hex[:6]}"
    run.mkdir()
    (run / "policy.yaml").write_text(POLICY)
    dst = {
        "name": DST,
        "provider": "oci",
        "region": "us-ashburn-1",
        "scheme": "fs",
        "options": {"root": str(run / "dst")},
    }
    (run / "residency.yaml").write_text(
        yaml.safe_dump(
            {
                "data_dir": str(run / "data"),
                "policy": str(run / "policy.yaml"),
                "locations": [source, dst],
            }
        )
    )
    cfg = ["--config", str(run / "residency.yaml")]
    t0 = residency(["adopt", SRC, "--bucket", "bench", "--tenant", "bench", *cfg], run)
    t1 = residency(["plan", "-o", str(run / "plan.jsonl"), *cfg], run)
    t2 = residency(["migrate", str(run / "plan.jsonl"), "-j", "32", "--json", *cfg], run)
    copied = sum(1 for p in (run / "dst").rglob("*") if p.is_file() and "blobs" in p.parts)
    if copied != w.objects:
        raise BenchError(f"residency copied {copied} objects, expected {w.objects}")
    return t0 + t1 + t2, t2


def copy_case(
    name: str, work: Path, w: Workload, source: dict[str, object], remote: str, srv: Server | None
) -> list[Timing]:
    timings = []
    total, migrate_only = residency_copy(work, source, w)
    timings.append(Timing(f"{name}: residency adopt+plan+migrate", total, w.objects, w.bytes))
    timings.append(Timing(f"{name}: residency migrate", migrate_only, w.objects, w.bytes))
    for label, extra in (("rclone default", []), ("rclone --transfers 32", ["--transfers", "32"])):
        dst = work / f"rclone-{uuid.uuid4().hex[:6]}"
        seconds = rclone(["copy", remote, str(dst), *extra], srv)
        timings.append(Timing(f"{name}: {label}", seconds, w.objects, w.bytes))
        shutil.rmtree(dst, ignore_errors=True)
    return timings


def bench_plan(work: Path, n: int) -> float:
    """Seconds to plan `n` adopted objects (US personal data at Alibaba) with the TikTok policy."""
    from residency.catalog import load_catalog
    from residency.config import LocationConfig
    from residency.meta import Database
    from residency.migrate.planner import plan_to_file
    from residency.policy import load_policy

    db_path = work / "plan.db"
    db = Database(f"sqlite+aiosqlite:///{db_path}")
    asyncio.run(db.migrate())
    asyncio.run(db.dispose())
    con = sqlite3.connect(db_path)
    now = "2026-01-01 00:00:00.000000"
    con.execute("insert into tenants (id, name, created) values (1, 'bench', ?)", (now,))
    con.execute(
        "insert into buckets (id, name, tenant_id, created) values (1, 'bench', 1, ?)", (now,)
    )
    classes = [("personal", "US"), ("public", None), ("personal", "DE"), ("biometric", "US")]
    con.executemany(
        "insert into object_versions (id, bucket_id, key, version_id, is_latest, "
        "is_delete_marker, size, etag, user_metadata, tags, data_class, subject, created) "
        "values (?, 1, ?, ?, 1, 0, 16384, '', '{}', '{}', ?, ?, ?)",
        ((i, f"k/{i:08d}", uuid.UUID(int=i).hex, *classes[i % 4], now) for i in range(1, n + 1)),
    )
    con.executemany(
        "insert into segments (object_version_id, seq, blob_key, size, etag) "
        "values (?, 0, ?, 16384, '')",
        ((i, f"k/{i:08d}") for i in range(1, n + 1)),
    )
    con.executemany(
        "insert into placements (object_version_id, location, state, created) "
        "values (?, 'alibaba-ap-southeast-1', 'ready', ?)",
        ((i, now) for i in range(1, n + 1)),
    )
    con.commit()
    con.close()
    catalog = load_catalog()
    locs = [
        LocationConfig(name=SRC, provider="alibaba", region="ap-southeast-1"),
        LocationConfig(name=DST, provider="oci", region="us-ashburn-1"),
        LocationConfig(name="aws-us-east-1", provider="aws", region="us-east-1"),
        LocationConfig(name="aws-eu-central-1", provider="aws", region="eu-central-1"),
    ]
    facts = [catalog.facts_for(c) for c in locs]
    policy = load_policy(str(Path(__file__).resolve().parents[1] / "examples/tiktok-2022.yaml"))

    async def run() -> float:
        db = Database(f"sqlite+aiosqlite:///{db_path}")
        try:
            with (work / "plan.jsonl").open("w") as out:
                start = time.perf_counter()
                _, summary = await plan_to_file(db, policy, facts, out)
                seconds = time.perf_counter() - start
            if summary.objects != n:
                raise BenchError(f"planned {summary.objects} objects, expected {n}")
            return seconds
        finally:
            await db.dispose()

    return asyncio.run(run())


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bench-migrate-"))
    try:
        yield path
    finally:
        if keep:
            print(f"work dir kept: {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sets, under a few minutes")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument("--only", default="fs,moto,plan", help="cases: fs, moto, plan")
    args = parser.parse_args()
    if args.quick:
        w, plan_n = Workload(2000, 16 * KIB, 2, 16 * MIB), 200_000
    else:
        w, plan_n = Workload(20_000, 16 * KIB, 20, 64 * MIB), 1_000_000
    only = set(args.only.split(","))
    print(describe_machine())
    print(f"workload: {w.describe()}")
    timings: list[Timing] = []
    ratios: list[Ratio] = []
    with workdir(args.keep) as work:
        src = work / "src"
        make_files(src, w)

        def add_ratios(name: str, t: list[Timing]) -> None:
            res, _, default, tuned = (x.seconds for x in t)
            ratios.append(ratio(f"{name} vs rclone default (speed)", default, res, at_least=2))
            ratios.append(ratio(f"{name} vs rclone tuned (speed)", tuned, res, at_least=1))

        if "fs" in only:
            source = {
                "name": SRC,
                "provider": "alibaba",
                "region": "ap-southeast-1",
                "scheme": "fs",
                "options": {"root": str(src)},
            }
            t = copy_case("fs->fs", work, w, source, str(src), None)
            timings += t
            add_ratios("fs->fs", t)
        if "moto" in only:
            with moto_server(work) as srv:
                import boto3

                bucket = f"b-{uuid.uuid4().hex[:8]}"
                boto3.client(
                    "s3",
                    endpoint_url=f"http://127.0.0.1:{srv.port}",
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",
                    region_name="us-east-1",
                ).create_bucket(Bucket=bucket)
                upload_dir(srv, bucket, src)
                source = {
                    "name": SRC,
                    "provider": "alibaba",
                    "region": "ap-southeast-1",
                    "scheme": "s3",
                    "options": {
                        "bucket": bucket,
                        "endpoint": f"http://127.0.0.1:{srv.port}",
                        "region": "us-east-1",
                        "access_key_id": "testing",
                        "secret_access_key": "testing",
                        "root": "/",
                        "disable_config_load": "true",
                        "disable_ec2_metadata": "true",
                    },
                }
                t = copy_case("moto->fs", work, w, source, f"moto:{bucket}", srv)
                timings += t
                add_ratios("moto->fs", t)
        if timings:
            print_table(
                "Copies (residency also verifies every copy)",
                ("run", "time", "objects", "bytes"),
                [x.row() for x in timings],
            )
        if "plan" in only:
            seconds = bench_plan(work, plan_n)
            print_table(
                "Planning",
                ("objects", "time", "rate"),
                [(f"{plan_n:,}", f"{seconds:.1f} s", f"{plan_n / seconds:,.0f} obj/s")],
            )
            ratios.append(
                ratio("plan time / 30 s per 1M objects", seconds * 1e6 / plan_n, 30, at_most=1)
            )
    print_ratios(ratios)


if __name__ == "__main__":
    main()
