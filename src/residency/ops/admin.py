"""The admin HTTP server `residency serve --admin-port` runs beside the S3 port.

- `GET /metrics`: Prometheus text format. Every gateway worker's counters (`gateway.telemetry`,
  added up from prometheus_client's multiprocess files) plus what this server works out at
  scrape time: readiness, whether the database answers, and the progress of migration runs
  (from the migration journal in the metadata database, so a `residency migrate` running
  anywhere against this database shows up).
- `GET /livez`: 200 while this process answers (the supervisor of the workers).
- `GET /readyz`: 200 once every worker finished start-up and the database answers a query on
  a fresh connection within `PROBE_TIMEOUT` seconds; 503 (with the reasons) before start-up
  finished, while the database is unreachable, and once shutdown began.

It runs on its own thread and event loop (uvicorn) in the `residency serve` process, so a
scrape never takes a turn on a worker's event loop, and it answers while the workers start.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from residency.config import Settings
from residency.gateway.telemetry import WORKERS_READY

METRICS_DIRNAME = "metrics"
"""`<data_dir>/metrics`: the workers' multiprocess files (`PROMETHEUS_MULTIPROC_DIR`)."""
PROBE_TIMEOUT = 2.0
"""Seconds the database gets to answer a readiness probe."""
FINISHED_RUNS_SHOWN = timedelta(hours=1)
"""A finished migration run stays in `/metrics` this long, so its completion is seen."""


def prepare_metrics_dir(data_dir: Path) -> Path:
    """An empty `<data_dir>/metrics` for this start's workers.

    Files left by an earlier run would be added to this one's counters: prometheus_client
    requires the directory to be wiped at every start. Only call it holding the data dir's
    `serve.lock`, so a running server's files are never removed under it.
    """
    path = data_dir / METRICS_DIRNAME
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.mkdir(parents=True)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_dead_workers(path: Path) -> None:
    """Drop the live-gauge files of worker processes that are gone (gunicorn's `child_exit`
    hook does this; granian has none, so it is done before every read)."""
    for file in path.glob("gauge_live*_*.db"):
        pid = file.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            mark_process_dead(int(pid), str(path))  # type: ignore[no-untyped-call]


@dataclass(slots=True)
class RunProgress:
    """One migration run's journal: actions and bytes per state."""

    run: str
    finished: bool
    actions: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    failed: int = 0


@dataclass(frozen=True, slots=True)
class Probe:
    """What `/readyz` answers and `/metrics` reports beside the workers' counters."""

    workers: int
    workers_ready: int
    database_error: str | None
    stopping: bool
    runs: tuple[RunProgress, ...] = ()

    @property
    def problems(self) -> list[str]:
        out = []
        if self.stopping:
            out.append("shutting down")
        if self.workers_ready < self.workers:
            out.append(f"{self.workers_ready} of {self.workers} workers ready")
        if self.database_error is not None:
            out.append(f"database: {self.database_error}")
        return out

    @property
    def ready(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "workers": self.workers,
            "workers_ready": self.workers_ready,
            "database": "ok" if self.database_error is None else self.database_error,
            "problems": self.problems,
        }


def _read_database(session: Any, since: Any) -> list[RunProgress]:
    """The schema answers (`alembic_version`), then every recent run's progress."""
    from sqlalchemy import func, or_, select, text

    from residency.migrate.models import MigrationAction, MigrationRun

    session.execute(text("SELECT version_num FROM alembic_version")).first()
    runs = {
        run_id: RunProgress(run_id, finished is not None)
        for run_id, finished in session.execute(
            select(MigrationRun.id, MigrationRun.finished).where(
                or_(MigrationRun.finished.is_(None), MigrationRun.finished >= since)
            )
        )
    }
    if not runs:
        return []
    rows = session.execute(
        select(
            MigrationAction.run_id,
            MigrationAction.state,
            MigrationAction.failed,
            func.count(),
            func.coalesce(func.sum(MigrationAction.size), 0),
        )
        .where(MigrationAction.run_id.in_(list(runs)))
        .group_by(MigrationAction.run_id, MigrationAction.state, MigrationAction.failed)
    )
    for run_id, state, failed, count, size in rows:
        progress = runs[run_id]
        progress.actions[state] = progress.actions.get(state, 0) + int(count)
        progress.bytes[state] = progress.bytes.get(state, 0) + int(size)
        if failed:
            progress.failed += int(count)
    return sorted(runs.values(), key=lambda r: r.run)


