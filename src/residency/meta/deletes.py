"""Deleting many objects of one bucket in one transaction (S3 DeleteObjects, up to 1,000 keys).

`meta.writes.delete_object` costs four statements per key; a batch here costs a few
statements per `IN` chunk of keys, whatever the batch size: the latest versions with their
locations, then the blobs that become garbage, the garbage rows and the version rows (their
segments and placements go with them: ON DELETE CASCADE), exactly what `retire_version` does
for one version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, delete, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from residency.meta.models import ObjectVersion, Placement, Segment
from residency.meta.repo.blobs import add_garbage
from residency.meta.repo.chunks import chunks
from residency.meta.repo.objects import detached
from residency.meta.writes import lock_key

__all__ = ["Current", "Latest", "delete_versions", "latest_ids", "latest_versions", "lock_keys"]

_VERSIONS = cast(Table, ObjectVersion.__table__)
_SEGMENTS = cast(Table, Segment.__table__)
_PLACEMENTS = cast(Table, Placement.__table__)


@dataclass(frozen=True, slots=True)
class Current:
    """A key's latest version (detached) and the locations that hold it."""

    version: ObjectVersion
    locations: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Latest:
    """Which row is a key's latest version: enough to delete it and to audit that."""

    id: int
    key: str
    version_id: str


async def lock_keys(session: AsyncSession, bucket_id: int, keys: Sequence[str]) -> None:
    """`lock_key` for every key, in sorted order (two batches never wait on each other in a
    cycle); nothing to do on SQLite, whose write transactions are serial."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for key in sorted(set(keys)):
        await lock_key(session, bucket_id, key)


async def latest_versions(
    session: AsyncSession, bucket_id: int, keys: Sequence[str]
) -> dict[str, Current]:
    """The latest version of each key that has one (keys without one are left out)."""
    versions: dict[int, ObjectVersion] = {}
    for chunk in chunks(list(dict.fromkeys(keys))):
        rows = await session.execute(
            select(_VERSIONS).where(
                _VERSIONS.c.bucket_id == bucket_id,
                _VERSIONS.c.is_latest == true(),
                _VERSIONS.c.key.in_(chunk),
            )
        )
        for row in rows:
            version = detached(ObjectVersion, row._mapping)
            versions[version.id] = version
    locations: dict[int, list[str]] = {}
    for ids in chunks(list(versions)):
        rows = await session.execute(
            select(_PLACEMENTS.c.object_version_id, _PLACEMENTS.c.location)
            .where(_PLACEMENTS.c.object_version_id.in_(ids))
            .order_by(_PLACEMENTS.c.id)
        )
        for version_id, location in rows:
            locations.setdefault(version_id, []).append(location)
    return {v.key: Current(v, tuple(locations.get(v.id, ()))) for v in versions.values()}


async def latest_ids(
    session: AsyncSession, bucket_id: int, keys: Sequence[str]
) -> dict[str, Latest]:
    """`latest_versions` without the rest of the row: three columns, no ORM objects."""
    found: dict[str, Latest] = {}
    for chunk in chunks(list(dict.fromkeys(keys))):
        rows = await session.execute(
            select(_VERSIONS.c.id, _VERSIONS.c.key, _VERSIONS.c.version_id).where(
                _VERSIONS.c.bucket_id == bucket_id,
                _VERSIONS.c.is_latest == true(),
                _VERSIONS.c.key.in_(chunk),
            )
        )
        for pk, key, version_id in rows:
            found[key] = Latest(pk, key, version_id)
    return found


async def delete_versions(
    session: AsyncSession, version_pks: Sequence[int], *, reason: str = "deleted"
) -> int:
    """Remove the versions (by row id); every blob of every placement becomes garbage.
    Returns how many (location, blob) pairs became garbage."""
    await session.flush()  # pending ORM changes first: Core statements do not autoflush
    ids = list(dict.fromkeys(version_pks))
    refs: list[tuple[str, str]] = []
    for chunk in chunks(ids):
        rows = await session.execute(
            select(_PLACEMENTS.c.location, _SEGMENTS.c.blob_key)
            .join(_SEGMENTS, _SEGMENTS.c.object_version_id == _PLACEMENTS.c.object_version_id)
            .where(_PLACEMENTS.c.object_version_id.in_(chunk))
        )
        refs.extend((location, blob_key) for location, blob_key in rows)
    count = await add_garbage(session, refs, reason=reason)
    for chunk in chunks(ids):
        await session.execute(delete(_VERSIONS).where(_VERSIONS.c.id.in_(chunk)))
    return count
