"""`residency migrate`: execute a plan as a pipeline, with journaled, batched metadata steps.

One action (one object) goes through these steps:

1. Read the object (batched with other workers' reads). Register write intents for the
   destination blobs in a committed transaction (batched too) before the first byte: the
   sweep reclaims them if we die.
2. Copy and verify: read the source once and write it to all destinations, all or nothing,
   hashing the bytes as they are written. A small blob is copied whole in a worker thread
   (`copy_whole`: one GET, one PUT and one stat per destination), many blobs per thread hop
   (`WholeCopier`); a larger one streams (`replicate_stream`: ranged reads from the source,
   multipart uploads with parallel parts to an object store). A copy is verified when every
   byte was written, every writer closed successfully, each destination reports the size
   written, and the digests computed over those bytes match the checksums recorded for the
   source (SHA-256 is always computed; the audit records it). Re-reading the destination is
   `residency verify --deep`'s job. At most `concurrency` objects are in this step.
3. Make durable (batched): a whole copy to a local disk is written without an fsync of its
   own; one `syncfs` per destination filesystem flushes a whole batch of them
   (`storage.local_io.SyncBarrier`), overlapping the previous batch's commit. A copy whose
   flush failed is retried, never recorded.
4. Commit (batched): one transaction re-reads the objects, clears the intents, records the
   destination placements as `verified`, releases the sources a move leaves behind, journals
   each action's new state and appends one `migration_step` audit entry per placement change
   (last, right before the commit).
5. Sources that a copy (not a move) drops are released in a later batch, only after the
   commit that recorded the verified destination.

Keys. The metadata model has one blob key per segment, the same at every location. A *move*
(no current placement stays) writes fresh keys on every attempt and switches the object to
them in one transaction together with releasing the old placements (steps 4 and 5 at once):
an aborted attempt's blobs are never rewritten, so the sweep can reclaim them without racing
a retry. When a placement stays (adding a replica), the destination gets the existing keys;
a key still awaiting the sweep there is refused, and so is a native (adopted) key that
already names a blob residency did not write.

Re-deciding. A plan is a proposal, not an authority: before the first byte of a copy, its
destinations are evaluated again against the policy the engine runs under and the object's
classification as stored in the metadata (class, subject, subject count: never the plan
file's word). A destination the policy does not allow — or a delete of a copy it does allow —
refuses the action: nothing is written, the refusal is audited (kind `refusal`) and reported,
and the run's other actions go on.

Erasing. Bytes an object must leave are deleted as soon as the commit that records its new
verified copies (and drops the old placements) is done, each deletion confirmed by a stat
that finds nothing and audited ("erased from LOCATION"; `migrate.erase`). A deletion that
keeps failing is reported and stays recorded (the report counts it out of compliance); the
next run, or `residency sweep`, tries again first.

`kill -9` at any moment therefore leaves every object readable from a placement that exists
and matches; re-running the same plan resumes each action at its journaled state and never
re-copies a verified object. (Journals written before batching may hold actions in state
`copied`, with digests: those are verified and committed without copying again.)
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from residency.audit import REFUSAL, append
from residency.meta import Database
from residency.meta.errors import BlobBusy
from residency.meta.ids import BLOB_PREFIX, fresh_blob_key
from residency.meta.models import BlobIntent, GarbageBlob, ObjectVersion, Segment
from residency.meta.repo.blobs import BlobRef, add_garbage, add_intents, live_refs, remove_intents
from residency.meta.types import utcnow
from residency.migrate.batch import (
    ACTOR,
    ActionError,
    Batcher,
    Blob,
    CommitJob,
    Obj,
    TransientError,
    commit_batch,
    load_objects,
)
from residency.migrate.decide import Decider
from residency.migrate.erase import EraseFailure, Eraser, erase_pending
from residency.migrate.journal import finish_run, unfinished_actions
from residency.migrate.limits import TokenBucket, throttled
from residency.migrate.models import MigrationAction
from residency.migrate.ranges import ranged_read
from residency.migrate.whole_copies import WholeCopier, WholeCopy
from residency.policy import Policy
from residency.storage import (
    BlobNotFound,
    Hasher,
    InvalidBlobKey,
    Location,
    StorageConfigError,
    StorageError,
    StoragePermissionDenied,
    Written,
    replicate_stream,
    whole_copy_possible,
)
from residency.storage.checksums import Algorithm
from residency.storage.local_io import SyncBarrier
from residency.storage.opendal_store import OpendalStore

__all__ = ["ActionFailure", "EngineOptions", "Migrator", "Refused", "RunResult"]

log = logging.getLogger(__name__)

LOCAL_THREADS = 2
"""worker threads for whole copies between local disks: those are bound by CPU and system
calls, so more threads than this only contend for the GIL"""
LOCAL_PER_HOP = 64
"""most local whole copies per thread hop"""


@dataclass(frozen=True)
class EngineOptions:
    concurrency: int = 16
    """objects whose bytes are being copied or verified at once"""
    bwlimit: int | None = None
    """bytes per second over all streams (reads from the source)"""
    max_rps: float | None = None
    """storage requests per second over all streams"""
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    batch_size: int = 200
    """most objects per metadata transaction"""
    batch_linger: float = 0.2
    """seconds a metadata batch that is not full waits for more objects (fewer, fuller
    transactions when objects trickle in from a slow source)"""
    range_threshold: int = 64 << 20
    """blobs larger than this are read from the source as concurrent ranges"""
    range_size: int = 16 << 20
    range_streams: int = 4
    """ranges in flight per large blob (memory: range_size x range_streams per blob)"""
    whole_threshold: int = 1 << 20
    """blobs up to this size are copied whole in one worker-thread hop (memory: one blob per
    copy slot, no more than a streamed copy's chunk)"""
    part_size: int = 8 << 20
    """object-store destinations take a larger blob as a multipart upload of such parts"""
    part_streams: int = 4
    """parts uploaded at once per blob and destination (memory: part_size x (part_streams + 1))"""
    large_concurrency: int = 4
    """blobs over `whole_threshold` streamed at once, which bounds the memory above"""


class Refused(ActionError):
    """The policy in force does not allow what the action would do; nothing was written."""

    def __init__(self, message: str, detail: dict[str, Any]) -> None:
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ActionFailure:
    bucket: str
    key: str
    error: str
    refused: bool = False


@dataclass
class RunResult:
    done: int = 0
    skipped: int = 0
    copied_bytes: int = 0
    retries: int = 0
    failures: list[ActionFailure] = field(default_factory=list)
    erased: int = 0
    """blobs deleted (and confirmed gone) at locations their objects had to leave"""
    erased_bytes: int = 0
    erase_failures: list[EraseFailure] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def refused(self) -> int:
        return sum(1 for f in self.failures if f.refused)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.erase_failures


ProgressHook = Callable[[MigrationAction, str, int], None]
"""Called with (action, outcome 'copied'|'done'|'skipped'|'failed'|'retry', bytes copied)."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _digest_record(written: Written) -> dict[str, Any]:
    record: dict[str, Any] = {"size": written.size}
    for name, raw in written.digests.items():
        record[name] = raw.hex() if name == "md5" else _b64(raw)
    return record


def _algorithms(obj: Obj, seg: Blob) -> tuple[Algorithm, ...]:
    """What a copy of `seg` computes: SHA-256 (the audit records it), every checksum recorded
    for the source (so a corrupt source is caught), and MD5 where an ETag is still missing."""
    single = len(obj.segments) == 1
    wanted: list[Algorithm] = ["sha256"]
    recorded_md5 = (
        bool(obj.md5 and "-" not in obj.md5) if single else len(seg.etag.strip('"')) == 32
    )
    if recorded_md5 or not seg.etag or (single and not obj.etag):
        wanted.append("md5")
    if single and obj.crc32c:
        wanted.append("crc32c")
    return tuple(wanted)


def _is_minted(key: str) -> bool:
    return key.startswith(BLOB_PREFIX)


def _fs_root(location: Location) -> Path | None:
    """The directory of a bare `fs` location (no Python layer in between), else None."""
    store = location.store
    return store.fs_root if isinstance(store, OpendalStore) else None


def _sync_all(barriers: Sequence[tuple[str, SyncBarrier]]) -> dict[str, str]:
    """Blocking: flush each barrier's filesystem; the locations that failed, with why."""
    failed: dict[str, str] = {}
    for name, barrier in barriers:
        try:
            barrier.sync()
        except OSError as exc:
            failed[name] = exc.strerror or str(exc)
    return failed


class Migrator:
    """Runs the unfinished actions of one journaled plan under `policy` (the one in force)."""

    def __init__(
        self,
        db: Database,
        locations: Mapping[str, Location],
        options: EngineOptions | None = None,
        *,
        policy: Policy,
        progress: ProgressHook | None = None,
    ) -> None:
        self.db = db
        self.locations = locations
        self.decider = Decider(policy, [loc.facts for loc in locations.values()])
        self.options = options or EngineOptions()
        if self.options.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        # Burst of one second's worth: a low --bwlimit must hold from the first byte on.
        self.bandwidth = TokenBucket(self.options.bwlimit) if self.options.bwlimit else None
        self.requests = (
            TokenBucket(self.options.max_rps, max(self.options.max_rps, 1.0))
            if self.options.max_rps
            else None
        )
        self.progress = progress
        self.result = RunResult()
        self._write_lock = asyncio.Lock() if db.is_sqlite else None
        self._copying = asyncio.Semaphore(self.options.concurrency)
        self._large = asyncio.Semaphore(max(1, self.options.large_concurrency))
        self._pool: ThreadPoolExecutor | None = None
        self._local: WholeCopier | None = None
        self._remote: WholeCopier | None = None
        self._barriers: dict[str, SyncBarrier] = {}
        size, linger = self.options.batch_size, self.options.batch_linger
        self._loader: Batcher[MigrationAction, Obj | None] = Batcher(
            self._load_batch, size, linger=linger
        )
        self._intents: Batcher[list[BlobRef], None] = Batcher(
            self._intents_batch, size, linger=linger
        )
        # Flushes overlap the previous batch's commit: a flush may wait on other writers'
        # dirty data on the same filesystem.
        self._syncer: Batcher[CommitJob, None] = Batcher(self._sync_batch, size, linger=linger)
        self._committer: Batcher[CommitJob, str] = Batcher(self._commit_batch, size, linger=linger)
        self.eraser = Eraser(
            db,
            locations,
            actor=ACTOR,
            attempts=self.options.max_attempts,
            backoff_base=self.options.backoff_base,
            backoff_max=self.options.backoff_max,
            batch_size=size,
            concurrency=self.options.concurrency,
            rate=self._rate,
            write=self._write,
        )

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncSession]:
        """A write transaction. On SQLite, queue for it here rather than in SQLite's busy
        handler, which sleeps in growing steps and would leave the writer lock idle."""
        if self._write_lock is None:
            async with self.db.session() as session:
                yield session
            return
        async with self._write_lock, self.db.session() as session:
            yield session

    # --- driving ------------------------------------------------------------------------

    async def run(self, run_id: str) -> RunResult:
        # What an earlier run could not erase (or was killed before erasing) goes first.
        leftover = await erase_pending(
            self.db, self.locations, actor=ACTOR, attempts=self.options.max_attempts
        )
        self.result.erased += leftover.erased
        self.result.erased_bytes += leftover.erased_bytes
        self.result.erase_failures.extend(leftover.failures)
        # Enough objects in flight to keep the copy slots busy while batches of others
        # are being read, registered and committed.
        workers = self.options.concurrency + 2 * self.options.batch_size
        queue: asyncio.Queue[MigrationAction | None] = asyncio.Queue(workers)

        async def produce() -> None:
            async for batch in unfinished_actions(self.db, run_id):
                for action in batch:
                    await queue.put(action)
            for _ in range(workers):
                await queue.put(None)
            # The last actions are in flight: batches that wait for more only delay the end.
            for batcher in (self._loader, self._intents, self._syncer, self._committer):
                batcher.stop_lingering()
            self.eraser.stop_lingering()

        async def work() -> None:
            while (action := await queue.get()) is not None:
                await self._execute(action)

        conc = self.options.concurrency
        # Barriers open before the first write: they report every writeback error after it.
        self._barriers = {
            name: barrier
            for name, loc in self.locations.items()
            if (root := _fs_root(loc)) is not None and (barrier := SyncBarrier.open(root))
        }
        try:
            with ThreadPoolExecutor(conc, thread_name_prefix="residency-copy") as self._pool:
                self._local = WholeCopier(
                    self._pool,
                    threads=min(conc, LOCAL_THREADS),
                    per_hop=LOCAL_PER_HOP,
                    barriers=self._barriers,
                )
                self._remote = WholeCopier(
                    self._pool, threads=conc, per_hop=1, barriers=self._barriers
                )
                await asyncio.gather(produce(), *(work() for _ in range(workers)))
        finally:
            self.eraser.close()
            self._pool = self._local = self._remote = None
            for barrier in self._barriers.values():
                barrier.close()
            self._barriers = {}
        self.result.erased += self.eraser.result.erased
        self.result.erased_bytes += self.eraser.result.erased_bytes
        self.result.erase_failures.extend(self.eraser.result.failures)
        if self.result.ok:
            await finish_run(self.db, run_id)
        return self.result

    def _report(self, action: MigrationAction, outcome: str, nbytes: int) -> None:
        if self.progress is not None:
            self.progress(action, outcome, nbytes)

    async def _execute(self, action: MigrationAction) -> None:
        opts = self.options
        attempt = 0
        while True:
            attempt += 1
            try:
                outcome = await self._advance(action)
            except Refused as refusal:
                await self._refuse(action, refusal)
                return
            except (ActionError, StoragePermissionDenied, StorageConfigError, InvalidBlobKey) as e:
                await self._fail(action, str(e))
                return
            except (TransientError, StorageError, OperationalError, BlobBusy) as exc:
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                await self._note_error(action, message)
                if attempt >= opts.max_attempts:
                    await self._fail(action, f"gave up after {attempt} attempts: {message}")
                    return
                self.result.retries += 1
                self._report(action, "retry", 0)
                await self._refresh(action)
                delay = min(opts.backoff_max, opts.backoff_base * 2 ** (attempt - 1))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                continue
            if outcome == "skipped":
                self.result.skipped += 1
            else:
                self.result.done += 1
            self._report(action, outcome, 0)
            return

    async def _refresh(self, action: MigrationAction) -> None:
        """Take state and digests from the journal: the in-memory copy may be ahead of a
        commit that failed."""
        async with self.db.session(write=False) as session:
            row = (
                await session.execute(
                    select(MigrationAction.state, MigrationAction.digests).where(
                        MigrationAction.id == action.id
                    )
                )
            ).one()
        action.state, action.digests = row[0], row[1]

    async def _note_error(self, action: MigrationAction, message: str) -> None:
        action.attempts += 1
        async with self._write() as session:
            await session.execute(
                update(MigrationAction)
                .where(MigrationAction.id == action.id)
                .values(attempts=action.attempts, error=message, updated=utcnow())
            )

    async def _fail(self, action: MigrationAction, message: str) -> None:
        self.result.failures.append(ActionFailure(action.bucket, action.key, message))
        self._report(action, "failed", 0)
        async with self._write() as session:
            await session.execute(
                update(MigrationAction)
                .where(MigrationAction.id == action.id)
                .values(failed=True, error=message, updated=utcnow())
            )

    async def _refuse(self, action: MigrationAction, refusal: Refused) -> None:
        """Fail the action and audit the refusal, in one transaction."""
        message = str(refusal)
        self.result.failures.append(ActionFailure(action.bucket, action.key, message, True))
        self._report(action, "failed", 0)
        async with self._write() as session:
            await session.execute(
                update(MigrationAction)
                .where(MigrationAction.id == action.id)
                .values(failed=True, error=message, updated=utcnow())
            )
            await append(
                session,
                REFUSAL,
                actor=ACTOR,
                target=f"{action.bucket}/{action.key}",
                detail={"message": message, "version": action.version_id, **refusal.detail},
            )

    def _check_policy(self, action: MigrationAction, obj: Obj, targets: Sequence[str]) -> None:
        """`Refused` unless the policy in force allows every destination of this copy and
        forbids every location it would drop, for the object's stored classification."""
        decision = self.decider.decide(
            obj.data_class,
            obj.subject,
            obj.tenant,
            action.bucket,
            obj.subject_count,
            obj.bucket_policy,
        )
        allowed = set(decision.allowed)
        what = f"{obj.data_class} data of subject {obj.subject or 'unknown'}"
        for dst in targets:
            if dst not in allowed:
                reason = self.decider.reason(decision, dst)
                raise Refused(
                    f"refused: {dst} may not hold {what} under policy "
                    f"{self.decider.policy.name}: {reason}",
                    _refusal_detail(obj, decision.rule, dst, "copy", reason),
                )
        for drop in action.delete_from:
            if drop in allowed and drop in self.locations:
                raise Refused(
                    f"refused: the plan drops the copy at {drop}, which policy "
                    f"{self.decider.policy.name} allows for {what}; make a new plan",
                    _refusal_detail(obj, decision.rule, drop, "delete", "allowed there"),
                )

    async def _advance(self, action: MigrationAction) -> str:
        """Take the action from its journaled state to the end; returns done or skipped."""
        while action.state not in ("done", "skipped"):
            obj = await self._loader.submit(action)
            if action.state == "pending":
                job = await self._copy(action, obj)
            elif action.state == "copied":
                job = await self._verify_journaled(action, obj)
            elif action.state == "verified":
                job = await self._release(action, obj)
            else:
                raise ActionError(f"unknown journal state {action.state!r}")
            if job is None:
                continue
            if self._unsynced(job):
                await self._syncer.submit(job)
            action.state = await self._committer.submit(job)
            if job.erase:
                await self.eraser.erase(job.erase)
        return action.state

    # --- batched metadata steps ---------------------------------------------------------

    async def _load_batch(self, actions: list[MigrationAction]) -> list[Obj | None]:
        async with self.db.session(write=False) as session:
            return await load_objects(session, actions)

    async def _intents_batch(self, groups: list[list[BlobRef]]) -> list[None]:
        """Fresh keys only (a move's): they have no history, so one batch cannot fail for
        one object's sake."""
        async with self._write() as session:
            await add_intents(session, [ref for refs in groups for ref in refs])
        return [None] * len(groups)

    def _unsynced(self, job: CommitJob) -> list[str]:
        """Destinations of `job`'s copies that a barrier has yet to make durable."""
        if job.kind not in ("move", "place"):
            return []
        return [d for d in job.targets if d in self._barriers]

    async def _sync_batch(self, jobs: list[CommitJob]) -> list[Exception | None]:
        """One flush per destination filesystem for the whole batch; a copy whose flush failed
        is not durable and must not be recorded."""
        names = sorted({d for job in jobs for d in self._unsynced(job)})
        failed = await asyncio.to_thread(_sync_all, [(n, self._barriers[n]) for n in names])
        results: list[Exception | None] = []
        for job in jobs:
            lost = [d for d in self._unsynced(job) if d in failed]
            results.append(
                TransientError(f"could not make the copy durable at {lost[0]}: {failed[lost[0]]}")
                if lost
                else None
            )
        return results

    async def _commit_batch(self, jobs: list[CommitJob]) -> list[str | Exception]:
        try:
            async with self._write() as session:
                results = await commit_batch(session, jobs)
        except OperationalError:
            raise  # busy or gone: every action retries
        except SQLAlchemyError as exc:
            if len(jobs) == 1:
                return [ActionError(f"the database refused the commit: {exc}".splitlines()[0])]
            # One object's problem must not fail the others: commit them one by one.
            results = []
            for job in jobs:
                results.extend(await self._commit_batch([job]))
            return results
        for job, res in zip(jobs, results, strict=True):
            if not isinstance(res, Exception):
                job.action.digests = job.digests or job.action.digests
        return results

    # --- reading the object -------------------------------------------------------------

    def _location(self, name: str) -> Location:
        loc = self.locations.get(name)
        if loc is None:
            raise ActionError(f"location {name!r} is not configured here")
        return loc

    async def _rate(self, n: int = 1) -> None:
        """Wait for `n` request tokens (a no-op without --max-rps)."""
        if self.requests is not None:
            await self.requests.take(n)

    # --- pending: intents, copy, verify -------------------------------------------------

    async def _copy(self, action: MigrationAction, obj: Obj | None) -> CommitJob | None:
        if obj is None:
            return CommitJob(action, "skip", why="object changed since planning")
        targets = [d for d in action.copy_to if d not in obj.placements]
        self._check_policy(action, obj, targets)
        if not targets:
            # Already placed everywhere (an earlier run committed it): release the sources.
            action.state = "verified"
            return None
        source = self._pick_source(action, obj)
        dsts = [self._location(d) for d in targets]
        kept = [loc for loc in obj.placements if loc not in action.delete_from]
        if kept:
            # Another copy stays where it is, under the segments' keys: same keys here.
            keys = [seg.key for seg in obj.segments]
            refs = [(d, k) for d in targets for k in keys]
            await self._check_reuse(dsts, obj, refs)
            async with self._write() as session:
                # Fresh intents (a retry re-dates them, so the sweep's grace starts again).
                await remove_intents(session, refs)
                await add_intents(session, refs)
        else:
            # A move: new keys for every attempt, switched in atomically once verified.
            keys = [fresh_blob_key() for _ in obj.segments]
            await self._intents.submit([(d, k) for d in targets for k in keys])
        async with self._copying:
            digests: list[dict[str, Any]] = []
            copied = 0
            for seg, key in zip(obj.segments, keys, strict=True):
                try:
                    written = await self._copy_blob(source, seg, dsts, key, _algorithms(obj, seg))
                except BlobNotFound as exc:
                    if exc.location == source.name:
                        raise ActionError(f"source blob missing: {exc}") from None
                    raise
                self._check_source_digest(obj, seg, written)
                digests.append({"key": key, **_digest_record(written)})
                copied += written.size * len(dsts)
            self.result.copied_bytes += copied
            self._report(action, "copied", copied)
        return CommitJob(action, "place" if kept else "move", obj, targets, keys, digests=digests)

    async def _copy_blob(
        self,
        source: Location,
        seg: Blob,
        dsts: Sequence[Location],
        key: str,
        algorithms: Sequence[Algorithm],
    ) -> Written:
        """Copy one blob to every destination and check the sizes stored there."""
        opts = self.options
        small = seg.size <= min(opts.whole_threshold, opts.range_threshold)
        copier = self._local if all(_fs_root(loc) for loc in (source, *dsts)) else self._remote
        if small and copier is not None and whole_copy_possible([source, *dsts]):
            await self._rate(1 + 2 * len(dsts))  # GET, then PUT and stat per destination
            if self.bandwidth is not None:
                await self.bandwidth.take(seg.size)
            return await copier.copy(WholeCopy(source, seg.key, dsts, key, seg.size, algorithms))
        async with self._large:
            await self._rate(len(dsts))
            written = await replicate_stream(
                dsts,
                key,
                throttled(self._source_bytes(source, seg), self.bandwidth),
                algorithms=algorithms,
                expect_size=seg.size,
                part_size=opts.part_size,
                concurrency=opts.part_streams,
            )
        for dst in dsts:
            await self._rate()
            stored = (await dst.stat(key)).size
            if stored != written.size:
                raise TransientError(
                    f"verification failed at {dst.name}: blob {key} has {stored} bytes, "
                    f"wrote {written.size}"
                )
        return written

    async def _source_bytes(self, source: Location, seg: Blob) -> AsyncIterator[bytes]:
        opts = self.options
        if seg.size <= opts.range_threshold:
            await self._rate(1)
            stream = source.read(seg.key)
        else:
            await self._rate(-(-seg.size // opts.range_size))
            stream = ranged_read(
                source,
                seg.key,
                seg.size,
                part_size=opts.range_size,
                streams=opts.range_streams,
            )
        async for chunk in stream:
            yield chunk

    def _pick_source(self, action: MigrationAction, obj: Obj) -> Location:
        """The planned source, or another current placement if that one is gone."""
        order = [action.src] if action.src else []
        order += sorted(loc for loc in obj.placements if loc != action.src)
        for name in order:
            if name in obj.placements and name in self.locations:
                return self.locations[name]
        raise ActionError(
            f"no configured location holds it (placements: {', '.join(obj.placements) or 'none'})"
        )

    async def _check_reuse(self, dsts: Sequence[Location], obj: Obj, refs: list[BlobRef]) -> None:
        """Writing under existing keys: never over a blob that is not ours, nor over garbage.

        A key with a garbage row at the destination is an earlier attempt of ours that the
        sweep may be deleting right now: rewriting it could lose the new copy to that sweep.
        """
        async with self.db.session(write=False) as session:
            doomed = (
                await session.execute(
                    select(GarbageBlob.location, GarbageBlob.blob_key)
                    .where(tuple_(GarbageBlob.location, GarbageBlob.blob_key).in_(refs))
                    .limit(1)
                )
            ).first()
            if doomed is not None:
                raise ActionError(
                    f"an earlier attempt's blob {doomed[1]} at {doomed[0]} awaits the orphan "
                    "sweep; run the sweep, then run this plan again"
                )
        if all(_is_minted(seg.key) for seg in obj.segments):
            return
        async with self.db.session(write=False) as session:
            live = await live_refs(session, refs)
            ours = {
                (loc, key)
                for loc, key in await session.execute(
                    select(BlobIntent.location, BlobIntent.blob_key).where(
                        tuple_(BlobIntent.location, BlobIntent.blob_key).in_(refs)
                    )
                )
            }
        if live:
            loc, key = sorted(live)[0]
            raise ActionError(f"{loc} already holds {key} for another object; not overwriting")
        for dst in dsts:
            for seg in obj.segments:
                if (dst.name, seg.key) in ours:
                    continue
                await self._rate()
                try:
                    await dst.stat(seg.key)
                except BlobNotFound:
                    continue
                raise ActionError(
                    f"{dst.name} already holds a blob at {seg.key} that residency did not write; "
                    "not overwriting it"
                )

    def _check_source_digest(self, obj: Obj, seg: Blob, written: Written) -> None:
        """Never propagate a corrupt source: compare with what was recorded at write time."""
        d = written.digests
        recorded: list[tuple[str, str | None, str]] = []
        if len(obj.segments) == 1:
            recorded.append(("sha256", obj.sha256, _b64(d["sha256"])))
            if obj.crc32c:
                recorded.append(("crc32c", obj.crc32c, _b64(d["crc32c"])))
            if obj.md5 and "-" not in obj.md5:
                recorded.append(("md5", obj.md5, d["md5"].hex()))
        elif len(seg.etag.strip('"')) == 32:
            recorded.append(("md5", seg.etag, d["md5"].hex()))
        for name, want, got in recorded:
            if want and want.strip('"') != got:
                raise ActionError(
                    f"source blob {seg.key} does not match its recorded {name} "
                    f"({want} != {got}); not copying corrupt data"
                )

    async def _verify_copies(
        self, dsts: Sequence[Location], keys: list[str], digests: list[dict[str, Any]]
    ) -> None:
        """Every destination blob re-read and matched (a copy journaled without its write's
        verdict: only journals from before batching have those)."""
        for dst in dsts:
            for key, want in zip(keys, digests, strict=True):
                problem = await self._check_blob(dst, key, want)
                if problem is not None:
                    raise TransientError(f"verification failed at {dst.name}: {problem}")

    async def _check_blob(self, dst: Location, key: str, want: Mapping[str, Any]) -> str | None:
        await self._rate()
        # SHA-256 alone: a blob that matches it matches the MD5 and CRCs computed with it.
        hasher = Hasher(("sha256",))
        try:
            async for chunk in dst.read(key):
                hasher.update(chunk)
        except BlobNotFound:
            return f"blob {key} is missing"
        if hasher.size != want["size"]:
            return f"blob {key} has {hasher.size} bytes, expected {want['size']}"
        if _b64(hasher.digests()["sha256"]) != want["sha256"]:
            return f"blob {key} does not match the source's checksums"
        return None

    # --- copied (journals from before batching): verify what was copied -----------------

    async def _verify_journaled(self, action: MigrationAction, obj: Obj | None) -> CommitJob | None:
        digests = list(action.digests or [])
        if obj is None:
            await self._abandon(action, "object changed since planning")
            return None
        if len(digests) != len(obj.segments):
            await self._back_to_pending(action)
            raise TransientError("journal has no digests for this copy; copying again")
        targets = [d for d in action.copy_to if d not in obj.placements]
        try:
            self._check_policy(action, obj, targets)
        except Refused:
            await self._abandon(action, "refused by the policy in force")
            raise
        keys = [
            str(want.get("key") or seg.key) for seg, want in zip(obj.segments, digests, strict=True)
        ]
        try:
            async with self._copying:
                await self._verify_copies([self._location(d) for d in targets], keys, digests)
        except TransientError:
            await self._back_to_pending(action)
            raise
        moved = keys != [seg.key for seg in obj.segments]
        return CommitJob(action, "move" if moved else "place", obj, targets, keys, digests=digests)

    async def _back_to_pending(self, action: MigrationAction) -> None:
        async with self._write() as session:
            await session.execute(
                update(MigrationAction)
                .where(MigrationAction.id == action.id)
                .values(state="pending", digests=None, updated=utcnow())
            )
        action.state, action.digests = "pending", None

    async def _abandon(self, action: MigrationAction, why: str) -> None:
        """The object changed under us: what we copied is garbage, the action is moot."""
        keys = [str(x["key"]) for x in action.digests or [] if x.get("key")]
        if not keys:
            keys = await self._version_keys(action)
        refs = [(d, key) for d in action.copy_to for key in keys]
        async with self._write() as session:
            missing = await remove_intents(session, refs)
            await add_garbage(session, [r for r in refs if r not in missing], reason=why)
            await session.execute(
                update(MigrationAction)
                .where(MigrationAction.id == action.id)
                .values(state="skipped", error=why, updated=utcnow())
            )
        action.state = "skipped"

    async def _version_keys(self, action: MigrationAction) -> list[str]:
        """Blob keys of the planned version (its segments may be gone with it)."""
        async with self.db.session(write=False) as session:
            return list(
                (
                    await session.scalars(
                        select(Segment.blob_key)
                        .join(ObjectVersion, ObjectVersion.id == Segment.object_version_id)
                        .where(ObjectVersion.version_id == action.version_id)
                    )
                ).all()
            )

    # --- verified: release the sources --------------------------------------------------

    async def _release(self, action: MigrationAction, obj: Obj | None) -> CommitJob:
        if obj is None:
            return CommitJob(action, "skip", why="object changed since planning")
        self._check_policy(action, obj, [])
        drops = [d for d in action.delete_from if d in obj.placements]
        if drops:
            remaining = [loc for loc in obj.placements if loc not in drops]
            if not remaining:
                raise ActionError("refusing to drop the last placement of the object")
            missing_targets = [d for d in action.copy_to if d not in obj.placements]
            if missing_targets:
                raise ActionError(
                    f"destination {', '.join(missing_targets)} lost its placement; not deleting"
                )
            # A delete-only action relies on placements it did not copy: prove one is there.
            if not action.copy_to:
                await self._prove_any(obj, remaining)
        return CommitJob(action, "release", obj, drops=drops, digests=list(action.digests or []))

    async def _prove_any(self, obj: Obj, remaining: list[str]) -> None:
        for name in remaining:
            loc = self.locations.get(name)
            if loc is None:
                continue
            try:
                for seg in obj.segments:
                    await self._rate()
                    if (await loc.stat(seg.key)).size != seg.size:
                        raise BlobNotFound("size differs", location=name, key=seg.key)
            except BlobNotFound:
                continue
            return
        raise ActionError(
            f"no remaining placement ({', '.join(remaining)}) could be confirmed; not deleting"
        )


def _refusal_detail(
    obj: Obj, rule: str | None, location: str, op: str, reason: str
) -> dict[str, Any]:
    return {
        "step": f"{op}_refused",
        "location": location,
        "reason": reason,
        "rule": rule,
        "data_class": obj.data_class,
        "subject": obj.subject,
        "subject_count": obj.subject_count,
    }
