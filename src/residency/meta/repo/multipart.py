"""Multipart uploads: placement fixed at creation, parts as blobs, completion as a manifest.

Completing an upload copies nothing: the new version's segments are the chosen parts' blobs.
Parts that are replaced, left out of the completion or aborted become garbage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from sqlalchemy import ColumnElement, and_, delete, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from residency.meta.errors import (
    EntityTooSmall,
    IntentMissing,
    InvalidArgument,
    InvalidPart,
    InvalidPartOrder,
    MalformedPartList,
    NoSuchUpload,
)
from residency.meta.ids import new_upload_id
from residency.meta.models import Bucket, MultipartPart, MultipartUpload, Principal, Tenant
from residency.meta.repo.blobs import add_garbage, remove_intents
from residency.meta.repo.keyspace import common_prefix, prefix_end, rolled_up
from residency.meta.specs import (
    Checksums,
    ObjectChecksum,
    SegmentSpec,
    VersionAttrs,
    check_object_key,
)
from residency.meta.types import utcnow
from residency.meta.writes import Commit, install_version

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_NUMBER = 10_000
MAX_LISTED = 1000
CHECKSUM_ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
CHECKSUM_TYPES = ("COMPOSITE", "FULL_OBJECT")

ObjectChecksumOf = Callable[[Sequence[MultipartPart]], ObjectChecksum | None]
"""Given the chosen parts in order, the completed object's checksum (it may refuse the
completion by raising); the gateway's `multipart_checksums.Completion`."""


@dataclass(frozen=True, slots=True)
class PartListing:
    parts: Sequence[MultipartPart]
    is_truncated: bool
    next_part_number_marker: int | None


@dataclass(frozen=True, slots=True)
class UploadListing:
    uploads: Sequence[MultipartUpload]
    is_truncated: bool
    next_key_marker: str | None
    next_upload_id_marker: str | None
    common_prefixes: Sequence[str] = ()


def upload_attrs(upload: MultipartUpload) -> VersionAttrs:
    return VersionAttrs(
        data_class=upload.data_class,
        subject=upload.subject,
        subject_count=upload.subject_count,
        rule=upload.rule,
        content_type=upload.content_type,
        user_metadata=dict(upload.user_metadata),
        tags=dict(upload.tags),
        content_headers=dict(upload.content_headers or {}),
    )


async def create_upload(
    session: AsyncSession,
    bucket: Bucket,
    key: str,
    attrs: VersionAttrs,
    *,
    tenant: Tenant,
    principal: Principal | None,
    locations: Sequence[str],
    checksum_algorithm: str | None = None,
    checksum_type: str | None = None,
    now: datetime | None = None,
) -> MultipartUpload:
    check_object_key(key)
    if not locations or len(set(locations)) != len(locations):
        raise InvalidArgument(f"an upload needs distinct locations, got {list(locations)}")
    if checksum_algorithm is not None and checksum_algorithm not in CHECKSUM_ALGORITHMS:
        raise InvalidArgument(
            f"unsupported checksum algorithm {checksum_algorithm!r}; "
            f"use one of {', '.join(CHECKSUM_ALGORITHMS)}"
        )
    if checksum_type is not None and checksum_type not in CHECKSUM_TYPES:
        raise InvalidArgument(f"unsupported checksum type {checksum_type!r}")
    upload = MultipartUpload(
        upload_id=new_upload_id(),
        bucket_id=bucket.id,
        key=key,
        initiated=now or utcnow(),
        tenant_id=tenant.id,
        principal_id=principal.id if principal is not None else None,
        content_type=attrs.content_type,
        user_metadata=dict(attrs.user_metadata),
        tags=dict(attrs.tags),
        data_class=attrs.data_class,
        subject=attrs.subject,
        subject_count=attrs.subject_count,
        rule=attrs.rule,
        locations=list(locations),
        checksum_algorithm=checksum_algorithm,
        checksum_type=checksum_type,
        content_headers=dict(attrs.content_headers) or None,
    )
    session.add(upload)
    await session.flush()
    return upload


