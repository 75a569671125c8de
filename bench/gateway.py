"""Gateway benchmark: residency vs moto server vs nginx, same machine, same run, same client.

    python bench/gateway.py            # full run (a few minutes)
    python bench/gateway.py --quick    # smoke run (well under a minute of load)

Measures 64 MiB GET/PUT throughput and 4 KiB GET/PUT request rates through a `residency serve`
subprocess (one fs location, `--workers 2`), through moto server, and (GET only) through nginx
serving the same bytes from disk as a ceiling, and through `_granian_floor.py` (a bare ASGI
file server under the same granian settings: the ceiling for any Python gateway here); then the
residency server's peak RSS while it streams 16 MiB vs 256 MiB objects. Requests to S3 servers
are presigned before the clock starts (UNSIGNED-PAYLOAD for PUT), so signing costs nothing inside
the timed loops, for every server.
Not part of the test suite: it prints figures and ratios, it does not pass or fail.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from _common import (
    MIB,
    BenchError,
    LoadResult,
    PeakRss,
    Ratio,
    Request,
    Server,
    describe_machine,
    fmt_bytes,
    fmt_rate,
    free_port,
    moto_server,
    nginx_server,
    plain,
    presigner,
    print_ratios,
    print_table,
    ratio,
    run_load,
    server,
    tail,
    upload_file,
    write_random_file,
)

BUCKET = "bench"
LARGE = 64 * MIB
SMALL = 4 * 1024
SMALL_OBJECTS = 64
LARGE_KEYS = 4  # PUTs rotate over a few keys so that overwrites are part of the workload
RSS_SIZES = (16 * MIB, 256 * MIB)


@dataclass(frozen=True)
class Plan:
    """How much load each measurement gets; every loop is bounded by count and by time."""

    large_requests: int
    large_seconds: float
    large_concurrency: int
    small_requests: int
    small_seconds: float
    small_concurrency: int
    rss_requests: int

    @classmethod
    def for_mode(cls, quick: bool) -> Plan:
        if quick:
            return cls(16, 6.0, 2, 2_000, 4.0, 16, 3)
        return cls(64, 20.0, 2, 20_000, 12.0, 32, 6)


@dataclass
class Figures:
    """Measured results for one server; None where the server is not measured for that op."""

    name: str
    large_get: LoadResult | None = None
    large_put: LoadResult | None = None
    small_get: LoadResult | None = None
    small_put: LoadResult | None = None
    rss: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- servers


@contextlib.contextmanager
def residency_server(workdir: Path, *, workers: int) -> Iterator[Server]:
    """`residency serve --workers N` on one fs location, with a fresh tenant and access key."""
    home = workdir / "residency"
    home.mkdir()
    port = free_port()
    config = home / "residency.yaml"
    # The benchmark's objects are unclassified: this deployment declares such data public (an
    # operator's explicit choice; `preset:default` alone refuses unclassified writes).
    policy = home / "policy.yaml"
    policy.write_text("name: bench\nextends: [preset:default]\ndefault_class: public\n")
    settings = {
        "data_dir": str(home / "data"),
        "policy": str(policy),
        "log_level": "warning",
        "locations": [
            {
                "name": "bench-us",
                "provider": "aws",
                "region": "us-east-1",
                "scheme": "fs",
                "options": {"root": str(home / "blobs")},
            }
        ],
    }
    config.write_text(yaml.safe_dump(settings))
    access_key, secret_key = _create_key(config)
    argv = [
        *(sys.executable, "-m", "residency", "serve", "--config", str(config)),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)),
    ]
    with server("residency", argv, port, home, env={"NO_COLOR": "1"}) as srv:
        srv.access_key, srv.secret_key = access_key, secret_key
        yield srv


def _create_key(config: Path) -> tuple[str, str]:
    """Create a tenant and an access key with the admin CLI, as an operator would."""

    def cli(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "residency", *args, "--config", str(config)],
            cwd=config.parent,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if proc.returncode != 0:
            raise BenchError(f"residency {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    cli("tenant", "create", "bench")
    data = json.loads(cli("key", "create", "--tenant", "bench", "--json"))
    return str(data["access_key_id"]), str(data["secret_access_key"])


# --------------------------------------------------------------------------- measurements


def prepare_files(root: Path) -> dict[str, Path]:
    """The bytes every server serves: under `root/BUCKET/` so nginx maps URL paths 1:1."""
    files = {"large.bin": root / BUCKET / "large.bin"}
    write_random_file(files["large.bin"], LARGE)
    for i in range(SMALL_OBJECTS):
        files[f"small/{i:03d}.bin"] = root / BUCKET / "small" / f"{i:03d}.bin"
        write_random_file(files[f"small/{i:03d}.bin"], SMALL)
    return files


def load(
    port: int, reqs: Sequence[Request], concurrency: int, count: int, secs: float
) -> LoadResult:
    warmup = 1 if reqs[0].body_size >= MIB else 5
    return asyncio.run(
        run_load(
            port,
            reqs,
            concurrency=concurrency,
            max_requests=count,
            max_seconds=secs,
            warmup=warmup,
        )
    )


def measure(
    figures: Figures,
    op: str,
    srv: Server,
    reqs: Sequence[Request],
    concurrency: int,
    count: int,
    secs: float,
) -> None:
    """Run one load; a failed load is recorded (with the server's log) and the run goes on."""
    try:
        setattr(figures, op, load(srv.port, reqs, concurrency, count, secs))
    except BenchError as exc:
        figures.errors[op] = str(exc)
        print(f"  {srv.name} {op} FAILED: {exc}\n  --- {srv.log}:\n{tail(srv.log, 12)}")


def bench_files(srv: Server, plan: Plan) -> Figures:
    """GET loads against a plain file server (files under `/BUCKET/`, no signing)."""
    figures = Figures(srv.name)
    large = [plain("GET", f"/{BUCKET}/large.bin")]
    small = [plain("GET", f"/{BUCKET}/small/{i:03d}.bin") for i in range(SMALL_OBJECTS)]
    lc, ln, ls = plan.large_concurrency, plan.large_requests, plan.large_seconds
    sc, sn, ss = plan.small_concurrency, plan.small_requests, plan.small_seconds
    measure(figures, "large_get", srv, large, lc, ln, ls)
    measure(figures, "small_get", srv, small, sc, sn, ss)
    return figures


def bench_nginx(workdir: Path, www: Path, plan: Plan) -> Figures:
    with nginx_server(www, workdir) as srv:
        return bench_files(srv, plan)


def bench_granian(workdir: Path, www: Path, plan: Plan, workers: int) -> Figures:
    """GET through a bare ASGI file server with `residency serve`'s granian settings."""
    port = free_port()
    argv = [
        *(sys.executable, "-m", "granian", "--interface", "asgi", "--http", "1", "--no-ws"),
        *("--loop", "uvloop", "--workers", str(workers), "--log-level", "warning"),
        *("--host", "127.0.0.1", "--port", str(port), "_granian_floor:app"),
    ]
    env = {"GRANIAN_FLOOR_ROOT": str(www), "PYTHONPATH": str(Path(__file__).resolve().parent)}
    with server("granian", argv, port, workdir, env=env) as srv:
        return bench_files(srv, plan)


def bench_s3(srv: Server, files: dict[str, Path], plan: Plan) -> Figures:
    """The same four loads against any S3 endpoint, all through presigned requests."""
    figures = Figures(srv.name)
    for i, (key, path) in enumerate(files.items()):
        upload_file(srv, BUCKET, key, path, create=i == 0)
    sign = presigner(srv)
    large_get = [sign("GET", BUCKET, "large.bin")]
    large_put = [
        _with_body(sign("PUT", BUCKET, f"put/large-{i}.bin"), LARGE) for i in range(LARGE_KEYS)
    ]
    small_get = [sign("GET", BUCKET, f"small/{i:03d}.bin") for i in range(SMALL_OBJECTS)]
    small_put = [
        _with_body(sign("PUT", BUCKET, f"put/small-{i:03d}.bin"), SMALL)
        for i in range(SMALL_OBJECTS)
    ]
    lc, ln, ls = plan.large_concurrency, plan.large_requests, plan.large_seconds
    sc, sn, ss = plan.small_concurrency, plan.small_requests, plan.small_seconds
    measure(figures, "large_get", srv, large_get, lc, ln, ls)
    measure(figures, "large_put", srv, large_put, lc, ln, ls)
    measure(figures, "small_get", srv, small_get, sc, sn, ss)
    measure(figures, "small_put", srv, small_put, sc, sn, ss)
    return figures


def bench_rss(srv: Server, plan: Plan, figures: Figures) -> None:
    """Peak RSS of the server (all processes) while it streams each size in, then out."""
    sign = presigner(srv)
    for size in RSS_SIZES:
        label = fmt_bytes(size)
        key = f"rss/{size}.bin"
        put = [_with_body(sign("PUT", BUCKET, key), size)]
        get = [sign("GET", BUCKET, key)]
        try:
            with PeakRss(srv.pid) as put_peak:
                load(srv.port, put, 2, plan.rss_requests, 120.0)
            with PeakRss(srv.pid) as get_peak:
                load(srv.port, get, 2, plan.rss_requests, 120.0)
        except BenchError as exc:
            figures.errors[f"rss {label}"] = str(exc)
            print(f"  {srv.name} RSS {label} FAILED: {exc}\n{tail(srv.log, 12)}")
            continue
        figures.rss[f"PUT {label}"] = put_peak.peak
        figures.rss[f"GET {label}"] = get_peak.peak


def _with_body(req: Request, size: int) -> Request:
    return Request(req.method, req.target, size, req.headers)


# --------------------------------------------------------------------------- report


def _rate(f: Figures, op: str, kind: str) -> str:
    r: LoadResult | None = getattr(f, op)
    if op in f.errors:
        return "FAILED"
    if r is None:
        return "-"
    if kind == "mib":
        return fmt_rate(r.mib_s, "MiB/s")
    return fmt_rate(r.rps, "req/s")


def _p99(f: Figures, op: str) -> str:
    r: LoadResult | None = getattr(f, op)
    if r is None or len(r.latencies) < 2:
        return "-"
    return f"{statistics.quantiles(r.latencies, n=100)[98] * 1000:.1f} ms"


def report(all_figures: Sequence[Figures]) -> None:
    rows = [
        (
            f.name,
            _rate(f, "large_get", "mib"),
            _rate(f, "large_put", "mib"),
            _rate(f, "small_get", "rps"),
            _p99(f, "small_get"),
            _rate(f, "small_put", "rps"),
            _p99(f, "small_put"),
        )
        for f in all_figures
    ]
    header = ("server", "GET 64 MiB", "PUT 64 MiB", "GET 4 KiB", "p99", "PUT 4 KiB", "p99")
    print_table("Throughput (higher is better)", header, rows)

    by = {f.name: f for f in all_figures}
    res, moto, nginx = by.get("residency"), by.get("moto"), by.get("nginx")
    floor = by.get("granian")

    def mib(f: Figures | None, op: str) -> float | None:
        r = getattr(f, op) if f else None
        return r.mib_s if r else None

    def rps(f: Figures | None, op: str) -> float | None:
        r = getattr(f, op) if f else None
        return r.rps if r else None

    if res and res.rss:
        rss_rows = [(k, fmt_bytes(v)) for k, v in res.rss.items()]
        print_table(
            "residency peak RSS, all processes (flat = streaming)", ("load", "RSS"), rss_rows
        )

    def rss(key: str) -> float | None:
        return float(res.rss[key]) if res and key in res.rss else None

    ratios: list[Ratio] = [
        ratio(
            "GET 64 MiB   residency / nginx",
            mib(res, "large_get"),
            mib(nginx, "large_get"),
            at_least=0.7,
        ),
        ratio(
            "GET 4 KiB    residency / moto",
            rps(res, "small_get"),
            rps(moto, "small_get"),
            at_least=10,
        ),
        ratio("PUT 64 MiB   residency / moto", mib(res, "large_put"), mib(moto, "large_put")),
        ratio("PUT 4 KiB    residency / moto", rps(res, "small_put"), rps(moto, "small_put")),
        ratio("GET 4 KiB    residency / nginx", rps(res, "small_get"), rps(nginx, "small_get")),
        ratio(
            "GET 64 MiB   granian floor / nginx", mib(floor, "large_get"), mib(nginx, "large_get")
        ),
        ratio(
            "GET 64 MiB   residency / granian floor", mib(res, "large_get"), mib(floor, "large_get")
        ),
        ratio("GET 4 KiB    granian floor / moto", rps(floor, "small_get"), rps(moto, "small_get")),
        ratio(
            "GET 4 KiB    residency / granian floor", rps(res, "small_get"), rps(floor, "small_get")
        ),
        ratio("RSS GET 256 MiB / 16 MiB", rss("GET 256 MiB"), rss("GET 16 MiB"), at_most=1.5),
        ratio("RSS PUT 256 MiB / 16 MiB", rss("PUT 256 MiB"), rss("PUT 16 MiB"), at_most=1.5),
    ]
    print_ratios(ratios)


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short, bounded smoke run")
    parser.add_argument(
        "--only",
        default="nginx,granian,moto,residency",
        help="comma-separated servers to measure (default: nginx,granian,moto,residency)",
    )
    parser.add_argument("--workers", type=int, default=2, help="residency serve --workers")
    parser.add_argument(
        "--small-concurrency", type=int, help="connections for 4 KiB loads (default 32, quick 16)"
    )
    parser.add_argument(
        "--large-concurrency", type=int, help="connections for 64 MiB loads (default 2)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (for debugging)")
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - {"nginx", "granian", "moto", "residency"}
    if unknown:
        parser.error(f"unknown server(s): {', '.join(sorted(unknown))}")
    plan = Plan.for_mode(args.quick)
    if args.small_concurrency:
        plan = dataclasses.replace(plan, small_concurrency=args.small_concurrency)
    if args.large_concurrency:
        plan = dataclasses.replace(plan, large_concurrency=args.large_concurrency)

    workdir = Path(tempfile.mkdtemp(prefix="residency-bench-"))
    mode = "quick" if args.quick else "full"
    print(f"{describe_machine()}\nwork dir {workdir}; mode {mode}; {plan}")
    results: list[Figures] = []
    try:
        www = workdir / "www"
        files = prepare_files(www)
        if "nginx" in only:
            print("measuring nginx ...", flush=True)
            results.append(bench_nginx(workdir, www, plan))
        if "granian" in only:
            print(f"measuring a bare ASGI file server on granian (--workers {args.workers}) ...")
            results.append(bench_granian(workdir, www, plan, args.workers))
        if "moto" in only:
            print("measuring moto ...", flush=True)
            with moto_server(workdir) as srv:
                results.append(bench_s3(srv, files, plan))
        if "residency" in only:
            print(f"measuring residency (--workers {args.workers}) ...", flush=True)
            with residency_server(workdir, workers=args.workers) as srv:
                figures = bench_s3(srv, files, plan)
                print("sampling residency RSS ...", flush=True)
                bench_rss(srv, plan, figures)
                results.append(figures)
    except BenchError as exc:
        print(f"benchmark aborted: {exc}", file=sys.stderr)
        if results:
            report(results)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(results)
    failed = [f"{f.name} {op}" for f in results for op in f.errors]
    if failed:
        print(f"\nFAILED measurements (see the errors above): {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
