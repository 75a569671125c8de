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
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from residency.meta.errors import IntentMissing, InvalidArgument
from residency.meta.ids import fresh_blob_key, new_version_id
from residency.meta.models import NULL_VERSION, Bucket, ObjectVersion, Placement, Segment
from residency.meta.repo.blobs import BlobRef, add_garbage, add_intents, remove_intents
from residency.meta.repo.objects import detached, latest_version
from residency.meta.specs import (
    Checksums,
    ObjectChecksum,
    SegmentSpec,
    VersionAttrs,
    check_object_key,
)
from residency.meta.types import utcnow

__all__ = [
    "Commit",
    "Deletion",
    "abandon_intents",
    "commit_version",
    "delete_object",
    "delete_version",
    "fresh_blob_key",
    "install_version",
    "lock_key",
    "register_fresh_intents",
    "register_intents",
    "retire_version",
]


_VERSIONS = cast(Table, ObjectVersion.__table__)
_SEGMENTS = cast(Table, Segment.__table__)
_PLACEMENTS = cast(Table, Placement.__table__)
# Built once: per call only the parameters change (no statement building, no cache key).
_VERSION_BLOBS = (
    select(_PLACEMENTS.c.location, _SEGMENTS.c.blob_key)
    .join(_SEGMENTS, _SEGMENTS.c.object_version_id == _PLACEMENTS.c.object_version_id)
    .where(_PLACEMENTS.c.object_version_id == bindparam("id"))
)
_DELETE_VERSION = delete(_VERSIONS).where(_VERSIONS.c.id == bindparam("id"))
_INSERT_VERSION = insert(_VERSIONS)
_INSERT_SEGMENTS = insert(_SEGMENTS)
_INSERT_PLACEMENTS = insert(_PLACEMENTS)
_DEMOTE = update(_VERSIONS).where(_VERSIONS.c.id == bindparam("v_id")).values(is_latest=False)
_NULL_VERSION_ROW = select(_VERSIONS).where(
    _VERSIONS.c.bucket_id == bindparam("bucket_id"),
    _VERSIONS.c.key == bindparam("key"),
    _VERSIONS.c.is_null_version == true(),
)
_NEWEST = (
    select(func.max(_VERSIONS.c.id))
    .where(_VERSIONS.c.bucket_id == bindparam("b_id"), _VERSIONS.c.key == bindparam("b_key"))
    .scalar_subquery()
)
_PROMOTE_NEWEST = update(_VERSIONS).where(_VERSIONS.c.id == _NEWEST).values(is_latest=True)


@dataclass(frozen=True, slots=True)
class Commit:
    """The version a write made current, and the one whose bytes it removed (the version it
    replaced with versioning off, the key's `null` version with versioning suspended)."""

    version: ObjectVersion
    replaced: ObjectVersion | None


@dataclass(frozen=True, slots=True)
class Deletion:
    """What a DELETE without a version id did: the version whose bytes it removed (None when
    versioning keeps them) and the delete marker it made current (None with versioning off)."""

    removed: ObjectVersion | None
    marker: ObjectVersion | None


async def register_intents(session: AsyncSession, refs: Iterable[BlobRef]) -> None:
    """Record blobs about to be written; commit this transaction before writing them."""
    await add_intents(session, refs)


