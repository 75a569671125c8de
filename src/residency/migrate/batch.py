"""Group commit for the migration engine: many objects' metadata steps in one transaction.

Per object the engine needs a read (the version, its segments and placements), one write
before copying (the write intents) and one after verifying (placements, keys, garbage, journal
state, audit entry). Done one object at a time that is a few dozen statements and three
commits per object, which caps a run at a few dozen small objects per second. Here workers
`submit` their step to a `Batcher` and wait; while one batch's transaction runs, the next
batch gathers, so batches grow with the load and an idle engine pays no added latency.

The SQL is core `executemany` against meta's tables (the batch counterparts of
`meta.writes`' one-object functions), with the audit appends last before the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from residency.audit import MIGRATION_STEP, append_many
from residency.meta.models import Bucket, ObjectVersion, Placement, Segment
from residency.meta.repo.blobs import BlobRef, add_garbage, remove_intents
from residency.meta.repo.chunks import chunks
from residency.meta.types import utcnow
from residency.meta.writes import lock_key
from residency.migrate.models import MigrationAction

__all__ = [
    "ACTOR",
    "ActionError",
    "Batcher",
    "Blob",
    "CommitJob",
    "Obj",
    "Retry",
    "TransientError",
    "commit_batch",
    "load_objects",
    "set_states",
]

ACTOR = "residency migrate"
T = TypeVar("T")
R = TypeVar("R")

_ACTIONS = cast(Table, MigrationAction.__table__)
_VERSIONS = cast(Table, ObjectVersion.__table__)
_SEGMENTS = cast(Table, Segment.__table__)
_PLACEMENTS = cast(Table, Placement.__table__)

_SET_STATE = (
    update(_ACTIONS)
    .where(_ACTIONS.c.id == bindparam("action_id"))
    .values(
        state=bindparam("state"),
        error=bindparam("error"),
        digests=bindparam("digests"),
        updated=bindparam("now"),
    )
)
_SET_KEY = (
    update(_SEGMENTS)
    .where(_SEGMENTS.c.id == bindparam("segment_id"))
    .values(blob_key=bindparam("new_key"))
)
_SET_SEGMENT_ETAG = (
    update(_SEGMENTS)
    .where(_SEGMENTS.c.id == bindparam("segment_id"))
    .values(etag=bindparam("new_etag"))
)
_SET_CHECKSUMS = (
    update(_VERSIONS)
    .where(_VERSIONS.c.id == bindparam("ov_id"))
    .values(
        # A copy computes only some checksums: keep what is recorded for the others.
        md5=func.coalesce(bindparam("new_md5"), _VERSIONS.c.md5),
        sha256=func.coalesce(bindparam("new_sha256"), _VERSIONS.c.sha256),
        crc32c=func.coalesce(bindparam("new_crc32c"), _VERSIONS.c.crc32c),
        crc32=func.coalesce(bindparam("new_crc32"), _VERSIONS.c.crc32),
        etag=bindparam("new_etag"),
    )
)
_BUCKETS = cast(Table, Bucket.__table__)
_LOAD_VERSIONS = (
    select(
        _VERSIONS.c.id,
        _VERSIONS.c.bucket_id,
        _VERSIONS.c.version_id,
        _VERSIONS.c.etag,
        _VERSIONS.c.md5,
        _VERSIONS.c.sha256,
        _VERSIONS.c.crc32c,
        _VERSIONS.c.key,
        _BUCKETS.c.name,
    )
    .join(_BUCKETS, _BUCKETS.c.id == _VERSIONS.c.bucket_id)
    .where(_VERSIONS.c.version_id.in_(bindparam("vids", expanding=True)))
    .where(_VERSIONS.c.is_latest == true())
)
_LOAD_SEGMENTS = (
    select(
        _SEGMENTS.c.object_version_id,
        _SEGMENTS.c.id,
        _SEGMENTS.c.blob_key,
        _SEGMENTS.c.size,
        _SEGMENTS.c.etag,
    )
    .where(_SEGMENTS.c.object_version_id.in_(bindparam("ids", expanding=True)))
    .order_by(_SEGMENTS.c.object_version_id, _SEGMENTS.c.seq)
)
_LOAD_PLACEMENTS = select(
    _PLACEMENTS.c.object_version_id, _PLACEMENTS.c.location, _PLACEMENTS.c.state
).where(_PLACEMENTS.c.object_version_id.in_(bindparam("ids", expanding=True)))
_DROP_PLACEMENT = delete(_PLACEMENTS).where(
    _PLACEMENTS.c.object_version_id == bindparam("ov_id"),
    _PLACEMENTS.c.location == bindparam("loc"),
)


class ActionError(Exception):
    """An action cannot succeed by retrying (bad plan, foreign blob, corrupt source)."""


class TransientError(Exception):
    """Worth retrying: verification failed, intents expired, database busy."""


class Retry(TransientError):
    """The step committed its bookkeeping but the object must be copied again."""


class Batcher(Generic[T, R]):
    """Runs `flush` over whatever was submitted while the previous flush ran (at most
    `max_items` at once); each submitter gets its own result or exception back.

    With `linger`, a batch that is not full waits up to that many seconds for more items:
    a flush has a fixed cost (a transaction, a dozen statements), and when items trickle in
    (a slow source) flushing each handful would spend most of the time on that cost.
    """

    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        max_items: int = 200,
        *,
        linger: float = 0.0,
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        if linger < 0:
            raise ValueError("linger must not be negative")
        self._flush = flush
        self._max = max_items
        self._linger = linger
        self._full = asyncio.Event()
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.items = 0

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self._max:
            self._full.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await future

    def stop_lingering(self) -> None:
        """Flush without waiting from now on (no more items are coming in bulk)."""
        self._linger = 0.0
        self._full.set()

    async def _drain(self) -> None:
        while self._pending:
            # Let workers that are ready to submit do so before the batch is cut.
            await asyncio.sleep(0)
            if self._linger and len(self._pending) < self._max:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._linger)
            batch, self._pending = self._pending[: self._max], self._pending[self._max :]
            live = [(item, fut) for item, fut in batch if not fut.cancelled()]
            if not live:
                continue
            self.batches += 1
            self.items += len(live)
            try:
                results = await self._flush([item for item, _ in live])
            except BaseException as exc:  # the whole batch failed: every submitter learns why
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, fut), res in zip(live, results, strict=True):
                if fut.done():
                    continue
                if isinstance(res, BaseException):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)


# --- reading ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Blob:
    id: int
    key: str
    size: int
    etag: str


@dataclass(slots=True)
class Obj:
    """The planned version of an object as the database has it now."""

    id: int
    bucket_id: int
    version_id: str
    etag: str
    md5: str | None
    sha256: str | None
    crc32c: str | None
    segments: list[Blob] = field(default_factory=list)
    placements: dict[str, str] = field(default_factory=dict)  # location -> state


async def load_objects(
    session: AsyncSession, actions: Sequence[MigrationAction]
) -> list[Obj | None]:
    """Each action's planned version if it is still the latest, else None (changed since
    planning); three queries per few hundred actions (prebuilt: no per-call SQL building)."""
    wanted = sorted({a.version_id for a in actions})
    found: dict[str, tuple[str, str, Obj]] = {}
    for chunk in chunks(wanted):
        for ov_id, bucket_id, vid, etag, md5, sha256, crc32c, key, bucket in await session.execute(
            _LOAD_VERSIONS, {"vids": chunk}
        ):
            found[vid] = (bucket, key, Obj(ov_id, bucket_id, vid, etag, md5, sha256, crc32c))
    by_id = {obj.id: obj for _, _, obj in found.values()}
    for id_chunk in chunks(sorted(by_id)):
        for ov_id, seg_id, key, size, etag in await session.execute(
            _LOAD_SEGMENTS, {"ids": id_chunk}
        ):
            by_id[ov_id].segments.append(Blob(seg_id, key, size, etag))
        for ov_id, loc, state in await session.execute(_LOAD_PLACEMENTS, {"ids": id_chunk}):
            by_id[ov_id].placements[loc] = state
    out: list[Obj | None] = []
    for a in actions:
        hit = found.get(a.version_id)
        out.append(hit[2] if hit is not None and hit[:2] == (a.bucket, a.key) else None)
    return out


# --- writing ---------------------------------------------------------------------------


@dataclass(slots=True)
class CommitJob:
    """A verified copy to switch to (`move`) or add (`place`), sources to `release`, or an
    action to mark `skip`ped."""

    action: MigrationAction
    kind: Literal["move", "place", "release", "skip"]
    obj: Obj | None = None
    targets: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    digests: list[dict[str, Any]] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)
    why: str | None = None


@dataclass
class _Changes:
    """Everything one batch writes, gathered first and then sent as executemany."""

    garbage: dict[str, list[BlobRef]] = field(default_factory=dict)
    new_keys: list[dict[str, Any]] = field(default_factory=list)
    drop_all: list[int] = field(default_factory=list)
    drop_some: list[dict[str, Any]] = field(default_factory=list)
    placements: list[dict[str, Any]] = field(default_factory=list)
    checksums: list[dict[str, Any]] = field(default_factory=list)
    segment_etags: list[dict[str, Any]] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)
    audits: list[tuple[str, Mapping[str, Any] | None]] = field(default_factory=list)

    def trash(self, refs: list[BlobRef], reason: str) -> None:
        if refs:
            self.garbage.setdefault(reason, []).extend(refs)

    def state(
        self,
        action: MigrationAction,
        state: str,
        *,
        error: str | None = None,
        digests: list[dict[str, Any]] | None = None,
    ) -> None:
        self.states.append(
            {
                "action_id": action.id,
                "state": state,
                "error": error,
                "digests": digests,
                "now": utcnow(),
            }
        )


def set_states(session: AsyncSession, rows: list[dict[str, Any]]) -> Awaitable[Any]:
    """Journal many actions' states in one executemany (rows as `_Changes.state` makes)."""
    return session.execute(_SET_STATE, rows)


