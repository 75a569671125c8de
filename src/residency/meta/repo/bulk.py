"""Bulk statements on versions, segments and placements: the migration engine's and adopt's.

meta is the only writer of its tables; the engine and adopt hand their batches to these
functions. Every statement is Core, built once, and runs as one `executemany` per batch (or one
query per bounded `IN` chunk): ORM-enabled statements cost several times more Python for the
same SQL, and a migration of millions of small objects is bound by that cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from residency.meta.ids import new_version_id
from residency.meta.models import Bucket, ObjectVersion, Placement, Segment, Tenant
from residency.meta.repo.chunks import chunks
from residency.meta.types import utcnow

__all__ = [
    "AdoptedBlob",
    "LoadedVersion",
    "add_adopted",
    "add_placements",
    "drop_all_placements",
    "drop_placements",
    "fill_checksums",
    "fill_segment_etags",
    "latest_keys",
    "load_versions_with_bytes",
    "set_segment_keys",
]

_VERSIONS = cast(Table, ObjectVersion.__table__)
_SEGMENTS = cast(Table, Segment.__table__)
_PLACEMENTS = cast(Table, Placement.__table__)
_BUCKETS = cast(Table, Bucket.__table__)
_TENANTS = cast(Table, Tenant.__table__)

_SET_KEY = (
    _SEGMENTS.update()
    .where(_SEGMENTS.c.id == bindparam("segment_id"))
    .values(blob_key=bindparam("new_key"))
)
_SET_SEGMENT_ETAG = (
    _SEGMENTS.update()
    .where(_SEGMENTS.c.id == bindparam("segment_id"))
    .values(etag=bindparam("new_etag"))
)
_SET_CHECKSUMS = (
    _VERSIONS.update()
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
        _TENANTS.c.name,
        _VERSIONS.c.data_class,
        _VERSIONS.c.subject,
        _VERSIONS.c.subject_count,
        _BUCKETS.c.policy,
    )
    .join(_BUCKETS, _BUCKETS.c.id == _VERSIONS.c.bucket_id)
    .join(_TENANTS, _TENANTS.c.id == _BUCKETS.c.tenant_id)
    .where(_VERSIONS.c.version_id.in_(bindparam("vids", expanding=True)))
    # Any version with bytes, current or noncurrent; never a delete marker (no bytes to move).
    .where(_VERSIONS.c.is_delete_marker.is_not(True))
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
_LATEST_KEYS = select(_VERSIONS.c.key).where(
    _VERSIONS.c.bucket_id == bindparam("bucket_id"),
    _VERSIONS.c.is_latest == true(),
    _VERSIONS.c.key.in_(bindparam("keys", expanding=True)),
)
_VERSION_IDS = select(_VERSIONS.c.version_id, _VERSIONS.c.id).where(
    _VERSIONS.c.version_id.in_(bindparam("vids", expanding=True))
)


# --- reading ---------------------------------------------------------------------------------


@dataclass(slots=True)
class LoadedVersion:
    """A version with bytes (current or noncurrent) with what a migration step needs:
    checksums, stored classification, segments (in order) and placements (location -> state)."""

    id: int
    bucket_id: int
    version_id: str
    etag: str
    md5: str | None
    sha256: str | None
    crc32c: str | None
    key: str
    bucket: str
    tenant: str
    data_class: str
    subject: str | None
    subject_count: int | None
    bucket_policy: str | None
    """the bucket's own policy (it narrows the operator's)"""
    segments: list[tuple[int, str, int, str]]
    """(segment id, blob key, size, etag)"""
    placements: dict[str, str]


_LOADED_FIELDS = (
    "id",
    "bucket_id",
    "version_id",
    "etag",
    "md5",
    "sha256",
    "crc32c",
    "key",
    "bucket",
    "tenant",
    "data_class",
    "subject",
    "subject_count",
    "bucket_policy",
)
"""`LoadedVersion`'s fields in `_LOAD_VERSIONS`' column order"""


async def load_versions_with_bytes(
    session: AsyncSession, version_ids: Iterable[str]
) -> dict[str, LoadedVersion]:
    """The versions named that still exist and hold bytes, current or noncurrent (a delete
    marker never comes back), by version id; three queries per few hundred versions."""
    wanted = sorted(set(version_ids))
    found: dict[str, LoadedVersion] = {}
    for chunk in chunks(wanted):
        for row in await session.execute(_LOAD_VERSIONS, {"vids": list(chunk)}):
            fields = dict(zip(_LOADED_FIELDS, row, strict=True))
            found[row.version_id] = LoadedVersion(**fields, segments=[], placements={})
    by_id = {v.id: v for v in found.values()}
    for id_chunk in chunks(sorted(by_id)):
        ids = list(id_chunk)
        for ov_id, seg_id, blob_key, size, etag in await session.execute(
            _LOAD_SEGMENTS, {"ids": ids}
        ):
            by_id[ov_id].segments.append((seg_id, blob_key, size, etag))
        for ov_id, loc, state in await session.execute(_LOAD_PLACEMENTS, {"ids": ids}):
            by_id[ov_id].placements[loc] = state
    return found


async def latest_keys(session: AsyncSession, bucket_id: int, keys: Sequence[str]) -> set[str]:
    """Which of `keys` have a latest version in the bucket (already managed)."""
    found: set[str] = set()
    for chunk in chunks(keys):
        found.update(
            await session.scalars(_LATEST_KEYS, {"bucket_id": bucket_id, "keys": list(chunk)})
        )
    return found


# --- the migration engine's batch writes ------------------------------------------------------


async def set_segment_keys(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Switch segments to new blob keys: rows of {segment_id, new_key}."""
    if rows:
        await session.execute(_SET_KEY, list(rows))


