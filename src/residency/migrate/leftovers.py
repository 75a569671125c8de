"""Bytes the metadata knows are still at a location the policy forbids, though no placement
says so: what `report`, `plan` and `verify` count as out of compliance beside the objects.

- **Must leave**: blobs a migration released because the policy wants them gone from that
  location (`MUST_LEAVE` garbage) and that are not erased yet — a deletion that failed, or a
  run killed between its commit and its erasure. Always out of compliance.
- **Multipart parts**: parts of uploads still open, at locations the policy (narrowed by the
  bucket's own, as everywhere) does not allow for the upload's classification (the policy
  changed since the upload began).

Bounded memory: one GROUP BY for the first, open uploads in id-ordered batches for the second.
A blob whose size the metadata no longer knows (the key of a moved object's old copy) counts
as a blob with unknown size: `residency scan` lists the location and sees its bytes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from residency.meta.models import (
    Bucket,
    GarbageBlob,
    MultipartPart,
    MultipartUpload,
    Segment,
    Tenant,
)
from residency.meta.repo.blobs import MUST_LEAVE
from residency.meta.repo.chunks import chunks
from residency.migrate.decide import Decider

__all__ = ["Leftover", "collect_leftovers"]

LeftoverKind = Literal["must_leave", "multipart_parts"]


@dataclass(frozen=True, slots=True)
class Leftover:
    """Blobs of one kind at one location that must not be there."""

    location: str
    kind: LeftoverKind
    blobs: int
    bytes: int
    """bytes of the blobs whose size is known"""
    unknown_size: int
    """blobs whose size the metadata does not know"""
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        from residency.migrate.units import format_bytes

        size = format_bytes(self.bytes)
        if self.unknown_size:
            size += f" + {self.unknown_size:,} of unknown size"
        return f"{self.blobs:,} blobs ({size}) at {self.location}: {self.reason}"


async def _must_leave(session: AsyncSession) -> list[Leftover]:
    size = (
        select(func.max(Segment.size))
        .where(Segment.blob_key == GarbageBlob.blob_key)
        .correlate(GarbageBlob)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(
            GarbageBlob.location,
            func.count(),
            func.coalesce(func.sum(size), 0),
            func.count() - func.count(size),
        )
        .where(GarbageBlob.reason == MUST_LEAVE)
        .group_by(GarbageBlob.location)
        .order_by(GarbageBlob.location)
    )
    return [
        Leftover(
            str(loc),
            "must_leave",
            int(n),
            int(nbytes),
            int(unknown),
            "released by a migration, not erased yet (run `residency sweep` or migrate again)",
        )
        for loc, n, nbytes, unknown in rows
    ]


async def _forbidden_parts(
    session: AsyncSession, decider: Decider, batch_size: int
) -> list[Leftover]:
    known = {c.name for c in decider.candidates}
    totals: dict[str, list[int]] = {}
    after = 0
    while True:
        uploads = (
            await session.execute(
                select(
                    MultipartUpload.id,
                    MultipartUpload.data_class,
                    MultipartUpload.subject,
                    MultipartUpload.subject_count,
                    Tenant.name,
                    Bucket.name,
                    MultipartUpload.locations,
                    Bucket.policy,
                )
                .join(Bucket, Bucket.id == MultipartUpload.bucket_id)
                .join(Tenant, Tenant.id == Bucket.tenant_id)
                .where(MultipartUpload.id > after)
                .order_by(MultipartUpload.id)
                .limit(batch_size)
            )
        ).all()
        if not uploads:
            break
        after = uploads[-1][0]
        bad: dict[int, list[str]] = {}
        for up_id, cls, subject, count, tenant, bucket, locations, spec in uploads:
            allowed = set(decider.decide(cls, subject, tenant, bucket, count, spec).allowed)
            wrong = [loc for loc in locations or [] if loc in known and loc not in allowed]
            if wrong:
                bad[up_id] = wrong
        if not bad:
            continue
        for ids in chunks(sorted(bad)):
            for up_id, n, nbytes in await session.execute(
                select(
                    MultipartPart.multipart_upload_id, func.count(), func.sum(MultipartPart.size)
                )
                .where(MultipartPart.multipart_upload_id.in_(list(ids)))
                .group_by(MultipartPart.multipart_upload_id)
            ):
                for loc in bad[up_id]:
                    t = totals.setdefault(loc, [0, 0])
                    t[0] += int(n)
                    t[1] += int(nbytes or 0)
    return [
        Leftover(
            loc,
            "multipart_parts",
            n,
            nbytes,
            0,
            f"parts of open uploads the policy {decider.policy.name} no longer allows there "
            "(abort the uploads)",
        )
        for loc, (n, nbytes) in sorted(totals.items())
        if n
    ]


async def collect_leftovers(
    session: AsyncSession, decider: Decider | None, *, batch_size: int = 1000
) -> list[Leftover]:
    """Every leftover, by location; parts are judged only with a policy (`decider`)."""
    found = await _must_leave(session)
    if decider is not None:
        found += await _forbidden_parts(session, decider, batch_size)
    return found
