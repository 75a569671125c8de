"""Buckets: S3 naming rules, ownership by tenant, defaults that feed classification."""

from __future__ import annotations

import ipaddress
import re
import sqlite3
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Dialect, Table, bindparam, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from residency.meta.errors import (
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    InvalidArgument,
    InvalidBucketName,
    NoSuchBucket,
)
from residency.meta.models import (
    VERSIONING_STATES,
    Bucket,
    MultipartPart,
    MultipartUpload,
    ObjectVersion,
    Tenant,
)
from residency.meta.repo.blobs import add_garbage
from residency.meta.repo.keyspace import prefix_end
from residency.meta.repo.objects import detached
from residency.meta.repo.rawsql import Prepared
from residency.meta.types import utcnow

_ALLOWED = re.compile(r"[a-z0-9.-]+")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def bucket_name_problem(name: str) -> str | None:
    """Why `name` is not a valid S3 bucket name (general purpose bucket rules), or None."""
    if not 3 <= len(name) <= 63:
        return "must be between 3 and 63 characters long"
    if not _ALLOWED.fullmatch(name):
        return "may only contain lowercase letters, digits, '.' and '-'"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return "must begin and end with a letter or digit"
    if ".." in name:
        return "must not contain two adjacent periods"
    if ".-" in name or "-." in name:
        return "must not contain a period next to a hyphen"
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        return "must not be formatted as an IP address"
    for prefix in _RESERVED_PREFIXES:
        if name.startswith(prefix):
            return f"must not start with the reserved prefix {prefix!r}"
    for suffix in _RESERVED_SUFFIXES:
        if name.endswith(suffix):
            return f"must not end with the reserved suffix {suffix!r}"
    return None


def check_bucket_name(name: str) -> None:
    problem = bucket_name_problem(name)
    if problem is not None:
        raise InvalidBucketName(f"The specified bucket name {name!r} is not valid: it {problem}.")


async def create_bucket(
    session: AsyncSession,
    tenant: Tenant,
    name: str,
    *,
    default_class: str | None = None,
    default_subject: str | None = None,
    policy: str | None = None,
) -> Bucket:
    check_bucket_name(name)
    existing = await find_bucket(session, name)
    if existing is not None:
        if existing.tenant_id == tenant.id:
            raise BucketAlreadyOwnedByYou(f"You already own the bucket {name!r}.")
        raise BucketAlreadyExists(
            f"The bucket name {name!r} is taken; bucket names are shared by all tenants."
        )
    bucket = Bucket(
        name=name,
        tenant_id=tenant.id,
        created=utcnow(),
        default_class=default_class,
        default_subject=default_subject,
        policy=policy,
    )
    session.add(bucket)
    await session.flush()
    return bucket


async def find_bucket(session: AsyncSession, name: str) -> Bucket | None:
    return await session.scalar(select(Bucket).where(Bucket.name == name))


_BUCKETS = cast(Table, Bucket.__table__)
_BY_NAME = select(_BUCKETS).where(_BUCKETS.c.name == bindparam("name"))
_RAW_BY_NAME = Prepared(_BY_NAME)


async def bucket_row(session: AsyncSession, name: str) -> Bucket | None:
    """`find_bucket` as a Core query: a detached copy, not an object of the session.

    For request paths that only read the bucket (every object operation): a row without the
    ORM's loading machinery. Use `find_bucket` to change or delete the bucket.
    """
    row = (await session.execute(_BY_NAME, {"name": name})).first()
    return None if row is None else detached(Bucket, row._mapping)


def lookup_bucket(raw: sqlite3.Connection, dialect: Dialect, name: str) -> Bucket | None:
    """`load_bucket` for `Database.read_driver` (the write path's hot start)."""
    rows = _RAW_BY_NAME.rows(raw, dialect, {"name": name})
    return detached(Bucket, rows[0]) if rows else None


def load_bucket(session: Session, name: str) -> Bucket | None:
    """`bucket_row` for `Database.read`: one hop on the write path's hot start."""
    row = session.execute(_BY_NAME, {"name": name}).first()
    return None if row is None else detached(Bucket, row._mapping)


async def get_bucket(session: AsyncSession, name: str) -> Bucket:
    bucket = await find_bucket(session, name)
    if bucket is None:
        raise NoSuchBucket(f"The specified bucket {name!r} does not exist.")
    return bucket


async def list_buckets(
    session: AsyncSession,
    tenant: Tenant | None = None,
    *,
    prefix: str = "",
    after: str = "",
    limit: int | None = None,
) -> Sequence[Bucket]:
    """A tenant's buckets by name (all buckets for `None`: operators only): those whose name
    starts with `prefix` and sorts after `after`, at most `limit` of them."""
    stmt = select(Bucket).order_by(Bucket.name)
    if tenant is not None:
        stmt = stmt.where(Bucket.tenant_id == tenant.id)
    if prefix:  # a name range, not LIKE (case-insensitive on SQLite)
        stmt = stmt.where(Bucket.name >= prefix)
        end = prefix_end(prefix)
        if end is not None:
            stmt = stmt.where(Bucket.name < end)
    if after:
        stmt = stmt.where(Bucket.name > after)
    if limit is not None:
        stmt = stmt.limit(limit)
    return (await session.scalars(stmt)).all()


async def is_empty(session: AsyncSession, bucket: Bucket) -> bool:
    has_objects = await session.scalar(select(exists().where(ObjectVersion.bucket_id == bucket.id)))
    return not has_objects


async def delete_bucket(session: AsyncSession, bucket: Bucket) -> None:
    """Delete an empty bucket; unfinished multipart uploads in it are aborted."""
    if not await is_empty(session, bucket):
        raise BucketNotEmpty(f"The bucket {bucket.name!r} you tried to delete is not empty.")
    uploads = (
        await session.scalars(select(MultipartUpload).where(MultipartUpload.bucket_id == bucket.id))
    ).all()
    for upload in uploads:
        parts = (
            await session.scalars(
                select(MultipartPart.blob_key).where(MultipartPart.multipart_upload_id == upload.id)
            )
        ).all()
        await add_garbage(
            session,
            [(loc, key) for key in parts for loc in upload.locations],
            reason="bucket deleted",
        )
    await session.execute(delete(MultipartUpload).where(MultipartUpload.bucket_id == bucket.id))
    await session.delete(bucket)
    await session.flush()


async def update_bucket(
    session: AsyncSession,
    bucket: Bucket,
    *,
    default_class: str | None,
    default_subject: str | None,
    policy: str | None,
) -> Bucket:
    """Set the bucket's classification defaults and policy binding (None clears a field)."""
    bucket.default_class = default_class
    bucket.default_subject = default_subject
    bucket.policy = policy
    await session.flush()
    return bucket


async def set_versioning(session: AsyncSession, bucket: Bucket, status: str) -> Bucket:
    """Turn versioning on (`Enabled`) or suspend it (`Suspended`). It never goes back to off:
    versions written while it was on stay versions, as in S3."""
    if status not in VERSIONING_STATES:
        raise InvalidArgument(f"versioning must be one of {', '.join(VERSIONING_STATES)}")
    bucket.versioning = status
    await session.flush()
    return bucket