async def get_upload(
    session: AsyncSession, bucket: Bucket, key: str, upload_id: str, *, for_update: bool = False
) -> MultipartUpload:
    """The upload, if it belongs to this bucket and key; `for_update` locks it (PostgreSQL)."""
    stmt = select(MultipartUpload).where(
        MultipartUpload.upload_id == upload_id,
        MultipartUpload.bucket_id == bucket.id,
        MultipartUpload.key == key,
    )
    if for_update:
        stmt = stmt.with_for_update()
    upload = await session.scalar(stmt)
    if upload is None:
        raise NoSuchUpload(
            "The specified multipart upload does not exist. The upload ID may be invalid, "
            "or the upload may have been aborted or completed."
        )
    return upload


async def _relock(session: AsyncSession, upload: MultipartUpload) -> MultipartUpload:
    # Re-read under a row lock: a concurrent complete/abort may have removed it meanwhile.
    fresh = await session.scalar(
        select(MultipartUpload)
        .where(MultipartUpload.id == upload.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if fresh is None:
        raise NoSuchUpload(
            "The specified multipart upload does not exist. It may have been aborted or completed."
        )
    return fresh


def _garbage_refs(upload: MultipartUpload, blob_keys: Sequence[str]) -> list[tuple[str, str]]:
    return [(loc, key) for key in blob_keys for loc in upload.locations]


async def put_part(
    session: AsyncSession,
    upload: MultipartUpload,
    part_number: int,
    *,
    blob_key: str,
    size: int,
    etag: str,
    checksums: Checksums,
    checksum: str | None = None,
    now: datetime | None = None,
) -> MultipartPart:
    """Record a part whose blob is durable at every upload location (intents registered).

    `checksum` is the part's in the upload's algorithm. Uploading a part number again
    replaces it; the old blob becomes garbage.
    """
    if not 1 <= part_number <= MAX_PART_NUMBER:
        raise InvalidArgument(
            f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive."
        )
    upload = await _relock(session, upload)
    missing = await remove_intents(session, _garbage_refs(upload, [blob_key]))
    if missing:
        raise IntentMissing(
            f"no write intent for part blob {blob_key} at "
            f"{', '.join(sorted(loc for loc, _ in missing))}"
        )
    part = await session.scalar(
        select(MultipartPart).where(
            MultipartPart.multipart_upload_id == upload.id,
            MultipartPart.part_number == part_number,
        )
    )
    if part is not None:
        await add_garbage(session, _garbage_refs(upload, [part.blob_key]), reason="part replaced")
    else:
        part = MultipartPart(multipart_upload_id=upload.id, part_number=part_number)
        session.add(part)
    part.blob_key = blob_key
    part.size = size
    part.etag = etag
    part.sha256 = checksums.sha256
    part.crc32c = checksums.crc32c
    part.crc32 = checksums.crc32
    part.checksum = checksum
    part.created = now or utcnow()
    await session.flush()
    return part


async def list_parts(
    session: AsyncSession,
    upload: MultipartUpload,
    *,
    part_number_marker: int = 0,
    max_parts: int = MAX_LISTED,
) -> PartListing:
    if max_parts < 0 or part_number_marker < 0:
        raise InvalidArgument("max-parts and part-number-marker must not be negative")
    max_parts = min(max_parts, MAX_LISTED)
    rows = (
        await session.scalars(
            select(MultipartPart)
            .where(
                MultipartPart.multipart_upload_id == upload.id,
                MultipartPart.part_number > part_number_marker,
            )
            .order_by(MultipartPart.part_number)
            .limit(max_parts + 1)
        )
    ).all()
    truncated = len(rows) > max_parts
    parts = rows[:max_parts]
    marker = parts[-1].part_number if truncated and parts else None
    return PartListing(parts=parts, is_truncated=truncated, next_part_number_marker=marker)


async def list_uploads(
    session: AsyncSession,
    bucket: Bucket,
    *,
    prefix: str = "",
    delimiter: str = "",
    key_marker: str = "",
    upload_id_marker: str = "",
    max_uploads: int = MAX_LISTED,
) -> UploadListing:
    """Uploads in progress by key, then initiation; markers and delimiter as in S3.

    With a delimiter, keys roll up into common prefixes exactly as in `list_objects` (one
    index seek past each prefix); resuming from a common prefix skips everything under it.
    """
    if max_uploads < 0:
        raise InvalidArgument("max-uploads must not be negative")
    max_uploads = min(max_uploads, MAX_LISTED)
    uploads: list[MultipartUpload] = []
    prefixes: list[str] = []
    if max_uploads == 0:
        return UploadListing(uploads, False, None, None, prefixes)
    scope: list[ColumnElement[bool]] = [MultipartUpload.bucket_id == bucket.id]
    if prefix:  # a key range, not LIKE: SQLite's LIKE ignores case
        scope.append(MultipartUpload.key >= prefix)
        end = prefix_end(prefix)
        if end is not None:
            scope.append(MultipartUpload.key < end)
    position = await _upload_start(session, bucket, prefix, delimiter, key_marker, upload_id_marker)
    if position is None:
        return UploadListing(uploads, False, None, None, prefixes)

    async def fetch(position: ColumnElement[bool], n: int) -> Sequence[MultipartUpload]:
        return (
            await session.scalars(
                select(MultipartUpload)
                .where(*scope, position)
                .order_by(MultipartUpload.key, MultipartUpload.initiated, MultipartUpload.id)
                .limit(n)
            )
        ).all()

    page = await rolled_up(
        fetch,
        start=position,
        after=_after,
        from_key=lambda k: MultipartUpload.key >= k,
        key=lambda row: row.key,
        prefix=prefix,
        delimiter=delimiter,
        limit=max_uploads,
        most=MAX_LISTED,
    )
    if not page.truncated:
        return UploadListing(page.rows, False, None, None, page.prefixes)
    last = page.last
    key = last if isinstance(last, str) else last.key if last else None
    upload_id = last.upload_id if isinstance(last, MultipartUpload) else None
    return UploadListing(page.rows, True, key, upload_id, page.prefixes)


def _after(row: MultipartUpload) -> ColumnElement[bool]:
    """Strictly after `row` in (key, initiated, id) order."""
    return or_(
        MultipartUpload.key > row.key,
        and_(
            MultipartUpload.key == row.key,
            or_(
                MultipartUpload.initiated > row.initiated,
                and_(MultipartUpload.initiated == row.initiated, MultipartUpload.id > row.id),
            ),
        ),
    )


async def _upload_start(
    session: AsyncSession,
    bucket: Bucket,
    prefix: str,
    delimiter: str,
    key_marker: str,
    upload_id_marker: str,
) -> ColumnElement[bool] | None:
    """Where an upload listing begins; None when nothing can follow the marker."""
    if not key_marker:
        return true()
    if upload_id_marker:
        marker = await session.scalar(
            select(MultipartUpload).where(
                MultipartUpload.bucket_id == bucket.id,
                MultipartUpload.key == key_marker,
                MultipartUpload.upload_id == upload_id_marker,
            )
        )
        if marker is not None:
            return _after(marker)
    rolled = key_marker.startswith(prefix) and common_prefix(key_marker, prefix, delimiter)
    if rolled == key_marker:
        nxt = prefix_end(key_marker)  # resuming after a common prefix
        return None if nxt is None else MultipartUpload.key >= nxt
    return MultipartUpload.key > key_marker


def _normalise_etag(etag: str) -> str:
    return etag.strip().strip('"').lower()


def _multipart_etag(etags: Sequence[str]) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    for etag in etags:
        digest.update(bytes.fromhex(etag))
    return f"{digest.hexdigest()}-{len(etags)}"


async def complete_upload(
    session: AsyncSession,
    upload: MultipartUpload,
    requested: Sequence[tuple[int, str]],
    *,
    bucket: Bucket,
    min_part_size: int = MIN_PART_SIZE,
    checksum: ObjectChecksumOf | None = None,
    now: datetime | None = None,
) -> Commit:
    """Validate the client's part list and make the manifest version visible, atomically.

    `requested` is [(part number, ETag)] from the CompleteMultipartUpload body, in its order.
    `checksum` gives the object's checksum from the chosen parts (and may refuse them).
    """
    upload = await _relock(session, upload)
    if upload.bucket_id != bucket.id:
        raise NoSuchUpload(f"upload {upload.upload_id} does not belong to bucket {bucket.name!r}")
    if not requested:
        raise MalformedPartList(
            "The XML you provided was not well-formed: it must name at least one part."
        )
    numbers = [n for n, _ in requested]
    if any(b <= a for a, b in pairwise(numbers)):
        raise InvalidPartOrder(
            "The list of parts was not in ascending order. Parts must be ordered by part number."
        )
    stored = {
        p.part_number: p
        for p in (
            await session.scalars(
                select(MultipartPart).where(MultipartPart.multipart_upload_id == upload.id)
            )
        ).all()
    }
    chosen: list[MultipartPart] = []
    for number, etag in requested:
        part = stored.get(number)
        if part is None or _normalise_etag(etag) != _normalise_etag(part.etag):
            raise InvalidPart(
                "One or more of the specified parts could not be found. The part may not have "
                f"been uploaded, or the specified entity tag may not match the part's entity "
                f"tag (part {number}, ETag {etag!r})."
            )
        chosen.append(part)
    for part in chosen[:-1]:
        if part.size < min_part_size:
            raise EntityTooSmall(
                f"Your proposed upload is smaller than the minimum allowed object size: part "
                f"{part.part_number} is {part.size} bytes; every part but the last must be at "
                f"least {min_part_size} bytes."
            )
    try:
        etag = _multipart_etag([_normalise_etag(p.etag) for p in chosen])
    except ValueError:
        raise InvalidPart("a part's ETag is not an MD5 hex digest") from None
    object_checksum = checksum(chosen) if checksum is not None else None
    chosen_numbers = set(numbers)
    unused = [p.blob_key for n, p in stored.items() if n not in chosen_numbers]
    await add_garbage(session, _garbage_refs(upload, unused), reason="part not in completion")
    segments = [
        SegmentSpec(blob_key=p.blob_key, size=p.size, etag=p.etag, checksum=p.checksum)
        for p in chosen
    ]
    attrs = upload_attrs(upload)
    key, locations, upload_id = upload.key, list(upload.locations), upload.upload_id
    await session.execute(
        delete(MultipartPart).where(MultipartPart.multipart_upload_id == upload.id)
    )
    await session.execute(delete(MultipartUpload).where(MultipartUpload.id == upload.id))
    return await install_version(
        session,
        bucket,
        key,
        attrs,
        size=sum(p.size for p in chosen),
        etag=etag,
        checksums=Checksums(),
        segments=segments,
        locations=locations,
        part_count=len(chosen),
        checksum=object_checksum,
        upload_id=upload_id,
        now=now,
    )


async def abort_upload(session: AsyncSession, upload: MultipartUpload) -> int:
    """Drop the upload; every part blob becomes garbage. Returns the number of parts."""
    upload = await _relock(session, upload)
    keys = (
        await session.scalars(
            select(MultipartPart.blob_key).where(MultipartPart.multipart_upload_id == upload.id)
        )
    ).all()
    await add_garbage(session, _garbage_refs(upload, keys), reason="upload aborted")
    await session.execute(
        delete(MultipartPart).where(MultipartPart.multipart_upload_id == upload.id)
    )
    await session.execute(delete(MultipartUpload).where(MultipartUpload.id == upload.id))
    return len(keys)
