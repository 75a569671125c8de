"""Migration engine benchmark: residency vs rclone copying the same set, and planning at scale.

Copies (each run starts from an empty destination and a fresh database):

- residency: `adopt` + `plan` + `migrate -j JOBS` through the real CLI (end to end, process
  start-up included), and the `migrate` step alone. `migrate` moves: it also erases each
  source blob it copied (a delete, batched on S3, and a confirming stat per object), which
  `rclone copy` does not do, so every residency run starts from a source of its own;
- rclone: `rclone copy` with default settings (`--transfers 4 --checkers 8`) and tuned
  (`--transfers 32 --checkers 32`);
- fs -> fs only: `_copy_floor.py`, a bare CPython copier (walk, read, SHA-256, write, one sync):
  the ceiling for any Python tool here, to tell our overhead from the language's.

Cases: fs -> fs; moto (S3) -> fs; and moto -> fs through a proxy that adds `--latency-ms`
(40 ms) to every request, the way a far-away object store would. See bench/README.md for what
each side verifies. Planning: N synthetic objects inserted straight into SQLite, then
`plan_to_file` timed in-process.

    python bench/migrate.py --quick      # 2,000 x 16 KiB + 2 x 16 MiB, plan 200k objects
    python bench/migrate.py              # 20,000 x 16 KiB + 20 x 64 MiB, plan 1M objects
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
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
    free_port,
    moto_server,
    print_ratios,
    print_table,
    ratio,
    require_tool,
    server,
)

BENCH = Path(__file__).resolve().parent
KIB = 1024
POLICY = """\
name: bench-to-oracle
rules:
  - id: to-oracle
    constraints:
      allow_providers: [oci]