class _Collected:
    """A collector that hands out metrics gathered beforehand (one scrape's snapshot)."""

    def __init__(self, metrics: Sequence[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics


class Admin:
    """The admin server's state and its Starlette app."""

    def __init__(self, settings: Settings, metrics_dir: Path) -> None:
        self.settings = settings
        self.metrics_dir = metrics_dir
        self.started = time.time()
        self.stopping = False

    def worker_metrics(self) -> list[Metric]:
        forget_dead_workers(self.metrics_dir)
        collector = MultiProcessCollector(None, str(self.metrics_dir))  # type: ignore[no-untyped-call]
        return list(collector.collect())  # type: ignore[no-untyped-call]

    async def database(self) -> tuple[str | None, tuple[RunProgress, ...]]:
        """(None, runs) when a fresh connection reads the schema in time, else (why, ())."""
        from residency.meta import Database
        from residency.meta.errors import MetaError
        from residency.meta.types import utcnow

        try:
            db = Database(self.settings.db_url, create=False, busy_timeout_ms=1000)
        except MetaError as exc:
            return exc.message, ()
        try:
            since = utcnow() - FINISHED_RUNS_SHOWN
            runs = await asyncio.wait_for(db.read(_read_database, since), PROBE_TIMEOUT)
            return None, tuple(runs)
        except TimeoutError:
            return f"no answer within {PROBE_TIMEOUT:g} s", ()
        except Exception as exc:
            return " ".join(str(getattr(exc, "orig", exc)).split())[:300], ()
        finally:
            await db.dispose()

    async def probe(self, metrics: Sequence[Metric] | None = None) -> Probe:
        if metrics is None:
            metrics = self.worker_metrics()
        ready = sum(
            int(sample.value)
            for metric in metrics
            if metric.name == WORKERS_READY
            for sample in metric.samples
        )
        error, runs = await self.database()
        return Probe(self.settings.workers, ready, error, self.stopping, runs)

    async def metrics(self) -> bytes:
        workers = self.worker_metrics()
        probe = await self.probe(workers)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collected([*workers, *_admin_metrics(probe, self.started)]))
        return generate_latest(registry)

    def app(self) -> Starlette:
        async def metrics(request: Request) -> Response:
            return Response(await self.metrics(), media_type=CONTENT_TYPE_LATEST)

        async def livez(request: Request) -> Response:
            uptime = round(time.time() - self.started, 3)
            return JSONResponse({"alive": True, "pid": os.getpid(), "uptime_seconds": uptime})

        async def readyz(request: Request) -> Response:
            probe = await self.probe()
            return JSONResponse(probe.to_dict(), status_code=200 if probe.ready else 503)

        async def index(request: Request) -> Response:
            return PlainTextResponse("residency admin: /metrics /livez /readyz\n")

        return Starlette(
            routes=[
                Route("/metrics", metrics),
                Route("/livez", livez),
                Route("/readyz", readyz),
                Route("/", index),
            ]
        )


def _admin_metrics(probe: Probe, started: float) -> list[Metric]:
    ready = GaugeMetricFamily(
        "residency_ready", "1 when /readyz answers 200 (workers started, database answers)."
    )
    ready.add_metric([], 1 if probe.ready else 0)
    database = GaugeMetricFamily(
        "residency_database_up", "1 when a fresh connection to the metadata database answers."
    )
    database.add_metric([], 1 if probe.database_error is None else 0)
    workers = GaugeMetricFamily("residency_workers", "Gateway worker processes configured.")
    workers.add_metric([], probe.workers)
    start = GaugeMetricFamily(
        "residency_start_time_seconds", "When this `residency serve` started (Unix time)."
    )
    start.add_metric([], started)
    actions = GaugeMetricFamily(
        "residency_migration_actions",
        "Actions of each unfinished (or recently finished) migration run, by journal state "
        "(pending, copied, verified, done, skipped).",
        labels=["run", "state"],
    )
    size = GaugeMetricFamily(
        "residency_migration_bytes",
        "Object bytes of those actions, by journal state.",
        labels=["run", "state"],
    )
    failed = GaugeMetricFamily(
        "residency_migration_failed_actions",
        "Actions of a run whose last attempt failed (retried by the next run of the plan).",
        labels=["run"],
    )
    running = GaugeMetricFamily(
        "residency_migration_running",
        "1 while a migration run is unfinished, 0 once it finished.",
        labels=["run"],
    )
    for run in probe.runs:
        for state, count in sorted(run.actions.items()):
            actions.add_metric([run.run, state], count)
        for state, total in sorted(run.bytes.items()):
            size.add_metric([run.run, state], total)
        failed.add_metric([run.run], run.failed)
        running.add_metric([run.run], 0 if run.finished else 1)
    return [ready, database, workers, start, actions, size, failed, running]


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); OSError (EADDRINUSE, ...) to the caller."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
    except BaseException:
        sock.close()
        raise
    return sock


class AdminServer:
    """`Admin` served by uvicorn on a thread of its own, on a socket bound beforehand."""

    def __init__(self, admin: Admin, sock: socket.socket) -> None:
        import uvicorn

        self.admin = admin
        self.sock = sock
        config = uvicorn.Config(
            admin.app(),
            lifespan="off",
            log_config=None,
            access_log=False,
            loop="asyncio",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="residency-admin", daemon=True)
        # granian forks its workers from this process: they must not keep the admin port
        # open (a worker outliving the server would hold it).
        os.register_at_fork(after_in_child=self._close_in_child)

    def _close_in_child(self) -> None:
        self.sock.close()

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Answer not ready from now on, then stop serving."""
        self.admin.stopping = True
        self.server.should_exit = True
        self.thread.join(timeout=5)
        self.sock.close()
