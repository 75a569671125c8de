"""Blob bookkeeping: write intents, garbage, and which blobs are still referenced where.

A blob is identified by (location, blob_key). It is *live* at a location when a segment of a
version placed there, or a part of an upload targeting it, names the key. Everything the sweep
deletes must be garbage (or a stale intent) and not live: that double check is what makes a
bookkeeping mistake cost disk space instead of data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from residency.meta.errors import BlobBusy
from residency.meta.models import (
    BlobIntent,
    Bucket,
    GarbageBlob,
    MultipartPart,
    MultipartUpload,
    ObjectVersion,
    Placement,
    Segment,
    Tenant,
)
from residency.meta.repo.chunks import chunks
from residency.meta.repo.inventory import noncurrent_version
from residency.meta.types import utcnow

BlobRef = tuple[str, str]
"""(location name, blob key)"""

MUST_LEAVE = "migrated"
"""The garbage reason of bytes a migration released because the policy wants them gone from
that location: not orphans but a duty. They are erased as soon as the object's new copies are
durable (no grace period), each erasure confirmed and audited, and until then the report
counts them as out of compliance."""

# Core statements on the tables (every PUT runs these): ORM-enabled ones cost several times
# more Python for the same SQL.
_GARBAGE = cast(Table, GarbageBlob.__table__)
_INTENTS = cast(Table, BlobIntent.__table__)
_INSERT_GARBAGE = insert(_GARBAGE)
_INSERT_INTENTS = insert(_INTENTS)
_REMOVE_INTENTS = (
    delete(_INTENTS)
    .where(
        _INTENTS.c.location == bindparam("location"),
        _INTENTS.c.blob_key.in_(bindparam("keys", expanding=True)),
    )
    .returning(_INTENTS.c.location, _INTENTS.c.blob_key)
)


def _by_location(refs: Iterable[BlobRef]) -> Iterable[tuple[str, Sequence[str]]]:
    """(location, chunk of keys): `location = ? AND blob_key IN (...)` uses the indexes,
    where a row-value `(location, blob_key) IN (...)` makes SQLite scan the table."""
    grouped: dict[str, list[str]] = {}
    for loc, key in refs:
        grouped.setdefault(loc, []).append(key)
    for loc, keys in sorted(grouped.items()):
        for chunk in chunks(sorted(set(keys))):
            yield loc, chunk


async def add_garbage(
    session: AsyncSession,
    refs: Iterable[BlobRef],
    *,
    reason: str,
    created: datetime | None = None,
    claimed: datetime | None = None,
) -> int:
    """Record blobs nothing needs any more; `claimed` when the caller deletes them itself."""
    when = created or utcnow()
    rows = [
        {"location": loc, "blob_key": key, "reason": reason, "created": when, "claimed": claimed}
        for loc, key in dict.fromkeys(refs)
    ]
    for chunk in chunks(rows):
        await session.execute(_INSERT_GARBAGE, list(chunk))
    return len(rows)


async def add_intents(
    session: AsyncSession, refs: Iterable[BlobRef], *, fresh: bool = False
) -> int:
    """Record blobs about to be written (commit before writing them).

    A fresh key (`fresh=True`: every key comes from `fresh_blob_key()`, random and never used
    before) has no history, so no garbage row can name it and none is looked for. A key
    written again at a location where an older copy is garbage (a migration moving a version
    back) takes that copy over: its garbage rows go, so the sweep cannot delete the new bytes.
    If the sweep has already claimed one, the bytes may be deleted at any moment: refuse with
    `BlobBusy` (retry after the sweep).
    """
    refs = list(dict.fromkeys(refs))
    for location, keys in [] if fresh else _by_location(refs):
        pending = (
            await session.execute(
                select(_GARBAGE.c.id, _GARBAGE.c.location, _GARBAGE.c.blob_key, _GARBAGE.c.claimed)
                .where(_GARBAGE.c.location == location, _GARBAGE.c.blob_key.in_(keys))
                .with_for_update()
            )
        ).all()
        busy = [row for row in pending if row.claimed is not None]
        if busy:
            raise BlobBusy(
                f"blob {busy[0].blob_key} at {busy[0].location} is being deleted by the "
                "orphan sweep; retry in a moment"
            )
        if pending:
            await session.execute(
                delete(_GARBAGE).where(_GARBAGE.c.id.in_([row.id for row in pending]))
            )
    now = utcnow()
    rows = [{"location": loc, "blob_key": key, "created": now} for loc, key in refs]
    for chunk in chunks(rows):
        await session.execute(_INSERT_INTENTS, list(chunk))
    return len(rows)


async def remove_intents(session: AsyncSession, refs: Iterable[BlobRef]) -> set[BlobRef]:
    """Delete the intents for `refs`; return the refs that had none (never registered/swept)."""
    missing = set(refs)
    for location, keys in _by_location(list(missing)):
        found = await session.execute(_REMOVE_INTENTS, {"location": location, "keys": list(keys)})
        missing.difference_update((loc, key) for loc, key in found)
    return missing


async def live_refs(session: AsyncSession, refs: Iterable[BlobRef]) -> set[BlobRef]:
    """The subset of `refs` that a version placement or an upload's part still needs."""
    refs = set(refs)
    keys = sorted({key for _, key in refs})
    live: set[BlobRef] = set()
    for key_chunk in chunks(keys):
        placed = await session.execute(
            select(Placement.location, Segment.blob_key)
            .join(Placement, Placement.object_version_id == Segment.object_version_id)
            .where(Segment.blob_key.in_(key_chunk))
        )
        live.update((loc, key) for loc, key in placed)
        parts = await session.execute(
            select(MultipartUpload.locations, MultipartPart.blob_key)
            .join(MultipartUpload, MultipartUpload.id == MultipartPart.multipart_upload_id)
            .where(MultipartPart.blob_key.in_(key_chunk))
        )
        for locations, key in parts:
            live.update((loc, key) for loc in locations)
    return live & refs


