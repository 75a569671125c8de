"""`residency migrate --engine ray`: the local engine's work, spread over a Ray cluster.

The driver splits the plan into shards by object key (every version of a key lands in the
same shard, so two tasks never work on one object), journals each shard as a plan run of its
own, and starts one Ray task per shard. A task opens the metadata database and the locations
itself, from the settings it is sent, and runs the ordinary `Migrator` over its shard: every
step is journaled, verified and retried exactly as in a local run, and running the same plan
again with the same number of shards resumes each shard where it stopped (a shard task that
Ray retries after a lost worker resumes the same way). A different number of shards starts
new shard runs; objects already moved are then recognised and released without copying.

Every task must reach the metadata database and every location. SQLite (the default) only
works when all tasks run on the driver's machine, so joining a cluster of more than one node,
or a remote one, with an SQLite database is refused; such a cluster needs PostgreSQL and
locations every node can reach (object stores, or `fs` roots on a shared file system).
Ray is an optional dependency (`pip install 'residency[ray]'`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import math
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from residency.config import Settings
from residency.meta import Database
from residency.migrate.engine import ActionFailure, EngineOptions, Migrator, RunResult
from residency.migrate.journal import RunCounts, load_plan, run_counts
from residency.migrate.models import MigrationAction
from residency.migrate.planfile import PlanHeader, read_plan_header, split_plan
from residency.policy import Policy

__all__ = ["MAX_SHARDS", "RayEngineError", "RayMigration", "ShardProgress"]

MAX_SHARDS = 512
"""Most shards (Ray tasks) per run: the driver splits the plan into this many files at once."""

PROGRESS_EVERY = 0.25
"""Seconds between progress reports from a task, and between the driver's polls."""

ShardProgress = Callable[[str, int], None]
"""Called by the driver with (outcome 'copied'|'done'|'skipped'|'failed'|'retry', bytes), once
per event in the tasks, as the local engine's progress hook is (without the action)."""

INSTALL_HINT = "--engine ray needs Ray, which is not installed: pip install 'residency[ray]'"


class RayEngineError(Exception):
    """Ray is missing, unreachable or unsuitable for this database, or a shard task crashed."""


# --- in the tasks ---------------------------------------------------------------------------


class _ProgressSink:
    """A Ray actor that adds up the tasks' progress until the driver collects it."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, delta: dict[str, int]) -> None:
        for name, n in delta.items():
            self.counts[name] = self.counts.get(name, 0) + n

    def drain(self) -> dict[str, int]:
        counts, self.counts = self.counts, {}
        return counts


class _Batched:
    """The engine's progress hook inside a task: counts events, sends them a few times a
    second (one actor call per report, not one per object)."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.pending: dict[str, int] = {}
        self.last = time.monotonic()

    def hook(self, action: MigrationAction, outcome: str, nbytes: int) -> None:
        self.pending[outcome] = self.pending.get(outcome, 0) + 1
        if nbytes:
            self.pending["bytes"] = self.pending.get("bytes", 0) + nbytes
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY:
            self.last = now
            self._send()

    def _send(self) -> Any:
        delta, self.pending = self.pending, {}
        return self.sink.add.remote(delta) if delta else None

    def flush(self) -> None:
        """The last report, delivered before the task returns: the driver's final drain
        then sees every event."""
        import ray

        ref = self._send()
        if ref is not None:
            ray.get(ref)


def _run_shard(
    settings_doc: dict[str, Any], run_id: str, options: EngineOptions, policy: Policy, sink: Any
) -> RunResult:
    """One Ray task: the local engine over one journaled shard, under the driver's policy."""
    settings = Settings.model_validate(settings_doc)
    return asyncio.run(_shard_main(settings, run_id, options, policy, sink))


async def _shard_main(
    settings: Settings, run_id: str, options: EngineOptions, policy: Policy, sink: Any
) -> RunResult:
    from residency.catalog import load_catalog
    from residency.storage import open_locations

    locations = open_locations(settings, load_catalog())
    db = Database(settings.db_url)
    progress = _Batched(sink)
    try:
        migrator = Migrator(db, locations, options, policy=policy, progress=progress.hook)
        return await migrator.run(run_id)
    finally:
        progress.flush()
        await db.dispose()


# --- in the driver --------------------------------------------------------------------------


