"""`residency migrate`: execute a plan with many concurrent streams, journaled step by step.

One action (one object) goes through these steps, each ending in its own commit:

1. `pending`: register write intents for the destination blobs (the sweep reclaims them if
   we die), stream the source once into all destinations (`write_replicated`: parallel,
   all-or-nothing, checksummed once, throttled), record keys and digests; state `copied`.
2. `copied`: re-stat and re-read every destination blob and compare size and checksums with
   the digests. Then one transaction clears the intents, adds the destination placements as
   `verified` and appends a `migration_step` audit entry.
3. The sources the plan drops are released (placement removed, blob handed to the sweep as
   garbage) only after that commit; state `done`.

Keys. The metadata model has one blob key per segment, the same at every location. A *move*
(no current placement stays) writes fresh keys on every attempt and switches the object to
them in one transaction together with releasing the old placements (steps 2 and 3 at once):
an aborted attempt's blobs are never rewritten, so the sweep can reclaim them without racing
a retry. When a placement stays (adding a replica), the destination gets the existing keys;
a key still awaiting the sweep there is refused, and so is a native (adopted) key that
already names a blob residency did not write.

`kill -9` at any moment therefore leaves every object readable from a placement that exists
and matches; re-running the same plan resumes each action at its journaled step and never
re-copies a verified object.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, true, tuple_, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from residency.audit import MIGRATION_STEP, append
from residency.meta import Database
from residency.meta.ids import BLOB_PREFIX, fresh_blob_key
from residency.meta.models import (
    BlobIntent,
    Bucket,
    GarbageBlob,
    ObjectVersion,
    Placement,
    Segment,
)
from residency.meta.repo.blobs import add_garbage, add_intents, live_refs, remove_intents
from residency.meta.types import utcnow
from residency.meta.writes import lock_key
from residency.migrate.journal import finish_run, unfinished_actions
from residency.migrate.limits import TokenBucket, throttled
from residency.migrate.models import MigrationAction
from residency.storage import (
    BlobInfo,
    BlobNotFound,
    Hasher,
    InvalidBlobKey,
    Location,
    StorageConfigError,
    StorageError,
    StoragePermissionDenied,
    write_replicated,
)

__all__ = ["ActionFailure", "EngineOptions", "Migrator", "RunResult"]

log = logging.getLogger(__name__)
ACTOR = "residency migrate"


class ActionError(Exception):
    """An action cannot succeed by retrying (bad plan, foreign blob, corrupt source)."""


class TransientError(Exception):
    """Worth retrying: verification failed, intents expired, database busy."""


@dataclass(frozen=True)
class EngineOptions:
    concurrency: int = 16
    bwlimit: int | None = None
    """bytes per second over all streams (reads from the source)"""
    max_rps: float | None = None
    """storage requests per second over all streams"""
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0


@dataclass(frozen=True, slots=True)
class ActionFailure:
    bucket: str
    key: str
    error: str


@dataclass
class RunResult:
    done: int = 0
    skipped: int = 0
    copied_bytes: int = 0
    retries: int = 0
    failures: list[ActionFailure] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)


ProgressHook = Callable[[MigrationAction, str, int], None]
"""Called with (action, outcome 'done'|'skipped'|'failed'|'retry', bytes copied)."""


@dataclass(frozen=True, slots=True)
class _Blob:
    id: int
    key: str
    size: int
    etag: str


@dataclass(slots=True)
class _Object:
    version: ObjectVersion
    bucket: Bucket
    segments: list[_Blob]
    placements: dict[str, str]  # location -> state


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _digest_record(info: BlobInfo) -> dict[str, Any]:
    return {
        "size": info.size,
        "md5": info.md5.hex(),
        "sha256": _b64(info.sha256),
        "crc32c": _b64(info.crc32c),
        "crc32": _b64(info.crc32),
    }


def _is_minted(key: str) -> bool:
    return key.startswith(BLOB_PREFIX)


class Migrator:
    """Runs the unfinished actions of one journaled plan."""

    def __init__(
        self,
        db: Database,
        locations: Mapping[str, Location],
        options: EngineOptions | None = None,
        *,
        progress: ProgressHook | None = None,
    ) -> None:
        self.db = db
        self.locations = locations
        self.options = options or EngineOptions()
        if self.options.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.bandwidth = (
            TokenBucket(self.options.bwlimit, max(self.options.bwlimit, 1 << 20))
            if self.options.bwlimit
            else None
        )
        self.requests = (
            TokenBucket(self.options.max_rps, max(self.options.max_rps, 1.0))
            if self.options.max_rps
            else None
        )
        self.progress = progress
        self.result = RunResult()
        self._write_lock = asyncio.Lock() if db.is_sqlite else None
        # What `_copy` saw, so `_verify` need not read it again (it re-reads in its commit).
        self._seen: dict[int, _Object] = {}

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
        queue: asyncio.Queue[MigrationAction | None] = asyncio.Queue(self.options.concurrency * 4)

        async def produce() -> None:
            async for batch in unfinished_actions(self.db, run_id):
                for action in batch:
                    await queue.put(action)
            for _ in range(self.options.concurrency):
                await queue.put(None)

        async def work() -> None:
            while (action := await queue.get()) is not None:
                await self._execute(action)

        await asyncio.gather(produce(), *(work() for _ in range(self.options.concurrency)))
        if not self.result.failures:
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
            except (ActionError, StoragePermissionDenied, StorageConfigError, InvalidBlobKey) as e:
                await self._fail(action, str(e))
                return
            except (TransientError, StorageError, OperationalError) as exc:
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
        self._seen.pop(action.id, None)
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

    async def _set_state(
        self, session: AsyncSession, action: MigrationAction, state: str, **values: Any
    ) -> None:
        await session.execute(
            update(MigrationAction)
            .where(MigrationAction.id == action.id)
            .values(state=state, updated=utcnow(), **values)
        )

    async def _advance(self, action: MigrationAction) -> str:
        """Take the action from its journaled state to the end; returns done or skipped."""
        while action.state not in ("done", "skipped"):
            step: dict[str, Callable[[MigrationAction], Awaitable[None]]] = {
                "pending": self._copy,
                "copied": self._verify,
                "verified": self._release,
            }
            handler = step.get(action.state)
            if handler is None:
                raise ActionError(f"unknown journal state {action.state!r}")
            await handler(action)
        return action.state

    # --- reading the object -------------------------------------------------------------

    async def _load(self, session: AsyncSession, action: MigrationAction) -> _Object | None:
        """The planned version if it is still the latest, else None (changed since planning)."""
        row = (
            await session.execute(
                select(ObjectVersion, Bucket)
                .join(Bucket, Bucket.id == ObjectVersion.bucket_id)
                .where(
                    Bucket.name == action.bucket,
                    ObjectVersion.key == action.key,
                    ObjectVersion.is_latest == true(),
                )
            )
        ).first()
        if row is None or row[0].version_id != action.version_id:
            return None
        version, bucket = row
        segments = [
            _Blob(i, k, s, e)
            for i, k, s, e in await session.execute(
                select(Segment.id, Segment.blob_key, Segment.size, Segment.etag)
                .where(Segment.object_version_id == version.id)
                .order_by(Segment.seq)
            )
        ]
        placements = {
            loc: state
            for loc, state in await session.execute(
                select(Placement.location, Placement.state).where(
                    Placement.object_version_id == version.id
                )
            )
        }
        return _Object(version, bucket, segments, placements)

    async def _skip(self, action: MigrationAction, why: str) -> None:
        async with self._write() as session:
            await self._set_state(session, action, "skipped", error=why)
        action.state = "skipped"

    def _location(self, name: str) -> Location:
        loc = self.locations.get(name)
        if loc is None:
            raise ActionError(f"location {name!r} is not configured here")
        return loc

    async def _rate(self, n: int = 1) -> None:
        if self.requests is not None:
            await self.requests.take(n)

    # --- step 1: copy -------------------------------------------------------------------

    async def _copy(self, action: MigrationAction) -> None:
        async with self.db.session(write=False) as session:
            obj = await self._load(session, action)
        if obj is None:
            await self._skip(action, "object changed since planning")
            return
        targets = [d for d in action.copy_to if d not in obj.placements]
        if not targets:
            async with self._write() as session:
                await self._set_state(session, action, "verified")
            action.state = "verified"
            return
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
            async with self._write() as session:
                await add_intents(session, [(d, k) for d in targets for k in keys])
        digests: list[dict[str, Any]] = []
        copied = 0
        for seg, key in zip(obj.segments, keys, strict=True):
            await self._rate(1 + len(dsts))
            chunks = throttled(source.read(seg.key), self.bandwidth)
            try:
                info = await write_replicated(dsts, key, chunks, expect_size=seg.size)
            except BlobNotFound as exc:
                if exc.location == source.name:
                    raise ActionError(f"source blob missing: {exc}") from None
                raise
            self._check_source_digest(obj, seg, info)
            digests.append({"key": key, **_digest_record(info)})
            copied += info.size * len(dsts)
        async with self._write() as session:
            await self._set_state(session, action, "copied", digests=digests)
        action.state, action.digests = "copied", digests
        self._seen[action.id] = obj
        self.result.copied_bytes += copied
        self._report(action, "copied", copied)

    def _pick_source(self, action: MigrationAction, obj: _Object) -> Location:
        """The planned source, or another current placement if that one is gone."""
        order = [action.src] if action.src else []
        order += sorted(loc for loc in obj.placements if loc != action.src)
        for name in order:
            if name in obj.placements and name in self.locations:
                return self.locations[name]
        raise ActionError(
            f"no configured location holds it (placements: {', '.join(obj.placements) or 'none'})"
        )

    async def _check_reuse(
        self, dsts: Sequence[Location], obj: _Object, refs: list[tuple[str, str]]
    ) -> None:
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

    def _check_source_digest(self, obj: _Object, seg: _Blob, info: BlobInfo) -> None:
        """Never propagate a corrupt source: compare with what was recorded at write time."""
        v = obj.version
        recorded: list[tuple[str, str | None, str]] = []
        if len(obj.segments) == 1:
            recorded += [
                ("sha256", v.sha256, _b64(info.sha256)),
                ("crc32c", v.crc32c, _b64(info.crc32c)),
            ]
            if v.md5 and "-" not in v.md5:
                recorded.append(("md5", v.md5, info.md5.hex()))
        elif len(seg.etag) == 32:
            recorded.append(("md5", seg.etag, info.md5.hex()))
        for name, want, got in recorded:
            if want and want.strip('"') != got:
                raise ActionError(
                    f"source blob {seg.key} does not match its recorded {name} "
                    f"({want} != {got}); not copying corrupt data"
                )

    # --- step 2: verify -----------------------------------------------------------------

    async def _verify(self, action: MigrationAction) -> None:
        obj = self._seen.pop(action.id, None)
        if obj is None:
            async with self.db.session(write=False) as session:
                obj = await self._load(session, action)
        if obj is None:
            await self._abandon(action, "object changed since planning")
            return
        targets = [d for d in action.copy_to if d not in obj.placements]
        digests = action.digests or []
        if len(digests) != len(obj.segments):
            await self._back_to_pending(action)
            raise TransientError("journal has no digests for this copy; copying again")
        keys = [
            str(want.get("key") or seg.key) for seg, want in zip(obj.segments, digests, strict=True)
        ]
        for d in targets:
            dst = self._location(d)
            for key, want in zip(keys, digests, strict=True):
                problem = await self._check_blob(dst, key, want)
                if problem is not None:
                    await self._back_to_pending(action)
                    raise TransientError(f"verification failed at {d}: {problem}")
        refs = [(d, k) for d in targets for k in keys]
        rekey = keys != [seg.key for seg in obj.segments]
        retry: str | None = None
        async with self._write() as session:
            await lock_key(session, obj.bucket.id, action.key)
            current = await self._load(session, action)
            if current is None:
                await remove_intents(session, refs)
                await add_garbage(session, refs, reason="migration superseded")
                await self._set_state(session, action, "skipped", error="object changed")
                action.state = "skipped"
                return
            missing = await remove_intents(session, refs)
            if missing:
                # The sweep expired some intents and may be deleting those blobs: give this
                # attempt's blobs to the sweep and copy again (raised after the commit).
                found = [r for r in refs if r not in missing]
                await add_garbage(session, found, reason="migration retried")
                retry = "write intents expired before verification; copying again"
            elif rekey:
                retry = await self._switch(session, action, current, targets, keys, digests)
            else:
                await self._place(session, action, current, targets, digests)
            if retry is not None:
                await self._set_state(session, action, "pending", digests=None)
        if retry is not None:
            action.state, action.digests = "pending", None
            raise TransientError(retry)

    async def _place(
        self,
        session: AsyncSession,
        action: MigrationAction,
        obj: _Object,
        targets: list[str],
        digests: list[dict[str, Any]],
    ) -> None:
        """Verified copies under the existing keys become placements (the source stays)."""
        now = utcnow()
        fresh = [d for d in targets if d not in obj.placements]
        session.add_all(
            Placement(
                object_version_id=obj.version.id,
                location=d,
                state="verified",
                created=now,
                verified_at=now,
            )
            for d in fresh
        )
        await self._fill_checksums(session, obj, digests)
        for d in fresh:
            await append(
                session,
                MIGRATION_STEP,
                actor=ACTOR,
                target=f"{action.bucket}/{action.key}",
                detail={
                    "step": "copy_verified",
                    "version": action.version_id,
                    "from": action.src,
                    "to": d,
                    "size": action.size,
                    "sha256": [x["sha256"] for x in digests],
                },
            )
        await self._set_state(session, action, "verified")
        action.state = "verified"

    async def _switch(
        self,
        session: AsyncSession,
        action: MigrationAction,
        obj: _Object,
        targets: list[str],
        keys: list[str],
        digests: list[dict[str, Any]],
    ) -> str | None:
        """A verified move, in one transaction: new keys, new placements, old ones released.

        Returns why it must be retried instead (nothing switched), or None when done.
        """
        stays = [loc for loc in obj.placements if loc not in action.delete_from]
        if stays:
            # A copy appeared that should stay, under the old keys: redo as a plain copy;
            # this attempt's blobs go to the sweep.
            await add_garbage(
                session, [(d, k) for d in targets for k in keys], reason="migration retried"
            )
            return f"{', '.join(stays)} now holds the object; copying again"
        old = [(loc, seg.key) for loc in obj.placements for seg in obj.segments]
        await add_garbage(session, old, reason="migrated")
        for seg, key in zip(obj.segments, keys, strict=True):
            await session.execute(update(Segment).where(Segment.id == seg.id).values(blob_key=key))
        await session.execute(
            delete(Placement).where(Placement.object_version_id == obj.version.id)
        )
        now = utcnow()
        session.add_all(
            Placement(
                object_version_id=obj.version.id,
                location=d,
                state="verified",
                created=now,
                verified_at=now,
            )
            for d in targets
        )
        await self._fill_checksums(session, obj, digests)
        await append(
            session,
            MIGRATION_STEP,
            actor=ACTOR,
            target=f"{action.bucket}/{action.key}",
            detail={
                "step": "moved",
                "version": action.version_id,
                "from": sorted(obj.placements),
                "to": targets,
                "size": action.size,
                "sha256": [x["sha256"] for x in digests],
            },
        )
        await self._set_state(session, action, "done", error=None)
        action.state = "done"
        return None

    async def _check_blob(self, dst: Location, key: str, want: Mapping[str, Any]) -> str | None:
        await self._rate(2)
        try:
            stat = await dst.stat(key)
        except BlobNotFound:
            return f"blob {key} is missing"
        if stat.size != want["size"]:
            return f"blob {key} has {stat.size} bytes, expected {want['size']}"
        hasher = Hasher(("md5", "sha256", "crc32c"))
        async for chunk in dst.read(key):
            hasher.update(chunk)
        got = hasher.digests()
        if got["md5"].hex() != want["md5"] or _b64(got["sha256"]) != want["sha256"]:
            return f"blob {key} does not match the source's checksums"
        if _b64(got["crc32c"]) != want["crc32c"]:
            return f"blob {key} does not match the source's CRC32C"
        return None

    async def _fill_checksums(
        self, session: AsyncSession, obj: _Object, digests: list[dict[str, Any]]
    ) -> None:
        """An adopted object learns its ETag and checksums from its first verified copy."""
        v = obj.version
        for seg, d in zip(obj.segments, digests, strict=True):
            if not seg.etag:
                await session.execute(
                    update(Segment).where(Segment.id == seg.id).values(etag=d["md5"])
                )
        if len(digests) == 1 and v.sha256 is None:
            d = digests[0]
            v.md5, v.sha256, v.crc32c, v.crc32 = d["md5"], d["sha256"], d["crc32c"], d["crc32"]
            if not v.etag:
                v.etag = d["md5"]

    async def _back_to_pending(self, action: MigrationAction) -> None:
        async with self._write() as session:
            await self._set_state(session, action, "pending", digests=None)
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
            await self._set_state(session, action, "skipped", error=why)
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

    # --- step 3: release the source -----------------------------------------------------

    async def _release(self, action: MigrationAction) -> None:
        drops = list(action.delete_from)
        async with self.db.session(write=False) as session:
            obj = await self._load(session, action)
        if obj is None:
            await self._skip(action, "object changed since planning")
            return
        drops = [d for d in drops if d in obj.placements]
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
        async with self._write() as session:
            await lock_key(session, obj.bucket.id, action.key)
            current = await self._load(session, action)
            if current is None:
                await self._set_state(session, action, "skipped", error="object changed")
                action.state = "skipped"
                return
            drops = [d for d in drops if d in current.placements]
            if drops:
                await session.execute(
                    delete(Placement).where(
                        Placement.object_version_id == current.version.id,
                        Placement.location.in_(drops),
                    )
                )
                await add_garbage(
                    session,
                    [(d, seg.key) for d in drops for seg in current.segments],
                    reason="migrated",
                )
                await append(
                    session,
                    MIGRATION_STEP,
                    actor=ACTOR,
                    target=f"{action.bucket}/{action.key}",
                    detail={
                        "step": "source_released",
                        "version": action.version_id,
                        "locations": drops,
                        "kept": sorted(current.placements.keys() - set(drops)),
                    },
                )
            await self._set_state(session, action, "done", error=None)
        action.state = "done"

    async def _prove_any(self, obj: _Object, remaining: list[str]) -> None:
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
