"""The orphan sweep: delete blobs nothing references any more.

Two sources of orphans (DESIGN.md invariant 2): garbage rows (replaced, deleted, aborted,
migrated-away blobs) and write intents that never got committed (a crash or a failed write).
Both wait out a grace period first, so a GET still streaming a just-replaced version and a
slow upload still writing its blob are left alone.

Before deleting, every candidate is checked against the live references (segments of placed
versions, parts of open uploads) and *claimed* in a committed transaction; a live blob only
loses its garbage row. A writer registering an intent for the same location and key (a
migration copying a version back) removes unclaimed rows and is refused while a claim stands,
so the sweep never deletes bytes someone is writing again. A blob that cannot be deleted now
(location down or not configured here) keeps its row, unclaimed, for the next sweep.

The grace period is for orphans only. Bytes a migration released because the policy wants
them gone (`MUST_LEAVE`) are no orphans: the engine erases them at once, and whatever it could
not erase the sweep erases first, whatever their age, each deletion confirmed and audited
(`migrate.erase.erase_pending`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from residency.meta import Database
from residency.meta.models import GarbageBlob
from residency.meta.repo.blobs import (
    claim_garbage,
    due_garbage,
    expire_intents,
    forget_garbage,
    live_refs,
    release_garbage,
)
from residency.meta.types import utcnow
from residency.migrate.erase import EraseFailure, erase_pending
from residency.storage import Location, StorageError

__all__ = ["SweepResult", "sweep"]

log = logging.getLogger(__name__)

DEFAULT_GRACE = timedelta(hours=1)
ACTOR = "residency sweep"


@dataclass(slots=True)
class SweepResult:
    intents_expired: int = 0
    """stale write intents turned into garbage"""
    deleted: int = 0
    """blobs deleted (or already absent) and their garbage rows removed"""
    still_live: int = 0
    """garbage rows dropped because something still references the blob"""
    skipped: int = 0
    """garbage at locations not configured in this process; kept for later"""
    failed: int = 0
    """deletes the storage refused; kept for the next sweep"""
    erased: int = 0
    """blobs that had to leave their location, erased (confirmed gone, audited)"""
    erase_failures: list[EraseFailure] = field(default_factory=list)
    """such blobs that could not be erased; still recorded, still out of compliance"""


async def sweep(
    db: Database,
    locations: Mapping[str, Location],
    *,
    grace: timedelta = DEFAULT_GRACE,
    batch_size: int = 500,
    concurrency: int = 16,
    now: datetime | None = None,
) -> SweepResult:
    """Reclaim orphaned blobs older than `grace`; safe to run while the gateway serves."""
    if grace < timedelta(0):
        raise ValueError("grace must not be negative")
    cutoff = (now or utcnow()) - grace
    result = SweepResult()
    erased = await erase_pending(db, locations, actor=ACTOR, concurrency=concurrency)
    result.erased = erased.erased
    result.erase_failures = erased.failures
    while True:
        async with db.session() as session:
            expired = await expire_intents(session, cutoff=cutoff, limit=batch_size)
        result.intents_expired += expired
        if expired < batch_size:
            break
    limiter = asyncio.Semaphore(concurrency)
    after = 0
    while True:
        async with db.session() as session:
            claimed, after = await _claim(session, locations, cutoff, after, batch_size, result)
        if after == 0:
            break
        outcomes = await asyncio.gather(
            *(_delete_blob(locations[r.location], r, limiter) for r in claimed)
        )
        deleted = [r.id for r, ok in zip(claimed, outcomes, strict=True) if ok]
        released = [r.id for r, ok in zip(claimed, outcomes, strict=True) if not ok]
        result.deleted += len(deleted)
        result.failed += len(released)
        if deleted or released:
            async with db.session() as session:
                await forget_garbage(session, deleted)
                await release_garbage(session, released)
    return result


async def _claim(
    session: AsyncSession,
    locations: Mapping[str, Location],
    cutoff: datetime,
    after: int,
    limit: int,
    result: SweepResult,
) -> tuple[list[GarbageBlob], int]:
    """Claim the next batch of due garbage (committed before any byte is deleted).

    Rows still referenced lose their row; rows at locations this process cannot reach stay.
    Returns the claimed rows and the id to continue after (0 when there is nothing left).
    Writers that lock a row first (`add_intents`) make us skip it; ones that come later see
    the claim and back off, so a key being written again is never deleted under the writer.
    """
    rows = await due_garbage(session, after=after, cutoff=cutoff, limit=limit)
    if not rows:
        return [], 0
    live = await live_refs(session, [(r.location, r.blob_key) for r in rows])
    still_live = [r.id for r in rows if (r.location, r.blob_key) in live]
    claimed = [r for r in rows if (r.location, r.blob_key) not in live and r.location in locations]
    result.still_live += len(still_live)
    result.skipped += len(rows) - len(still_live) - len(claimed)
    await forget_garbage(session, still_live)
    await claim_garbage(session, [r.id for r in claimed])
    return claimed, rows[-1].id


async def _delete_blob(location: Location, row: GarbageBlob, limiter: asyncio.Semaphore) -> bool:
    async with limiter:
        try:
            await location.delete(row.blob_key)
        except StorageError as exc:
            log.warning("sweep: could not delete %s at %s: %s", row.blob_key, row.location, exc)
            return False
    return True
