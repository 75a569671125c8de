"""Reading versions by their S3 version id, and ListObjectVersions.

Versions of a key are ordered by row id: a newer version always has a larger one (ids only
grow), which is the order S3 lists them in (newest first) and the order in which the newest
remaining version becomes current again when the current one is deleted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from residency.meta.errors import InvalidArgument
from residency.meta.models import NULL_VERSION, Bucket, ObjectVersion, Placement, Segment
from residency.meta.repo.keyspace import common_prefix, prefix_end, rolled_up
from residency.meta.repo.objects import MAX_KEYS, ObjectLookup, find_latest

__all__ = [
    "VersionListing",
    "find_addressed",
    "find_version",
    "is_version_id",
    "list_versions",
    "load_object_version",
]

_VERSION_ID = re.compile(r"[0-9a-f]{32}")


def is_version_id(value: str) -> bool:
    """Whether `value` has the form of a version id this store hands out (`null` included):
    S3 answers a malformed one 400 InvalidArgument, a well-formed unknown one NoSuchVersion."""
    return value == NULL_VERSION or _VERSION_ID.fullmatch(value) is not None


def _addressed(bucket_id: int, key: str, s3_version_id: str) -> list[ColumnElement[bool]]:
    where = [ObjectVersion.bucket_id == bucket_id, ObjectVersion.key == key]
    if s3_version_id == NULL_VERSION:
        where.append(ObjectVersion.is_null_version.is_(True))
    else:
        where += [
            ObjectVersion.version_id == s3_version_id,
            ObjectVersion.is_null_version.is_not(True),
        ]
    return where


async def find_version(
    session: AsyncSession, bucket: Bucket, key: str, s3_version_id: str
) -> ObjectVersion | None:
    """The version (or delete marker) of `key` that S3 calls `s3_version_id`, if any."""
    return await session.scalar(
        select(ObjectVersion).where(*_addressed(bucket.id, key, s3_version_id))
    )


async def find_addressed(
    session: AsyncSession, bucket: Bucket, key: str, s3_version_id: str | None
) -> ObjectVersion | None:
    """What a request addresses: the version `s3_version_id` names, or without one the key's
    current version (either may be a delete marker)."""
    if s3_version_id is None:
        return await find_latest(session, bucket, key)
    return await find_version(session, bucket, key, s3_version_id)


def load_object_version(
    session: Session, bucket_name: str, key: str, s3_version_id: str
) -> ObjectLookup | None:
    """`objects.load_object` for one version: None without the bucket; a delete marker comes
    back as `marker` (a GET of it is 405), an unknown version as neither."""
    bucket = session.scalar(select(Bucket).where(Bucket.name == bucket_name))
    if bucket is None:
        return None
    version = session.scalar(
        select(ObjectVersion).where(*_addressed(bucket.id, key, s3_version_id))
    )
    if version is None:
        return ObjectLookup(bucket, None, (), ())
    if version.is_delete_marker:
        return ObjectLookup(bucket, None, (), (), version)
    segments = session.scalars(
        select(Segment).where(Segment.object_version_id == version.id).order_by(Segment.seq)
    ).all()
    placements = session.scalars(
        select(Placement).where(Placement.object_version_id == version.id).order_by(Placement.id)
    ).all()
    return ObjectLookup(bucket, version, segments, placements)


@dataclass(frozen=True, slots=True)
class VersionListing:
    """One page of ListObjectVersions: versions and delete markers in key order, newest first
    within a key, and common prefixes; the next markers resume after the last entry."""

    versions: Sequence[ObjectVersion]
    common_prefixes: Sequence[str]
    is_truncated: bool
    next_key_marker: str | None
    next_version_id_marker: str | None


@dataclass(frozen=True, slots=True)
class _Cursor:
    """Where the next rows start: keys after `key` (or from it, `inclusive`), and within
    `key` itself the versions older than row `below` (when set)."""

    key: str
    inclusive: bool = False
    below: int | None = None

    def condition(self) -> ColumnElement[bool]:
        if self.below is not None:
            return or_(
                ObjectVersion.key > self.key,
                and_(ObjectVersion.key == self.key, ObjectVersion.id < self.below),
            )
        return ObjectVersion.key >= self.key if self.inclusive else ObjectVersion.key > self.key


async def list_versions(
    session: AsyncSession,
    bucket: Bucket,
    *,
    prefix: str = "",
    delimiter: str = "",
    key_marker: str = "",
    version_id_marker: str = "",
    max_keys: int = MAX_KEYS,
) -> VersionListing:
    """Every version and delete marker under `prefix`, rolled up by `delimiter`, after the
    markers. Each common prefix costs one seek past it, as in `objects.list_objects`."""
    if max_keys < 0:
        raise InvalidArgument("max-keys must not be negative")
    max_keys = min(max_keys, MAX_KEYS)
    empty = VersionListing([], [], False, None, None)
    cursor = await _start(session, bucket, prefix, delimiter, key_marker, version_id_marker)
    if max_keys == 0 or cursor is None:
        return empty
    upper = prefix_end(prefix)

    async def fetch(position: _Cursor, n: int) -> Sequence[ObjectVersion]:
        where = [ObjectVersion.bucket_id == bucket.id, position.condition()]
        if upper is not None:
            where.append(ObjectVersion.key < upper)
        return (
            await session.scalars(
                select(ObjectVersion)
                .where(*where)
                .order_by(ObjectVersion.key, ObjectVersion.id.desc())
                .limit(n)
            )
        ).all()

    page = await rolled_up(
        fetch,
        start=cursor,
        after=lambda row: _Cursor(row.key, below=row.id),
        from_key=lambda k: _Cursor(k, inclusive=True),
        key=lambda row: row.key,
        prefix=prefix,
        delimiter=delimiter,
        limit=max_keys,
        most=MAX_KEYS,
    )
    last = page.last
    if not page.truncated or last is None:
        return VersionListing(page.rows, page.prefixes, False, None, None)
    if isinstance(last, str):
        return VersionListing(page.rows, page.prefixes, True, last, None)
    return VersionListing(page.rows, page.prefixes, True, last.key, last.s3_version_id)


async def _start(
    session: AsyncSession,
    bucket: Bucket,
    prefix: str,
    delimiter: str,
    key_marker: str,
    version_id_marker: str,
) -> _Cursor | None:
    """The first position of a listing; None when nothing can follow the markers."""
    if version_id_marker and not key_marker:
        raise InvalidArgument("A version-id marker cannot be specified without a key marker.")
    if not key_marker or key_marker < prefix:
        return _Cursor(prefix, inclusive=True)
    if version_id_marker:
        if not is_version_id(version_id_marker):
            raise InvalidArgument("Invalid version id specified")
        row: Any = await find_version(session, bucket, key_marker, version_id_marker)
        if row is None:
            # The marker version is gone (deleted since the last page): list the key again
            # rather than risk leaving out its older versions.
            return _Cursor(key_marker, inclusive=True)
        return _Cursor(key_marker, below=row.id)
    if key_marker.startswith(prefix) and common_prefix(key_marker, prefix, delimiter) == key_marker:
        nxt = prefix_end(key_marker)  # resuming after a common prefix: skip what is under it
        return None if nxt is None else _Cursor(nxt, inclusive=True)
    return _Cursor(key_marker)