async def fill_segment_etags(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows of {segment_id, new_etag}: an adopted segment learns its ETag from its copy."""
    if rows:
        await session.execute(_SET_SEGMENT_ETAG, list(rows))


async def fill_checksums(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Rows of {ov_id, new_md5, new_sha256, new_crc32c, new_crc32, new_etag}; a None
    checksum keeps the recorded one."""
    if rows:
        await session.execute(_SET_CHECKSUMS, list(rows))


async def drop_all_placements(session: AsyncSession, version_ids: Sequence[int]) -> None:
    """Every placement of these versions (row ids) goes."""
    for chunk in chunks(version_ids):
        await session.execute(
            delete(_PLACEMENTS).where(_PLACEMENTS.c.object_version_id.in_(list(chunk)))
        )


async def drop_placements(session: AsyncSession, pairs: Sequence[tuple[int, str]]) -> None:
    """The placements (version row id, location) go."""
    if pairs:
        await session.execute(_DROP_PLACEMENT, [{"ov_id": ov, "loc": loc} for ov, loc in pairs])


async def add_placements(
    session: AsyncSession, pairs: Sequence[tuple[int, str]], *, verified: datetime | None = None
) -> None:
    """Verified placements (version row id, location), verified now unless told when."""
    if not pairs:
        return
    now = verified or utcnow()
    await session.execute(
        insert(_PLACEMENTS),
        [
            {
                "object_version_id": ov,
                "location": loc,
                "state": "verified",
                "created": now,
                "verified_at": now,
            }
            for ov, loc in pairs
        ],
    )


# --- adopt ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdoptedBlob:
    """A blob found at a location, as the object it becomes (blob key = object key)."""

    key: str
    size: int
    data_class: str
    subject: str | None
    subject_count: int | None
    created: datetime


async def add_adopted(
    session: AsyncSession, bucket_id: int, location: str, blobs: Sequence[AdoptedBlob]
) -> int:
    """Record each blob as the latest version of its key with one placement at `location`.

    Core executemany without RETURNING (ORM bulk inserts that return ids run one statement
    per row on SQLite); the ids come back with one indexed query per chunk instead. Checksums
    and ETags are unknown until the bytes are read: the first verified copy fills them in.
    """
    if not blobs:
        return 0
    rows: list[dict[str, Any]] = [
        {
            "bucket_id": bucket_id,
            "key": b.key,
            "version_id": new_version_id(),
            "is_latest": True,
            "is_delete_marker": False,
            "size": b.size,
            "etag": "",
            "user_metadata": {},
            "tags": {},
            "data_class": b.data_class,
            "subject": b.subject,
            "subject_count": b.subject_count,
            "created": b.created,
        }
        for b in blobs
    ]
    await session.execute(insert(_VERSIONS), rows)
    vids = [str(r["version_id"]) for r in rows]
    ids: dict[str, int] = {}
    for chunk in chunks(vids):
        ids.update((vid, ov) for vid, ov in await session.execute(_VERSION_IDS, {"vids": chunk}))
    await session.execute(
        insert(_SEGMENTS),
        [
            {
                "object_version_id": ids[vid],
                "seq": 0,
                "blob_key": b.key,
                "size": b.size,
                "etag": "",
            }
            for vid, b in zip(vids, blobs, strict=True)
        ],
    )
    now = utcnow()
    await session.execute(
        insert(_PLACEMENTS),
        [
            {
                "object_version_id": ids[vid],
                "location": location,
                "state": "ready",
                "created": now,
            }
            for vid in vids
        ],
    )
    return len(rows)