# --- erasures (MUST_LEAVE garbage) -------------------------------------------------------------

_FORGET_ERASED = (
    delete(_GARBAGE)
    .where(
        _GARBAGE.c.location == bindparam("location"),
        _GARBAGE.c.blob_key.in_(bindparam("keys", expanding=True)),
        _GARBAGE.c.reason == MUST_LEAVE,
    )
    .returning(_GARBAGE.c.location, _GARBAGE.c.blob_key)
)


async def pending_erasures(
    session: AsyncSession, *, after: int = 0, limit: int = 500
) -> list[tuple[int, str, str]]:
    """(id, location, blob key) of bytes that must leave their location and are still
    recorded there, claimed or not (a claim left by a killed run is stale), in id order."""
    rows = await session.execute(
        select(_GARBAGE.c.id, _GARBAGE.c.location, _GARBAGE.c.blob_key)
        .where(_GARBAGE.c.reason == MUST_LEAVE, _GARBAGE.c.id > after)
        .order_by(_GARBAGE.c.id)
        .limit(limit)
    )
    return [(int(i), str(loc), str(key)) for i, loc, key in rows]


async def claim_garbage(session: AsyncSession, ids: Sequence[int]) -> None:
    """Mark rows as being deleted (commit before deleting the bytes)."""
    for chunk in chunks(ids):
        await session.execute(
            _GARBAGE.update().where(_GARBAGE.c.id.in_(list(chunk))).values(claimed=utcnow())
        )


async def forget_garbage(session: AsyncSession, ids: Sequence[int]) -> None:
    """Drop garbage rows (their blob is gone, or something references it after all)."""
    for chunk in chunks(ids):
        await session.execute(delete(_GARBAGE).where(_GARBAGE.c.id.in_(list(chunk))))


async def release_garbage(session: AsyncSession, ids: Sequence[int]) -> None:
    """Give up a claim: the blob could not be deleted now; the row waits for the next try."""
    for chunk in chunks(ids):
        await session.execute(
            _GARBAGE.update().where(_GARBAGE.c.id.in_(list(chunk))).values(claimed=None)
        )


async def release_erasures(session: AsyncSession, refs: Iterable[BlobRef]) -> None:
    """Give up the claims on these must-leave blobs (their deletion failed for now)."""
    for location, keys in _by_location(refs):
        await session.execute(
            _GARBAGE.update()
            .where(
                _GARBAGE.c.location == location,
                _GARBAGE.c.blob_key.in_(list(keys)),
                _GARBAGE.c.reason == MUST_LEAVE,
            )
            .values(claimed=None)
        )


async def forget_erased(session: AsyncSession, refs: Iterable[BlobRef]) -> set[BlobRef]:
    """Drop the must-leave rows of blobs confirmed gone; the refs that had one (so that an
    erasure done twice, by two processes, is recorded once)."""
    found: set[BlobRef] = set()
    for location, keys in _by_location(refs):
        rows = await session.execute(_FORGET_ERASED, {"location": location, "keys": list(keys)})
        found.update((loc, key) for loc, key in rows)
    return found


# --- what the metadata says is at a location (the drift scan) ----------------------------------


@dataclass(frozen=True, slots=True)
class PlacedBlob:
    """A segment blob that a placement says is at a location, with its object version's
    classification; any version with bytes, current or noncurrent (`noncurrent`: its S3
    version id, None for the current one)."""

    blob_key: str
    segment_id: int
    size: int
    bucket: str
    key: str
    version_id: str
    tenant: str
    data_class: str
    subject: str | None
    subject_count: int | None
    bucket_policy: str | None
    noncurrent: str | None = None


