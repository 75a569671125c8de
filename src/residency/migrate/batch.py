"""Group commit for the migration engine: many objects' metadata steps in one transaction.

Per object the engine needs a read (the version, its segments and placements), one write
before copying (the write intents) and one after verifying (placements, keys, garbage, journal
state, audit entry). Done one object at a time that is a few dozen statements and three
commits per object, which caps a run at a few dozen small objects per second. Here workers
`submit` their step to a `Batcher` and wait; while one batch's transaction runs, the next
batch gathers, so batches grow with the load and an idle engine pays no added latency.

meta's tables are written through `meta.repo.bulk` (Core `executemany`, the batch
counterparts of `meta.writes`' one-object functions); the journal's own statements are here.
The audit appends come last before the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar, cast

from sqlalchemy import Table, bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession

from residency.audit import MIGRATION_STEP, append_many
from residency.meta.repo import bulk
from residency.meta.repo.blobs import MUST_LEAVE, BlobRef, add_garbage, live_refs, remove_intents
from residency.meta.types import utcnow
from residency.meta.writes import lock_key
from residency.migrate.models import MigrationAction

__all__ = [
    "ACTOR",
    "ActionError",
    "Batcher",
    "Blob",
    "CommitJob",
    "Erasure",
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
    """The planned version of an object (current or noncurrent) as the database has it now,
    with its stored classification (what a copy is re-decided on, never the plan's word)."""

    id: int
    bucket_id: int
    version_id: str
    etag: str
    md5: str | None
    sha256: str | None
    crc32c: str | None
    tenant: str = ""
    data_class: str = ""
    subject: str | None = None
    subject_count: int | None = None
    bucket_policy: str | None = None
    segments: list[Blob] = field(default_factory=list)
    placements: dict[str, str] = field(default_factory=dict)  # location -> state


async def load_objects(
    session: AsyncSession, actions: Sequence[MigrationAction]
) -> list[Obj | None]:
    """Each action's planned version while it still holds bytes, current or noncurrent (a
    newer version of the key changes nothing: residency applies to every version), else None
    (the version was deleted since planning); three queries per few hundred actions
    (prebuilt: no per-call SQL building)."""
    found = await bulk.load_versions_with_bytes(session, (a.version_id for a in actions))
    out: list[Obj | None] = []
    for a in actions:
        v = found.get(a.version_id)
        if v is None or (v.bucket, v.key) != (a.bucket, a.key):
            out.append(None)
            continue
        obj = Obj(v.id, v.bucket_id, v.version_id, v.etag, v.md5, v.sha256, v.crc32c)
        obj.tenant, obj.data_class = v.tenant, v.data_class
        obj.subject, obj.subject_count = v.subject, v.subject_count
        obj.bucket_policy = v.bucket_policy
        obj.segments = [Blob(*seg) for seg in v.segments]
        obj.placements = v.placements
        out.append(obj)
    return out


# --- writing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Erasure:
    """Bytes an object must no longer have at `location`: the blob to delete, and the object
    (`target`, bucket/key; `version`, which of its versions) they belonged to, for the audit
    entry of their erasure."""

    location: str
    blob_key: str
    size: int
    target: str
    version: str | None = None


@dataclass(slots=True)
class CommitJob:
    """A verified copy to switch to (`move`) or add (`place`), sources to `release`, or an
    action to mark `skip`ped. After the commit, `erase` holds the blobs its object had to
    leave (released placements nothing else references): the engine erases them next."""

    action: MigrationAction
    kind: Literal["move", "place", "release", "skip"]
    obj: Obj | None = None
    targets: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    digests: list[dict[str, Any]] = field(default_factory=list)
    drops: list[str] = field(default_factory=list)
    why: str | None = None
    erase: list[Erasure] = field(default_factory=list)


@dataclass
class _Changes:
    """Everything one batch writes, gathered first and then sent as executemany."""

    garbage: dict[str, list[BlobRef]] = field(default_factory=dict)
    erase: list[tuple[CommitJob, Erasure]] = field(default_factory=list)
    new_keys: list[dict[str, Any]] = field(default_factory=list)
    drop_all: list[int] = field(default_factory=list)
    drop_some: list[tuple[int, str]] = field(default_factory=list)
    placements: list[tuple[int, str]] = field(default_factory=list)
    checksums: list[dict[str, Any]] = field(default_factory=list)
    segment_etags: list[dict[str, Any]] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)
    audits: list[tuple[str, Mapping[str, Any] | None]] = field(default_factory=list)

    def trash(self, refs: list[BlobRef], reason: str) -> None:
        if refs:
            self.garbage.setdefault(reason, []).extend(refs)

    def must_leave(self, job: CommitJob, obj: Obj, locations: Sequence[str]) -> None:
        target = f"{job.action.bucket}/{job.action.key}"
        self.erase.extend(
            (job, Erasure(loc, seg.key, seg.size, target, job.action.version_id))
            for loc in locations
            for seg in obj.segments
        )

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
    it checked. Blobs an object had to leave are recorded as garbage the engine has claimed
    (`MUST_LEAVE`, so that no sweep or writer takes them while the engine erases them) and
    handed back in each job's `erase`; a blob another object still references there is kept.
    The audit entries go in last, one per placement change, right before commit.
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
        job.erase = []
        results.append(_plan_job(ch, job, obj, missing))
    for reason, refs in ch.garbage.items():
        await add_garbage(session, refs, reason=reason)
    await bulk.set_segment_keys(session, ch.new_keys)
    await bulk.drop_all_placements(session, ch.drop_all)
    await bulk.drop_placements(session, ch.drop_some)
    await bulk.add_placements(session, ch.placements)
    await bulk.fill_checksums(session, ch.checksums)
    await bulk.fill_segment_etags(session, ch.segment_etags)
    if ch.erase:
        # After the placement changes: what is still live now belongs to another object.
        live = await live_refs(session, [(e.location, e.blob_key) for _, e in ch.erase])
        doomed = [(job, e) for job, e in ch.erase if (e.location, e.blob_key) not in live]
        await add_garbage(
            session,
            [(e.location, e.blob_key) for _, e in doomed],
            reason=MUST_LEAVE,
            claimed=utcnow(),
        )
        for job, e in doomed:
            job.erase.append(e)
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
            ch.drop_some.extend((obj.id, d) for d in drops)
            ch.must_leave(job, obj, drops)
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
    sha = [x["sha256"] for x in job.digests]
    if job.kind == "move":
        stays = [loc for loc in obj.placements if loc not in a.delete_from]
        if stays:
            ch.trash(refs, "migration retried")
            ch.state(a, "pending")
            return Retry(f"{', '.join(stays)} now holds the object; copying again")
        ch.must_leave(job, obj, sorted(obj.placements))
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
    ch.placements.extend((obj.id, d) for d in fresh)
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
