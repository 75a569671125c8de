"""`residency verify`: every placement of every object version with bytes (current and
noncurrent; delete markers have none) is really there, intact.

Shallow: one stat per blob (exists, right size). Deep: re-read the bytes and compare MD5,
SHA-256 and CRC32C with the checksums recorded for the version (or the segment's ETag for a
multipart object). Placements stream from the database in batches; checks run concurrently.
"""

from __future__ import annotations

import asyncio
import base64
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import select

from residency.meta import Database
from residency.meta.models import Bucket, ObjectVersion, Placement, Segment
from residency.meta.repo.inventory import describe_version, holds_bytes, noncurrent_version
from residency.storage import BlobNotFound, Hasher, Location, StorageError

__all__ = ["Mismatch", "VerifyResult", "verify_placements"]


@dataclass(frozen=True, slots=True)
class Mismatch:
    bucket: str
    key: str
    location: str
    blob_key: str
    problem: str
    noncurrent: str | None = None
    """S3's version id when the version is not the current one of its key"""

    def to_dict(self) -> dict[str, str | None]:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "noncurrent": self.noncurrent,
            "location": self.location,
            "blob_key": self.blob_key,
            "problem": self.problem,
        }

    def describe(self) -> str:
        what = describe_version(self.bucket, self.key, self.noncurrent)
        return f"{what} at {self.location} ({self.blob_key}): {self.problem}"


@dataclass
class VerifyResult:
    objects: int = 0
    """object versions with bytes, current and noncurrent"""
    blobs: int = 0
    bytes: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Check:
    bucket: str
    key: str
    location: str
    blob_key: str
    size: int
    md5: str | None
    sha256: str | None
    crc32c: str | None
    noncurrent: str | None


async def _checks(
    db: Database, bucket: str | None, batch_size: int
) -> AsyncIterator[tuple[int, list[_Check]]]:
    after = 0
    while True:
        async with db.session(write=False) as session:
            q = (
                select(
                    ObjectVersion.id,
                    ObjectVersion.key,
                    ObjectVersion.md5,
                    ObjectVersion.sha256,
                    ObjectVersion.crc32c,
                    Bucket.name,
                    noncurrent_version(),
                )
                .join(Bucket, Bucket.id == ObjectVersion.bucket_id)
                .where(ObjectVersion.id > after, holds_bytes())
                .order_by(ObjectVersion.id)
                .limit(batch_size)
            )
            if bucket is not None:
                q = q.where(Bucket.name == bucket)
            versions = (await session.execute(q)).all()
            if not versions:
                return
            lo, hi = versions[0][0], versions[-1][0]
            segs: dict[int, list[tuple[str, int, str]]] = defaultdict(list)
            for vid, blob_key, size, etag in await session.execute(
                select(Segment.object_version_id, Segment.blob_key, Segment.size, Segment.etag)
                .where(Segment.object_version_id.between(lo, hi))
                .order_by(Segment.object_version_id, Segment.seq)
            ):
                segs[vid].append((blob_key, size, etag))
            places: dict[int, list[str]] = defaultdict(list)
            for vid, loc in await session.execute(
                select(Placement.object_version_id, Placement.location).where(
                    Placement.object_version_id.between(lo, hi)
                )
            ):
                places[vid].append(loc)
        checks: list[_Check] = []
        for vid, key, md5, sha256, crc32c, bucket_name, noncurrent in versions:
            parts = segs.get(vid, [])
            single = len(parts) == 1
            for loc in places.get(vid, []):
                for blob_key, size, etag in parts:
                    checks.append(
                        _Check(
                            bucket_name,
                            key,
                            loc,
                            blob_key,
                            size,
                            md5 if single and md5 and "-" not in md5 else _md5_etag(etag),
                            sha256 if single else None,
                            crc32c if single else None,
                            noncurrent,
                        )
                    )
        yield len(versions), checks
        after = versions[-1][0]


def _md5_etag(etag: str) -> str | None:
    e = etag.strip('"')
    return e if len(e) == 32 and "-" not in e else None


async def _check(
    check: _Check, location: Location | None, deep: bool, limiter: asyncio.Semaphore
) -> str | None:
    if location is None:
        return "location is not configured here"
    async with limiter:
        try:
            stat = await location.stat(check.blob_key)
        except BlobNotFound:
            return "blob is missing"
        except StorageError as exc:
            return f"cannot check: {exc}"
        if stat.size != check.size:
            return f"size {stat.size}, expected {check.size}"
        if not deep:
            return None
        hasher = Hasher(("md5", "sha256", "crc32c"))
        try:
            async for chunk in location.read(check.blob_key):
                hasher.update(chunk)
        except StorageError as exc:
            return f"cannot read: {exc}"
    got = hasher.digests()
    b64 = base64.b64encode
    if check.md5 and got["md5"].hex() != check.md5:
        return f"MD5 {got['md5'].hex()}, expected {check.md5}"
    if check.sha256 and b64(got["sha256"]).decode() != check.sha256:
        return "SHA-256 differs from the recorded checksum"
    if check.crc32c and b64(got["crc32c"]).decode() != check.crc32c:
        return "CRC32C differs from the recorded checksum"
    return None


async def verify_placements(
    db: Database,
    locations: Mapping[str, Location],
    *,
    bucket: str | None = None,
    deep: bool = False,
    concurrency: int = 32,
    batch_size: int = 1000,
    on_mismatch: Callable[[Mismatch], None] | None = None,
) -> VerifyResult:
    result = VerifyResult()
    limiter = asyncio.Semaphore(concurrency)
    async for nobjects, checks in _checks(db, bucket, batch_size):
        result.objects += nobjects
        problems = await asyncio.gather(
            *(_check(c, locations.get(c.location), deep, limiter) for c in checks)
        )
        for c, problem in zip(checks, problems, strict=True):
            result.blobs += 1
            result.bytes += c.size
            if problem is not None:
                m = Mismatch(c.bucket, c.key, c.location, c.blob_key, problem, c.noncurrent)
                result.mismatches.append(m)
                if on_mismatch is not None:
                    on_mismatch(m)
    return result
