"""The write path (DESIGN.md invariant 2): nothing acknowledged is lost, nothing torn is seen.

1. `fresh_blob_key()` for every blob, then `register_intents(...)` in its own committed
   transaction *before* the first byte is written;
2. write the bytes (replicas in parallel) under those keys;
3. `commit_version(...)` in one transaction: insert the version, its segments and placements,
   retire the previous latest version (its blobs become garbage) and clear the intents.

A crash before 3 leaves intents whose blobs the sweep deletes after a grace period; a crash
after 3 leaves garbage rows the sweep deletes. Readers see the old version until 3 commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from residency.meta.errors import IntentMissing, InvalidArgument
from residency.meta.ids import fresh_blob_key, new_version_id
from residency.meta.models import Bucket, ObjectVersion, Placement, Segment
from residency.meta.repo.blobs import BlobRef, add_garbage, add_intents, remove_intents
from residency.meta.repo.objects import find_latest
from residency.meta.specs import Checksums, SegmentSpec, VersionAttrs, check_object_key
from residency.meta.types import utcnow

__all__ = [
    "Commit",
    "abandon_intents",
    "commit_version",
    "delete_object",
    "fresh_blob_key",
    "install_version",
    "lock_key",
    "register_intents",
    "retire_version",
]


@dataclass(frozen=True, slots=True)
class Commit:
    version: ObjectVersion
    replaced: ObjectVersion | None


async def register_intents(session: AsyncSession, refs: Iterable[BlobRef]) -> None:
    """Record blobs about to be written; commit this transaction before writing them."""
    await add_intents(session, refs)


async def abandon_intents(session: AsyncSession, refs: Iterable[BlobRef]) -> None:
    """A write failed: turn its intents into garbage now instead of waiting for them to age."""
    refs = list(refs)
    await remove_intents(session, refs)
    await add_garbage(session, refs, reason="write failed")


async def lock_key(session: AsyncSession, bucket_id: int, key: str) -> None:
    """Serialise writers of one key until the transaction ends.

    SQLite write transactions are already serial (`BEGIN IMMEDIATE`); PostgreSQL gets a
    transaction-scoped advisory lock so two PUTs of one key cannot both replace the same
    latest version (last committer wins, as in S3).
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
            {"k": f"{bucket_id}/{key}"},
        )


async def retire_version(session: AsyncSession, version: ObjectVersion, *, reason: str) -> int:
    """Remove a version (versioning is off); every blob of every placement becomes garbage.

    Three statements: the (location, blob) pairs, the garbage rows, and the version itself
    (its segments and placements go with it: ON DELETE CASCADE).
    """
    refs = (
        await session.execute(
            select(Placement.location, Segment.blob_key)
            .join(Segment, Segment.object_version_id == Placement.object_version_id)
            .where(Placement.object_version_id == version.id)
        )
    ).all()
    count = await add_garbage(session, [(loc, key) for loc, key in refs], reason=reason)
    await session.execute(delete(ObjectVersion).where(ObjectVersion.id == version.id))
    return count


async def install_version(
    session: AsyncSession,
    bucket: Bucket,
    key: str,
    attrs: VersionAttrs,
    *,
    size: int,
    etag: str,
    checksums: Checksums,
    segments: Sequence[SegmentSpec],
    locations: Sequence[str],
    part_count: int | None = None,
    now: datetime | None = None,
) -> Commit:
    """Make a version whose blobs are durable the latest one (no intent bookkeeping)."""
    check_object_key(key)
    if not segments:
        raise InvalidArgument("a version needs at least one segment")
    if not locations or len(set(locations)) != len(locations):
        raise InvalidArgument(f"a version needs distinct locations, got {list(locations)}")
    if size < 0 or any(s.size < 0 for s in segments):
        raise InvalidArgument("sizes must not be negative")
    if sum(s.size for s in segments) != size:
        raise InvalidArgument(
            f"segment sizes add up to {sum(s.size for s in segments)}, not the object's {size}"
        )
    now = now or utcnow()
    await lock_key(session, bucket.id, key)
    replaced = await find_latest(session, bucket, key)
    if replaced is not None:
        await retire_version(session, replaced, reason="replaced")
        await session.flush()
    version = ObjectVersion(
        bucket_id=bucket.id,
        key=key,
        version_id=new_version_id(),
        is_latest=True,
        is_delete_marker=False,
        size=size,
        etag=etag,
        md5=checksums.md5,
        sha256=checksums.sha256,
        crc32c=checksums.crc32c,
        crc32=checksums.crc32,
        content_type=attrs.content_type,
        user_metadata=dict(attrs.user_metadata),
        tags=dict(attrs.tags),
        data_class=attrs.data_class,
        subject=attrs.subject,
        subject_count=attrs.subject_count,
        rule=attrs.rule,
        created=now,
        part_count=part_count,
    )
    session.add(version)
    await session.flush()
    # Bulk INSERTs, not unit-of-work objects: this runs on every PUT.
    await session.execute(
        insert(Segment),
        [
            {
                "object_version_id": version.id,
                "seq": i,
                "blob_key": s.blob_key,
                "size": s.size,
                "etag": s.etag,
            }
            for i, s in enumerate(segments)
        ],
    )
    await session.execute(
        insert(Placement),
        [
            {"object_version_id": version.id, "location": loc, "state": "ready", "created": now}
            for loc in locations
        ],
    )
    return Commit(version=version, replaced=replaced)


async def commit_version(
    session: AsyncSession,
    bucket: Bucket,
    key: str,
    attrs: VersionAttrs,
    *,
    blob_key: str,
    size: int,
    etag: str,
    checksums: Checksums,
    locations: Sequence[str],
    now: datetime | None = None,
) -> Commit:
    """Make a simple object (one blob at every location) visible, atomically.

    Raises `IntentMissing` (and changes nothing) if an intent for the blob is gone: the
    sweep may already have deleted the bytes, so the version must not become visible.
    """
    missing = await remove_intents(session, [(loc, blob_key) for loc in locations])
    if missing:
        where = ", ".join(sorted(loc for loc, _ in missing))
        raise IntentMissing(
            f"no write intent for blob {blob_key} at {where}; "
            "it was never registered or the sweep reclaimed it"
        )
    return await install_version(
        session,
        bucket,
        key,
        attrs,
        size=size,
        etag=etag,
        checksums=checksums,
        segments=[SegmentSpec(blob_key=blob_key, size=size, etag=etag)],
        locations=locations,
        now=now,
    )


async def delete_object(session: AsyncSession, bucket: Bucket, key: str) -> ObjectVersion | None:
    """Delete the latest version of `key`; None if there was none (S3 answers 204 anyway)."""
    await lock_key(session, bucket.id, key)
    version = await find_latest(session, bucket, key)
    if version is not None:
        await retire_version(session, version, reason="deleted")
    return version