async def placed_blobs(
    session: AsyncSession, location: str, *, after: tuple[str, int] | None, limit: int
) -> list[PlacedBlob]:
    """The next `limit` blobs placed at `location`, ordered by (blob key, segment id) after
    `after`: byte order of the keys (binary collation), the order a sorted listing has."""
    key_col: Any = Segment.blob_key
    if session.get_bind().dialect.name == "postgresql":
        key_col = Segment.blob_key.collate("C")
    query = (
        select(
            Segment.blob_key,
            Segment.id,
            Segment.size,
            Bucket.name,
            ObjectVersion.key,
            ObjectVersion.version_id,
            Tenant.name,
            ObjectVersion.data_class,
            ObjectVersion.subject,
            ObjectVersion.subject_count,
            Bucket.policy,
            noncurrent_version(),
        )
        .join(Placement, Placement.object_version_id == Segment.object_version_id)
        .join(ObjectVersion, ObjectVersion.id == Segment.object_version_id)
        .join(Bucket, Bucket.id == ObjectVersion.bucket_id)
        .join(Tenant, Tenant.id == Bucket.tenant_id)
        .where(Placement.location == location)
        .order_by(key_col, Segment.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(
            or_(key_col > after[0], and_(Segment.blob_key == after[0], Segment.id > after[1]))
        )
    return [PlacedBlob(*row) for row in await session.execute(query)]


@dataclass(frozen=True, slots=True)
class KnownBlob:
    """What else the metadata knows of a blob at a location: garbage awaiting deletion, a write
    in flight (intent) or a part of an open upload."""

    kind: str
    """'garbage', 'intent' or 'part'"""
    reason: str | None = None
    """the garbage reason"""
    upload: tuple[str, str | None, int | None, str, str, str | None, str] | None = None
    """for a part: (class, subject, count, tenant, bucket, bucket policy, upload id)"""


async def known_blobs(
    session: AsyncSession, location: str, keys: Sequence[str]
) -> dict[str, list[KnownBlob]]:
    """For each of `keys` at `location` that the metadata knows other than as a placement."""
    found: dict[str, list[KnownBlob]] = {}
    for chunk in chunks(sorted(set(keys))):
        keys_in = list(chunk)
        for key, reason in await session.execute(
            select(_GARBAGE.c.blob_key, _GARBAGE.c.reason).where(
                _GARBAGE.c.location == location, _GARBAGE.c.blob_key.in_(keys_in)
            )
        ):
            found.setdefault(key, []).append(KnownBlob("garbage", reason=reason))
        for (key,) in await session.execute(
            select(_INTENTS.c.blob_key).where(
                _INTENTS.c.location == location, _INTENTS.c.blob_key.in_(keys_in)
            )
        ):
            found.setdefault(key, []).append(KnownBlob("intent"))
        for row in await session.execute(
            select(
                MultipartPart.blob_key,
                MultipartUpload.locations,
                MultipartUpload.data_class,
                MultipartUpload.subject,
                MultipartUpload.subject_count,
                Tenant.name,
                Bucket.name,
                Bucket.policy,
                MultipartUpload.upload_id,
            )
            .join(MultipartUpload, MultipartUpload.id == MultipartPart.multipart_upload_id)
            .join(Bucket, Bucket.id == MultipartUpload.bucket_id)
            .join(Tenant, Tenant.id == Bucket.tenant_id)
            .where(MultipartPart.blob_key.in_(keys_in))
        ):
            key, locations, *upload = row
            if location in (locations or []):
                found.setdefault(key, []).append(KnownBlob("part", upload=tuple(upload)))  # type: ignore[arg-type]
    return found


# --- the orphan sweep --------------------------------------------------------------------------


async def due_garbage(
    session: AsyncSession, *, after: int, cutoff: datetime, limit: int
) -> list[GarbageBlob]:
    """The next orphans older than `cutoff` (not bytes that must leave: those are erased, not
    swept), locked for this transaction; rows another sweep holds are skipped."""
    rows = await session.scalars(
        select(GarbageBlob)
        .where(
            GarbageBlob.id > after,
            GarbageBlob.created < cutoff,
            GarbageBlob.reason != MUST_LEAVE,
        )
        .order_by(GarbageBlob.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(rows.all())


async def expire_intents(session: AsyncSession, *, cutoff: datetime, limit: int) -> int:
    """Move the oldest intents older than `cutoff` to garbage, keeping their age (they are due
    already); how many moved."""
    stale = (
        await session.scalars(
            select(BlobIntent)
            .where(BlobIntent.created < cutoff)
            .order_by(BlobIntent.id)
            .limit(limit)
        )
    ).all()
    if stale:
        await session.execute(
            _INSERT_GARBAGE,
            [
                {
                    "location": i.location,
                    "blob_key": i.blob_key,
                    "reason": "abandoned write",
                    "created": i.created,
                    "claimed": None,
                }
                for i in stale
            ],
        )
        await session.execute(delete(_INTENTS).where(_INTENTS.c.id.in_([i.id for i in stale])))
    return len(stale)