async def commit_batch(session: AsyncSession, jobs: Sequence[CommitJob]) -> list[str | Exception]:
    """Apply `jobs` in the caller's write transaction; per job its new state, or the
    exception its submitter gets (`Retry`: copy again; anything else: the action failed).

    Every job re-reads its object here, under the write lock, so what it changes is what
    it checked. The audit entries go in last, one per placement change, right before commit.
    """
    if session.get_bind().dialect.name == "postgresql":
        for job in sorted(jobs, key=lambda j: (j.obj.bucket_id if j.obj else 0, j.action.key)):
            if job.obj is not None:
                await lock_key(session, job.obj.bucket_id, job.action.key)
    current = await load_objects(session, [j.action for j in jobs])
    copied = [
        (d, k) for j in jobs if j.kind in ("move", "place") for d in j.targets for k in j.keys
    ]
    missing = await remove_intents(session, copied) if copied else set()
    ch = _Changes()
    results: list[str | Exception] = []
    for job, obj in zip(jobs, current, strict=True):
        results.append(_plan_job(ch, job, obj, missing))
    for reason, refs in ch.garbage.items():
        await add_garbage(session, refs, reason=reason)
    if ch.new_keys:
        await session.execute(_SET_KEY, ch.new_keys)
    for chunk in chunks(ch.drop_all):
        await session.execute(delete(_PLACEMENTS).where(_PLACEMENTS.c.object_version_id.in_(chunk)))
    if ch.drop_some:
        await session.execute(_DROP_PLACEMENT, ch.drop_some)
    if ch.placements:
        await session.execute(insert(_PLACEMENTS), ch.placements)
    if ch.checksums:
        await session.execute(_SET_CHECKSUMS, ch.checksums)
    if ch.segment_etags:
        await session.execute(_SET_SEGMENT_ETAG, ch.segment_etags)
    if ch.states:
        await set_states(session, ch.states)
    await append_many(session, MIGRATION_STEP, ch.audits, actor=ACTOR)
    return results