async def register_fresh_intents(session: AsyncSession, refs: Iterable[BlobRef]) -> None:
    """`register_intents` for keys just made by `fresh_blob_key()` (every PUT): random keys
    never used before cannot have garbage rows, so none are looked up."""
    await add_intents(session, refs, fresh=True)


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
    (its segments and placements go with it: ON DELETE CASCADE). Core statements on the
    tables: this runs on every overwrite and delete, and ORM-enabled ones cost several
    times more Python for the same SQL.
    """
    await session.flush()  # pending ORM changes first: Core statements do not autoflush
    refs = (await session.execute(_VERSION_BLOBS, {"id": version.id})).all()
    count = await add_garbage(session, [(loc, key) for loc, key in refs], reason=reason)
    await session.execute(_DELETE_VERSION, {"id": version.id})
    return count


async def _null_version(session: AsyncSession, bucket_id: int, key: str) -> ObjectVersion | None:
    row = (await session.execute(_NULL_VERSION_ROW, {"bucket_id": bucket_id, "key": key})).first()
    return None if row is None else detached(ObjectVersion, row._mapping)


async def _make_room(
    session: AsyncSession, bucket: Bucket, key: str, *, reason: str
) -> ObjectVersion | None:
    """Before a new current version (or delete marker) of `key`: retire what the bucket's
    versioning state says it replaces, demote the current version it keeps. Returns the
    retired version.

    - versioning off: the current version is retired (its blobs become garbage);
    - enabled: the current version stays, as a noncurrent one;
    - suspended: the key's `null` version (current or not) is retired, any other current
      version stays as a noncurrent one.
    """
    await lock_key(session, bucket.id, key)
    await session.flush()  # pending ORM changes first: Core statements do not autoflush
    current = await latest_version(session, bucket.id, key)
    if bucket.versioning is None:
        if current is not None:
            await retire_version(session, current, reason=reason)
        return current
    retired = None
    if bucket.versioning != "Enabled":
        if current is not None and current.is_null_version:
            retired = current
        else:
            retired = await _null_version(session, bucket.id, key)
        if retired is not None:
            await retire_version(session, retired, reason=reason)
    if current is not None and current is not retired:
        await session.execute(_DEMOTE, {"v_id": current.id})
    return retired


def _new_current(bucket: Bucket, key: str) -> dict[str, Any]:
    """The columns every new current version (or delete marker) of `key` starts with."""
    return {
        "bucket_id": bucket.id,
        "key": key,
        "version_id": new_version_id(),
        "is_null_version": bucket.versioning != "Enabled",
        "is_latest": True,
    }


async def _insert_version(session: AsyncSession, values: dict[str, Any]) -> int:
    inserted = cast(CursorResult[Any], await session.execute(_INSERT_VERSION, values))
    primary_key = inserted.inserted_primary_key
    if primary_key is None:  # every supported dialect reports it for a one-row INSERT
        raise RuntimeError("the database did not report the new version's id")
    return int(primary_key[0])


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
    checksum: ObjectChecksum | None = None,
    upload_id: str | None = None,
    now: datetime | None = None,
) -> Commit:
    """Make a version whose blobs are durable the latest one (no intent bookkeeping).

    `checksum` is the one S3 shows for it; `upload_id` the multipart upload that made it.
    """
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
    replaced = await _make_room(session, bucket, key, reason="replaced")
    values = {
        **_new_current(bucket, key),
        "is_delete_marker": False,
        "size": size,
        "etag": etag,
        "md5": checksums.md5,
        "sha256": checksums.sha256,
        "crc32c": checksums.crc32c,
        "crc32": checksums.crc32,
        "content_type": attrs.content_type,
        "user_metadata": dict(attrs.user_metadata),
        "tags": dict(attrs.tags),
        "data_class": attrs.data_class,
        "subject": attrs.subject,
        "subject_count": attrs.subject_count,
        "rule": attrs.rule,
        "created": now,
        "part_count": part_count,
        "checksum_algorithm": checksum.algorithm if checksum else None,
        "checksum_type": checksum.type if checksum else None,
        "checksum": checksum.value if checksum else None,
        "content_headers": dict(attrs.content_headers) or None,
        "upload_id": upload_id,
    }
    # Core INSERTs on the tables, not unit-of-work objects: this runs on every PUT.
    version_pk = await _insert_version(session, values)
    await session.execute(
        _INSERT_SEGMENTS,
        [
            {
                "object_version_id": version_pk,
                "seq": i,
                "blob_key": s.blob_key,
                "size": s.size,
                "etag": s.etag,
                "checksum": s.checksum,
            }
            for i, s in enumerate(segments)
        ],
    )
    await session.execute(
        _INSERT_PLACEMENTS,
        [
            {
                "object_version_id": version_pk,
                "location": loc,
                "state": "ready",
                "created": now,
                "verified_at": None,
            }
            for loc in locations
        ],
    )
    version = detached(ObjectVersion, {**values, "id": version_pk})
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
    checksum: ObjectChecksum | None = None,
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
        checksum=checksum,
        now=now,
    )


async def delete_object(session: AsyncSession, bucket: Bucket, key: str) -> Deletion:
    """DELETE without a version id: with versioning off the current version is removed (S3
    answers 204 whether or not there was one); otherwise a delete marker becomes current,
    and only a suspended bucket's `null` version loses its bytes."""
    removed = await _make_room(session, bucket, key, reason="deleted")
    if bucket.versioning is None:
        return Deletion(removed, None)
    values = {
        **_new_current(bucket, key),
        "is_delete_marker": True,
        "size": 0,
        "etag": "",
        "user_metadata": {},
        "tags": {},
        "data_class": "",
        "created": utcnow(),
    }
    pk = await _insert_version(session, values)
    marker = detached(ObjectVersion, {**_MARKER_DEFAULTS, **values, "id": pk})
    return Deletion(removed, marker)


_MARKER_DEFAULTS = {column.key: None for column in _VERSIONS.columns}


async def delete_version(
    session: AsyncSession, bucket: Bucket, key: str, s3_version_id: str
) -> ObjectVersion | None:
    """DELETE with a version id: that version (or delete marker) is gone for good, and when it
    was the current one the newest remaining version of the key becomes current. None (and
    nothing changes) when the key has no such version."""
    await lock_key(session, bucket.id, key)
    await session.flush()
    if s3_version_id == NULL_VERSION:
        victim = await _null_version(session, bucket.id, key)
    else:
        row = (
            await session.execute(
                select(_VERSIONS).where(
                    _VERSIONS.c.version_id == s3_version_id,
                    _VERSIONS.c.bucket_id == bucket.id,
                    _VERSIONS.c.key == key,
                    _VERSIONS.c.is_null_version.is_not(True),
                )
            )
        ).first()
        victim = None if row is None else detached(ObjectVersion, row._mapping)
    if victim is None:
        return None
    await retire_version(session, victim, reason="version deleted")
    if victim.is_latest:
        await session.execute(_PROMOTE_NEWEST, {"b_id": bucket.id, "b_key": key})
    return victim