def portable_settings(settings: Settings) -> dict[str, Any]:
    """Settings as plain data that mean the same in a worker whose working directory is not
    the driver's: relative paths (data dir, SQLite file, fs roots) made absolute."""
    doc = settings.model_dump(mode="json")
    doc["data_dir"] = str(settings.data_dir.resolve())
    doc["database_url"] = settings.db_url
    for loc in doc["locations"]:
        root = loc["options"].get("root")
        if loc["scheme"] == "fs" and root:
            loc["options"]["root"] = str(Path(root).resolve())
    return doc


def _split_options(options: EngineOptions, shards: int) -> EngineOptions:
    """The flags are totals for the whole run, whichever engine runs it: each shard gets its
    part of the concurrency, bandwidth and request rate."""
    return dataclasses.replace(
        options,
        concurrency=max(1, math.ceil(options.concurrency / shards)),
        bwlimit=max(1, options.bwlimit // shards) if options.bwlimit else None,
        max_rps=options.max_rps / shards if options.max_rps else None,
    )


def _address_host(address: str) -> tuple[str, int | None] | None:
    """(host, port) named by a Ray address, None for `auto` (the cluster Ray finds itself)."""
    if address == "auto":
        return None
    parts = urlsplit(address if "://" in address else f"//{address}")
    try:
        port = parts.port
    except ValueError:
        raise RayEngineError(f"--ray-address {address!r}: the port is not a number") from None
    if not parts.hostname:
        raise RayEngineError(
            f"--ray-address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT"
        )
    return parts.hostname, port


def _is_this_machine(host: str) -> bool:
    """Whether `host` resolves to an address of this machine (one a socket can bind to)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise RayEngineError(f"--ray-address: cannot resolve {host!r}: {exc}") from None
    for family, _, _, _, sockaddr in infos:
        ip = str(sockaddr[0])
        if ipaddress.ip_address(ip).is_loopback:
            return True
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((ip, 0))
            except OSError:
                continue
            return True
    return False


class RayMigration:
    """One `residency migrate --engine ray` run, from the driver's side.

    `async with RayMigration(...) as run:` connects to Ray (or starts a local instance);
    `prepare` journals the shards; `run` executes them; `counts` adds up their journals.
    """

    def __init__(
        self,
        settings: Settings,
        options: EngineOptions,
        *,
        policy: Policy,
        address: str | None = None,
        tasks: int | None = None,
    ) -> None:
        if tasks is not None and not 1 <= tasks <= MAX_SHARDS:
            raise RayEngineError(f"--ray-tasks must be between 1 and {MAX_SHARDS}")
        self.settings = settings
        self.options = options
        self.policy = policy
        self.address = address
        self.tasks = tasks
        self.shards = 0
        self.run_ids: list[str] = []
        self._ray: Any = None

    # --- connecting ---------------------------------------------------------------------

    async def __aenter__(self) -> RayMigration:
        try:
            import ray as ray_module
        except ImportError:
            raise RayEngineError(INSTALL_HINT) from None
        ray: Any = ray_module
        sqlite = self.settings.db_url.startswith("sqlite")
        if self.address is not None:
            named = _address_host(self.address)
            if named is not None:
                host, port = named
                if sqlite and not _is_this_machine(host):
                    raise RayEngineError(self._sqlite_refusal(f"the Ray cluster at {host}"))
                if self.address.startswith("ray://"):
                    port = port or 10001  # the Ray client server's default port
                if port is not None:
                    # Ray retries a refused connection for minutes: fail in seconds instead.
                    await asyncio.to_thread(self._probe, host, port)
        self._connect(ray)  # in the main thread, where Ray can install its signal handlers
        self._ray = ray
        try:
            nodes = [n for n in ray.nodes() if n.get("Alive")]
            if sqlite and len(nodes) > 1:
                raise RayEngineError(self._sqlite_refusal(f"a Ray cluster of {len(nodes)} nodes"))
            cpus = int(ray.cluster_resources().get("CPU", 1))
            self.shards = self.tasks or max(1, min(cpus, MAX_SHARDS))
        except BaseException:
            self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect (and stop the local instance if this run started one)."""
        if self._ray is not None:
            self._ray.shutdown()
            self._ray = None

    def _sqlite_refusal(self, where: str) -> str:
        return (
            f"--engine ray: {where} cannot share this SQLite database "
            f"({self.settings.db_url.split('///', 1)[-1]}); a multi-machine run needs "
            "PostgreSQL (database_url) and locations every node can reach"
        )

    def _probe(self, host: str, port: int) -> None:
        try:
            with socket.create_connection((host, port), timeout=5):
                pass
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise RayEngineError(
                f"--ray-address {self.address}: no Ray cluster answers there ({reason})"
            ) from None

    def _connect(self, ray: Any) -> None:
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        if self.address is None:
            # "local": a fresh instance, not a stale default cluster Ray might try to rejoin.
            kwargs.update(address="local", include_dashboard=False)
        else:
            kwargs["address"] = self.address
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.address or "a local Ray instance"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RayEngineError(f"--engine ray: cannot connect to {where}: {first}") from None

    # --- running ------------------------------------------------------------------------

    async def prepare(
        self, db: Database, plan: Path, check: Callable[[PlanHeader], None] | None = None
    ) -> tuple[PlanHeader, RunCounts]:
        """Journal every shard of `plan` (first run) or find their journals (resume); returns
        the plan's header and the shards' counts before this run. `check` vets the header
        first (a plan made under another policy is refused before anything is journaled)."""
        header = read_plan_header(plan)
        if check is not None:
            check(header)
        with tempfile.TemporaryDirectory(prefix="residency-shards-") as tmp:
            paths = await asyncio.to_thread(split_plan, plan, self.shards, Path(tmp))
            self.run_ids = []
            for path in paths:
                shard, _new = await load_plan(db, path)
                self.run_ids.append(shard.id)
        return header, await self.counts(db)

    async def counts(self, db: Database) -> RunCounts:
        total = RunCounts(total=0, failed=0, bytes_left=0)
        for run_id in self.run_ids:
            for name, n in (await run_counts(db, run_id)).items():
                total[name] = total.get(name, 0) + n
        return total

    async def run(self, progress: ShardProgress | None = None) -> RunResult:
        """One task per shard; the sum of their results once all have ended."""
        ray = self._ray
        if ray is None or not self.run_ids:
            raise RuntimeError("RayMigration.run() needs `async with` and prepare() first")
        sink = ray.remote(num_cpus=0)(_ProgressSink).remote()
        task = ray.remote(num_cpus=1)(_run_shard)
        doc = portable_settings(self.settings)
        options = _split_options(self.options, len(self.run_ids))
        refs = [task.remote(doc, run_id, options, self.policy, sink) for run_id in self.run_ids]
        pending = list(refs)
        try:
            while pending:
                _ready, pending = await asyncio.to_thread(
                    ray.wait, pending, num_returns=len(pending), timeout=PROGRESS_EVERY
                )
                self._replay(await sink.drain.remote(), progress)
            self._replay(await sink.drain.remote(), progress)
        except BaseException:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise
        return self._combine(ray, refs)

    @staticmethod
    def _replay(delta: dict[str, int], progress: ShardProgress | None) -> None:
        if progress is None or not delta:
            return
        nbytes = delta.pop("bytes", 0)
        copied = delta.pop("copied", 0)
        if copied or nbytes:
            progress("copied", nbytes)
        for outcome, n in delta.items():
            for _ in range(n):
                progress(outcome, 0)

    def _combine(self, ray: Any, refs: list[Any]) -> RunResult:
        total = RunResult()
        crashed: list[str] = []
        for index, ref in enumerate(refs):
            try:
                part: RunResult = ray.get(ref)
            except ray.exceptions.RayError as exc:
                cause = getattr(exc, "cause", None) or exc
                text = str(cause).strip().splitlines()
                crashed.append(
                    f"shard {index + 1}/{len(refs)}: {text[0] if text else type(cause).__name__}"
                )
                continue
            total.done += part.done
            total.skipped += part.skipped
            total.copied_bytes += part.copied_bytes
            total.retries += part.retries
            total.failures.extend(
                ActionFailure(f.bucket, f.key, f.error, f.refused) for f in part.failures
            )
            total.erased += part.erased
            total.erased_bytes += part.erased_bytes
            total.erase_failures.extend(part.erase_failures)
        if crashed:
            raise RayEngineError(
                f"--engine ray: {len(crashed)} of {len(refs)} shard tasks crashed; the others' "
                f"work is journaled, run the plan again to resume ({crashed[0]})"
            )
        return total