def _plan_job(
    ch: _Changes, job: CommitJob, obj: Obj | None, missing: set[BlobRef]
) -> str | Exception:
    a = job.action
    target = f"{a.bucket}/{a.key}"
    refs = [(d, k) for d in job.targets for k in job.keys]
    if job.kind == "skip":
        ch.state(a, "skipped", error=job.why)
        return "skipped"
    if obj is None:
        if job.kind != "release":
            ch.trash([r for r in refs if r not in missing], "migration superseded")
        ch.state(a, "skipped", error="object changed")
        return "skipped"
    if job.kind == "release":
        drops = [d for d in job.drops if d in obj.placements]
        if drops and not obj.placements.keys() - set(drops):
            return ActionError("refusing to drop the last placement of the object")
        if drops:
            ch.drop_some.extend({"ov_id": obj.id, "loc": d} for d in drops)
            ch.trash([(d, seg.key) for d in drops for seg in obj.segments], "migrated")
            ch.audits.append(
                (
                    target,
                    {
                        "step": "source_released",
                        "version": a.version_id,
                        "locations": drops,
                        "kept": sorted(obj.placements.keys() - set(drops)),
                    },
                )
            )
        ch.state(a, "done", digests=a.digests)
        return "done"
    if any(r in missing for r in refs):
        # The sweep expired some intents and may be deleting those blobs: hand this
        # attempt's blobs to it and copy again.
        ch.trash([r for r in refs if r not in missing], "migration retried")
        ch.state(a, "pending")
        return Retry("write intents expired before verification; copying again")
    now = utcnow()
    sha = [x["sha256"] for x in job.digests]
    if job.kind == "move":
        stays = [loc for loc in obj.placements if loc not in a.delete_from]
        if stays:
            ch.trash(refs, "migration retried")
            ch.state(a, "pending")
            return Retry(f"{', '.join(stays)} now holds the object; copying again")
        ch.trash([(loc, seg.key) for loc in obj.placements for seg in obj.segments], "migrated")
        ch.new_keys.extend(
            {"segment_id": seg.id, "new_key": key}
            for seg, key in zip(obj.segments, job.keys, strict=True)
        )
        ch.drop_all.append(obj.id)
        fresh = job.targets
        state = "done"
        audits = [
            {
                "step": "moved",
                "version": a.version_id,
                "from": sorted(obj.placements),
                "to": job.targets,
                "size": a.size,
                "sha256": sha,
            }
        ]
    else:
        fresh = [d for d in job.targets if d not in obj.placements]
        state = "verified"
        audits = [
            {
                "step": "copy_verified",
                "version": a.version_id,
                "from": a.src,
                "to": d,
                "size": a.size,
                "sha256": sha,
            }
            for d in fresh
        ]
    ch.placements.extend(
        {
            "object_version_id": obj.id,
            "location": d,
            "state": "verified",
            "created": now,
            "verified_at": now,
        }
        for d in fresh
    )
    _fill_checksums(ch, obj, job.digests)
    ch.audits.extend((target, d) for d in audits)
    ch.state(a, state, digests=job.digests)
    return state


def _fill_checksums(ch: _Changes, obj: Obj, digests: list[dict[str, Any]]) -> None:
    """An adopted object learns its ETag and checksums from its first verified copy."""
    ch.segment_etags.extend(
        {"segment_id": seg.id, "new_etag": d["md5"]}
        for seg, d in zip(obj.segments, digests, strict=True)
        if not seg.etag and d.get("md5")
    )
    if len(digests) == 1 and obj.sha256 is None:
        d = digests[0]
        ch.checksums.append(
            {
                "ov_id": obj.id,
                "new_md5": d.get("md5"),
                "new_sha256": d.get("sha256"),
                "new_crc32c": d.get("crc32c"),
                "new_crc32": d.get("crc32"),
                "new_etag": obj.etag or d.get("md5") or "",
            }
        )