"""
SRC, DST = "alibaba-ap-southeast-1", "oracle-us-ashburn-1"
RCLONE_TUNED = ["--transfers", "32", "--checkers", "32"]


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
    requests: int | None = None  # HTTP requests the latency proxy forwarded for the run

    def row(self) -> tuple[str, str, str, str, str]:
        return (
            self.name,
            f"{self.seconds:.2f} s",
            f"{self.objects / self.seconds:,.0f} obj/s",
            f"{self.nbytes / MIB / self.seconds:,.1f} MiB/s",
            "" if self.requests is None else f"{self.requests / self.objects:.2f}",
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


def upload_dir(srv: Server, bucket: str, root: Path, limit: float) -> None:
    rclone(["copy", str(root), f"moto:{bucket}", *RCLONE_TUNED], srv.port, limit)


def rclone_env(s3_port: int | None) -> dict[str, str]:
    # A custom CA bundle in the environment makes rclone's S3 client refuse plain HTTP.
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    env["RCLONE_CONFIG"] = os.devnull
    if s3_port is not None:
        env.update(
            RCLONE_CONFIG_MOTO_TYPE="s3",
            RCLONE_CONFIG_MOTO_PROVIDER="Other",
            RCLONE_CONFIG_MOTO_ENDPOINT=f"http://127.0.0.1:{s3_port}",
            RCLONE_CONFIG_MOTO_ACCESS_KEY_ID="testing",
            RCLONE_CONFIG_MOTO_SECRET_ACCESS_KEY="testing",
            RCLONE_CONFIG_MOTO_REGION="us-east-1",
        )
    return env


def _timed(argv: list[str], what: str, limit: float, **kw: object) -> float:
    """Run to completion within `limit` seconds (the run is invalid otherwise)."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=limit, **kw)  # type: ignore[call-overload]
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what} did not finish within {limit:.0f} s") from None
    if proc.returncode != 0:
        raise BenchError(f"{what} failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def rclone(args: list[str], s3_port: int | None, limit: float) -> float:
    argv = [require_tool("rclone"), *args]
    return _timed(argv, f"rclone {' '.join(args)}", limit, env=rclone_env(s3_port))


def residency(args: list[str], cwd: Path, limit: float) -> float:
    argv = [sys.executable, "-m", "residency", *args]
    env = {**os.environ, "NO_COLOR": "1"}
    return _timed(argv, f"residency {' '.join(args)}", limit, cwd=cwd, env=env)


@dataclass(frozen=True)
class Settings:
    jobs: int  # residency migrate -j
    limit: float  # seconds any one command may take


def residency_copy(
    work: Path, source: dict[str, object], w: Workload, cfg: Settings
) -> tuple[float, float]:
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
    conf = ["--config", str(run / "residency.yaml")]
    plan = str(run / "plan.jsonl")
    t0 = residency(["adopt", SRC, "--bucket", "bench", "--tenant", "bench", *conf], run, cfg.limit)
    t1 = residency(["plan", "-o", plan, *conf], run, cfg.limit)
    t2 = residency(["migrate", plan, "-j", str(cfg.jobs), "--json", *conf], run, cfg.limit)
    copied = sum(1 for p in (run / "dst").rglob("*") if p.is_file() and "blobs" in p.parts)
    if copied != w.objects:
        raise BenchError(f"residency copied {copied} objects, expected {w.objects}")
    shutil.rmtree(run, ignore_errors=True)
    return t0 + t1 + t2, t2


Proxy = Callable[[], AbstractContextManager[Server]]


@contextlib.contextmanager
def endpoint(port: int | None, proxy: Proxy | None) -> Iterator[tuple[int | None, Server | None]]:
    """The S3 port one run talks to: a fresh latency proxy per run (to count its requests)."""
    if proxy is None:
        yield port, None
        return
    with proxy() as px:
        yield px.port, px


def proxy_requests(px: Server | None) -> int | None:
    """The request count the proxy printed when it was stopped."""
    if px is None:
        return None
    for line in px.log.read_text(errors="replace").splitlines():
        if line.startswith("requests: "):
            return int(line.split()[1])
    raise BenchError(f"the latency proxy did not report its requests (see {px.log})")


def copy_case(
    name: str,
    work: Path,
    w: Workload,
    source_for: Callable[[int | None], dict[str, object]],
    remote: str,
    port: int | None,
    cfg: Settings,
    proxy: Proxy | None = None,
) -> list[Timing]:
    """residency end to end, residency migrate, rclone default, rclone tuned (in this order)."""
    with endpoint(port, proxy) as (p, px):
        total, migrate_only = residency_copy(work, source_for(p), w, cfg)
    timings = [
        Timing(
            f"{name}: residency adopt+plan+migrate",
            total,
            w.objects,
            w.bytes,
            proxy_requests(px),
        ),
        Timing(f"{name}: residency migrate -j {cfg.jobs}", migrate_only, w.objects, w.bytes),
    ]
    for label, extra in (
        ("rclone default", []),
        (f"rclone {' '.join(RCLONE_TUNED)}", RCLONE_TUNED),
    ):
        dst = work / f"rclone-{uuid.uuid4().hex[:6]}"
        with endpoint(port, proxy) as (p, px):
            seconds = rclone(["copy", remote, str(dst), *extra], p, cfg.limit)
        copied = sum(1 for f in dst.rglob("*") if f.is_file())
        if copied != w.objects:
            raise BenchError(f"{label} copied {copied} objects, expected {w.objects}")
        timings.append(Timing(f"{name}: {label}", seconds, w.objects, w.bytes, proxy_requests(px)))
        shutil.rmtree(dst, ignore_errors=True)
    return timings


def compile_residency() -> None:
    """Byte-compile the package first, as `pip install` does: with PYTHONDONTWRITEBYTECODE set
    (or a read-only tree) every CLI run would otherwise compile it from source again."""
    import compileall

    import residency

    compileall.compile_dir(Path(residency.__file__).parent, quiet=1)


def python_floor(src: Path, work: Path, w: Workload, limit: float) -> Timing:
    """`_copy_floor.py` from `src` into a fresh directory, process start-up included."""
    dst = work / f"floor-{uuid.uuid4().hex[:6]}"
    argv = [sys.executable, str(BENCH / "_copy_floor.py"), str(src), str(dst)]
    seconds = _timed(argv, "python floor copy", limit)
    copied = sum(1 for f in dst.rglob("*") if f.is_file())
    if copied != w.objects:
        raise BenchError(f"the python floor copied {copied} objects, expected {w.objects}")
    shutil.rmtree(dst, ignore_errors=True)
    return Timing("fs->fs: python floor (no metadata)", seconds, w.objects, w.bytes)


def s3_source(port: int | None, bucket: str) -> dict[str, object]:
    return {
        "name": SRC,
        "provider": "alibaba",
        "region": "ap-southeast-1",
        "scheme": "s3",
        "options": {
            "bucket": bucket,
            "endpoint": f"http://127.0.0.1:{port}",
            "region": "us-east-1",
            "access_key_id": "testing",
            "secret_access_key": "testing",
            "root": "/",
            "disable_config_load": "true",
            "disable_ec2_metadata": "true",
        },
    }


@contextlib.contextmanager
def latency_proxy(upstream: Server, work: Path, latency_ms: float) -> Iterator[Server]:
    """bench/_latency_proxy.py in front of `upstream`, as a server the bench stops."""
    port = free_port()
    argv = [
        sys.executable,
        str(BENCH / "_latency_proxy.py"),
        "--port",
        str(port),
        "--upstream-port",
        str(upstream.port),
        "--latency-ms",
        str(latency_ms),
    ]
    with server(f"latency-proxy-{port}", argv, port, work) as srv:
        yield srv


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
    parser.add_argument("--quick", action="store_true", help="small sets, about 3 minutes")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument(
        "--only", default="fs,moto,latency,plan", help="cases: fs, moto, latency, plan"
    )
    parser.add_argument(
        "--latency-ms", type=float, default=40.0, help="delay per request in the latency case"
    )
    parser.add_argument(
        "--jobs", type=int, default=32, help="residency migrate -j (rclone tuned: 32 transfers)"
    )
    args = parser.parse_args()
    if args.quick:
        w, plan_n = Workload(2000, 16 * KIB, 2, 16 * MIB), 200_000
        cfg = Settings(jobs=args.jobs, limit=300)
    else:
        w, plan_n = Workload(20_000, 16 * KIB, 20, 64 * MIB), 1_000_000
        cfg = Settings(jobs=args.jobs, limit=1800)
    only = set(args.only.split(","))
    unknown = only - {"fs", "moto", "latency", "plan"}
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    print(describe_machine())
    print(f"workload: {w.describe()}; residency migrate -j {cfg.jobs}")
    compile_residency()
    timings: list[Timing] = []
    ratios: list[Ratio] = []
    started = time.perf_counter()
    with workdir(args.keep) as work:
        src = work / "src"
        make_files(src, w)

        def add_ratios(name: str, t: list[Timing]) -> None:
            res, _, default, tuned = (x.seconds for x in t)
            ratios.append(ratio(f"{name} vs rclone default (speed)", default, res, at_least=2))
            ratios.append(ratio(f"{name} vs rclone tuned (speed)", tuned, res, at_least=1))

        if "fs" in only:

            def fs_source(_: int | None) -> dict[str, object]:
                # migrate erases what it moved: each run gets its own (hard-linked) source.
                root = work / f"src-{uuid.uuid4().hex[:6]}"
                shutil.copytree(src, root, copy_function=os.link)
                return {
                    "name": SRC,
                    "provider": "alibaba",
                    "region": "ap-southeast-1",
                    "scheme": "fs",
                    "options": {"root": str(root)},
                }

            t = copy_case("fs->fs", work, w, fs_source, str(src), None, cfg)
            timings += t
            add_ratios("fs->fs", t)
            floor = python_floor(src, work, w, cfg.limit)
            timings.append(floor)
            ratios.append(
                ratio("fs->fs python floor vs rclone default", t[2].seconds, floor.seconds)
            )
            ratios.append(ratio("fs->fs residency vs python floor", floor.seconds, t[0].seconds))
        if only & {"moto", "latency"}:
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
                # Uploaded once, straight to moto, for rclone (which only copies).
                upload_dir(srv, bucket, src, cfg.limit)
                remote = f"moto:{bucket}"

                def source_for(port: int | None) -> dict[str, object]:
                    # migrate erases what it moved: each residency run gets its own bucket,
                    # uploaded before the clock starts (straight to moto, not via the proxy).
                    own = f"b-{uuid.uuid4().hex[:8]}"
                    boto3.client(
                        "s3",
                        endpoint_url=f"http://127.0.0.1:{srv.port}",
                        aws_access_key_id="testing",
                        aws_secret_access_key="testing",
                        region_name="us-east-1",
                    ).create_bucket(Bucket=own)
                    upload_dir(srv, own, src, cfg.limit)
                    return s3_source(port, own)

                if "moto" in only:
                    t = copy_case("moto->fs", work, w, source_for, remote, srv.port, cfg)
                    timings += t
                    add_ratios("moto->fs", t)
                if "latency" in only:
                    name = f"moto->fs +{args.latency_ms:g}ms"
                    proxy = functools.partial(latency_proxy, srv, work, args.latency_ms)
                    t = copy_case(name, work, w, source_for, remote, None, cfg, proxy)
                    timings += t
                    add_ratios(name, t)
        if timings:
            print_table(
                "Copies (see bench/README.md for what each side verifies)",
                ("run", "time", "objects", "bytes", "requests/object"),
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
    print(f"\ntotal bench time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
