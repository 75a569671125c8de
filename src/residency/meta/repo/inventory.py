"""Every object version that holds bytes, with what a policy needs to judge it, in bounded
batches.

Residency applies to every version: a noncurrent version of a versioned bucket keeps its bytes
(segments, placements) and is placed, planned, moved, verified, scanned and reported by its
own classification, exactly like the current one. Delete markers hold no bytes and are never
read here (`holds_bytes`).

Plan, report and `policy diff` ask the same question of every version: given its stored class,
subject, count, bucket (and the bucket's own policy) and where its bytes are, is that allowed?
This reads exactly those fields as Core rows (no ORM loading: for a million objects this loop
is most of the cost), one id range at a time, each batch in its own read transaction.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, func, literal, null, select, true

from residency.meta.db import Database
from residency.meta.models import NULL_VERSION, Bucket, ObjectVersion, Placement, Segment, Tenant

__all__ = [
    "VersionRow",
    "describe_version",
    "holds_bytes",
    "noncurrent_version",
    "versions_with_bytes",
]


def holds_bytes() -> ColumnElement[bool]:
    """Versions with bytes, current or noncurrent: every row but delete markers."""
    return ObjectVersion.is_delete_marker.is_not(True)


def noncurrent_version() -> ColumnElement[str | None]:
    """S3's version id (`null` or the id) of a noncurrent version; NULL for a current one.

    One column that both says whether a version is noncurrent and names it for the user;
    a current version (the only kind an unversioned bucket has) never reads further."""
    return case(
        (ObjectVersion.is_latest == true(), null()),
        (ObjectVersion.is_null_version == true(), literal(NULL_VERSION)),
        else_=ObjectVersion.version_id,
    )


def describe_version(bucket: str, key: str, noncurrent: str | None) -> str:
    """`bucket/key`, naming the version when it is not the current one:
    `bucket/report.pdf (noncurrent version 3f2a…)`."""
    if noncurrent is None:
        return f"{bucket}/{key}"
    return f"{bucket}/{key} (noncurrent version {noncurrent})"


@dataclass(frozen=True, slots=True)
class VersionRow:
    """One object version with bytes (current or noncurrent) and the locations they are at."""

    id: int
    bucket: str
    key: str
    version_id: str
    size: int
    data_class: str
    subject: str | None
    subject_count: int | None
    tenant: str
    bucket_policy: str | None
    placements: tuple[str, ...]
    segments: int
    noncurrent: str | None = None
    """S3's version id when this version is not the current one of its key (`null` for the
    null version), None when it is current"""


async def versions_with_bytes(
    db: Database, *, bucket: str | None = None, batch_size: int = 20_000
) -> AsyncIterator[list[VersionRow]]:
    """Batches of every version with bytes (of `bucket`), current and noncurrent, in id order;
    never a delete marker."""
    after = 0
    while True:
        async with db.session(write=False) as session:
            conn = await session.connection()
            query = (
                select(
                    ObjectVersion.id,
                    Bucket.name,
                    ObjectVersion.key,
                    ObjectVersion.version_id,
                    ObjectVersion.size,
                    ObjectVersion.data_class,
                    ObjectVersion.subject,
                    ObjectVersion.subject_count,
                    Tenant.name,
                    Bucket.policy,
                    noncurrent_version(),
                )
                .join(Bucket, Bucket.id == ObjectVersion.bucket_id)
                .join(Tenant, Tenant.id == Bucket.tenant_id)
                .where(ObjectVersion.id > after, holds_bytes())
                .order_by(ObjectVersion.id)
                .limit(batch_size)
            )
            if bucket is not None:
                query = query.where(Bucket.name == bucket)
            rows = (await conn.execute(query)).all()
            if not rows:
                return
            lo, hi = rows[0][0], rows[-1][0]
            where: Any = Placement.object_version_id.between(lo, hi)
            placed: dict[int, list[str]] = defaultdict(list)
            for vid, loc in await conn.execute(
                select(Placement.object_version_id, Placement.location)
                .where(where, Placement.state != "deleting")
                .order_by(Placement.object_version_id, Placement.id)
            ):
                placed[vid].append(loc)
            counts: Counter[int] = Counter()
            for vid, n in await conn.execute(
                select(Segment.object_version_id, func.count())
                .where(Segment.object_version_id.between(lo, hi))
                .group_by(Segment.object_version_id)
            ):
                counts[vid] = n
        yield [
            VersionRow(
                id=r[0],
                bucket=r[1],
                key=r[2],
                version_id=r[3],
                size=r[4],
                data_class=r[5],
                subject=r[6],
                subject_count=r[7],
                tenant=r[8],
                bucket_policy=r[9],
                placements=tuple(placed.get(r[0], ())),
                segments=counts[r[0]] or 1,
                noncurrent=r[10],
            )
            for r in rows
        ]
        after = rows[-1][0]
        if len(rows) < batch_size:
            return
