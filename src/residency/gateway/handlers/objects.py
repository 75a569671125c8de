"""Object operations: put (the residency write path), get/head (ranges, conditionals,
replica failover), delete and batch delete."""

from __future__ import annotations

import base64
import contextlib
import email.errors
import email.header
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response, StreamingResponse

from residency.access import AccessDecision, Action, ObjectRef
from residency.audit.kinds import DELETE
from residency.gateway import authorize, errors
from residency.gateway.checksum import COMPOSITE, FULL_OBJECT
from residency.gateway.context import RequestContext
from residency.gateway.handlers.common import empty_response, quote_etag, xml_response
from residency.gateway.http import (
    ByteRange,
    PathSendResponse,
    check_preconditions,
    decimal,
    http_date,
    offers_pathsend,
    parse_range,
)
from residency.gateway.payload import request_body
from residency.gateway.reads import ReplicaReader, SegmentRef, prefetch
from residency.gateway.versions import (
    NULL_VERSION,
    missing,
    requested_version,
    version_headers,
)
from residency.gateway.writes import (
    WritePlan,
    abandon_unwritten,
    audit_placement,
    decide,
    write_blob,
)
from residency.gateway.xml import (
    Deleted,
    DeleteError,
    ObjectIdentifier,
    delete_result,
    parse_delete,
    parse_tagging_header,
    read_body,
    xml_safe,
)
from residency.meta.deletes import (
    Current,
    Latest,
    delete_versions,
    latest_ids,
    latest_versions,
    lock_keys,
)
from residency.meta.errors import MetaError
from residency.meta.models import Bucket, ObjectVersion
from residency.meta.repo.buckets import load_bucket, lookup_bucket
from residency.meta.repo.objects import (
    ObjectLookup,
    load_bucket_and_latest,
    load_object,
    lookup_object,
    version_blobs,
)
from residency.meta.repo.versions import find_addressed, is_version_id, load_object_version
from residency.meta.specs import Checksums, ObjectChecksum, VersionAttrs, check_object_key
from residency.meta.writes import commit_version, delete_object, delete_version

META_PREFIX = "x-amz-meta-"
CHECKSUM_PREFIX = "x-amz-checksum-"
NOT_CHECKSUM_HEADERS = frozenset(
    {"x-amz-checksum-type", "x-amz-checksum-algorithm", "x-amz-checksum-mode"}
)
SMALL_BODY = 256 * 1024
"""Bodies up to this size are read whole and sent as one message (less than one storage
chunk, so memory stays bounded exactly as when streaming)."""
MAX_USER_METADATA = 2048
_RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


CONTENT_HEADERS = (
    "Cache-Control",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Expires",
)
"""Headers an object keeps and sends back on GET/HEAD, as the client sent them."""
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=")


def content_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Cache-Control, Content-Disposition, Content-Encoding, Content-Language and Expires of
    a write. `aws-chunked` is transfer framing, not the object's encoding: S3 drops it."""
    kept: dict[str, str] = {}
    for name in CONTENT_HEADERS:
        value = headers.get(name.lower())
        if value is None:
            continue
        if name == "Content-Encoding":
            codings = [c.strip() for c in value.split(",") if c.strip()]
            value = ",".join(c for c in codings if c.lower() != "aws-chunked")
            if not value:
                continue
        kept[name] = value
    return kept


def metadata_value(raw: str) -> str:
    """A user-metadata value as S3 keeps it: Unicode. Header values arrive latin-1 decoded, so
    raw UTF-8 bytes are read as UTF-8, and RFC 2047 encoded-words (`=?UTF-8?B?...?=`) are
    decoded, as S3 does before storing."""
    try:
        value = raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        value = raw
    if _ENCODED_WORD.search(value):
        # Not valid RFC 2047 after all: kept as sent.
        with contextlib.suppress(
            email.errors.HeaderParseError, LookupError, UnicodeError, ValueError
        ):
            value = str(email.header.make_header(email.header.decode_header(value)))
    return value


def metadata_header(value: str) -> str:
    """A stored metadata value as a response header: as is when US-ASCII, else RFC 2047
    (`=?UTF-8?B?...?=`), as S3 sends it ("mail-safe")."""
    if value.isascii():
        return value
    return f"=?UTF-8?B?{base64.b64encode(value.encode('utf-8')).decode('ascii')}?="


def user_metadata(headers: Mapping[str, str]) -> dict[str, str]:
    """`x-amz-meta-*` headers (names lower-cased, as S3 stores them), within S3's 2 KB."""
    meta = {
        name[len(META_PREFIX) :].lower(): metadata_value(value)
        for name, value in headers.items()
        if name.lower().startswith(META_PREFIX)
    }
    size = sum(len(k.encode()) + len(v.encode()) for k, v in meta.items())
    if size > MAX_USER_METADATA:
        raise errors.metadata_too_large(size, MAX_USER_METADATA)
    return meta


def request_tags(headers: Mapping[str, str]) -> dict[str, str]:
    value = headers.get("x-amz-tagging")
    return dict(parse_tagging_header(value)) if value else {}


def checked_key(key: str) -> str:
    """A key a write may create: S3's rules, and no character XML 1.0 cannot carry (C0
    controls other than TAB, LF and CR): a listing could not show such a key as itself."""
    try:
        check_object_key(key)
    except MetaError as exc:
        if exc.code == "KeyTooLongError":
            raise errors.key_too_long(len(key.encode())) from None
        raise errors.invalid_argument(exc.message) from None
    if not xml_safe(key):
        bad = next(ch for ch in key if not xml_safe(ch))
        raise errors.invalid_argument(
            f"Object key contains the control character U+{ord(bad):04X}, which XML 1.0 "
            "(and so an S3 listing) cannot carry; use a key without control characters.",
            name="key",
            value=key.encode("unicode_escape").decode("ascii"),
        )
    return key


async def commit_simple(
    ctx: RequestContext,
    bucket_name: str,
    key: str,
    placement: WritePlan,
    attrs: VersionAttrs,
    blob_key: str,
    info: Any,
    checksum: ObjectChecksum | None = None,
    **audit: Any,
) -> ObjectVersion:
    """Make the written blob the visible version, audited in the same transaction.

    If the commit fails (bucket deleted meanwhile, database error) the blob is turned into
    garbage at once so nothing unreferenced lingers until the intent ages out.
    """
    refs = [(name, blob_key) for name in placement.locations]

    async def commit(session: AsyncSession) -> ObjectVersion:
        bucket = await authorize.object_bucket(session, ctx, bucket_name)
        done = await commit_version(
            session,
            bucket,
            key,
            attrs,
            blob_key=blob_key,
            size=info.size,
            etag=info.etag,
            checksums=Checksums.from_digests(info),
            locations=placement.locations,
            checksum=checksum,
        )
        await audit_placement(
            session,
            ctx,
            f"s3://{bucket_name}/{key}",
            placement,
            version_id=done.version.version_id,
            size=info.size,
            etag=info.etag,
            **audit,
        )
        return done.version

    try:
        # One writer-thread hop for the whole transaction (`Database.write`).
        await authorize.caller(ctx)
        return await ctx.gw.db.write(commit)
    except BaseException:
        await ctx.gw.db.write(abandon_unwritten, refs)
        raise


async def put_object(ctx: RequestContext) -> Response:
    key = checked_key(ctx.key)
    meta = user_metadata(ctx.headers)
    tags = request_tags(ctx.headers)
    conditional = "if-match" in ctx.headers or "if-none-match" in ctx.headers
    # One read hop: the bucket, and the current version only when a condition needs it.
    found: Bucket | None
    current: ObjectVersion | None = None
    if conditional:
        found, current = await ctx.gw.db.read(load_bucket_and_latest, ctx.bucket, key)
    else:
        found = await ctx.gw.db.read_driver(lookup_bucket, load_bucket, ctx.bucket)
    if found is None:
        raise errors.no_such_bucket(ctx.bucket)
    bucket = found
    placement = await decide(ctx, bucket, key, user_metadata=meta, tags=tags)
    if conditional:
        check_write_conditions(ctx.headers, key, current)
    body = request_body(ctx.request, ctx.auth)
    body.keep_default_checksum()
    blob_key, info = await write_blob(
        ctx.gw, placement.locations, body, expect_size=body.expected_size
    )
    attrs = replace(
        placement.version_attrs(
            content_type=ctx.headers.get("content-type"),
            user_metadata=meta,
            tags=tags,
        ),
        content_headers=content_headers(ctx.headers),
    )
    checksum = full_object_checksum(body.object_checksum)
    new = await commit_simple(ctx, ctx.bucket, key, placement, attrs, blob_key, info, checksum)
    return empty_response(
        headers={
            "ETag": quote_etag(info.etag),
            **version_headers(bucket, new),
            **placement.response_headers(),
            **body.response_headers(),
            **({"x-amz-checksum-type": FULL_OBJECT} if checksum else {}),
        }
    )


def check_write_conditions(
    headers: Mapping[str, str], key: str, current: ObjectVersion | None
) -> None:
    """If-Match / If-None-Match on a write (PutObject, CompleteMultipartUpload): If-Match on
    a missing key is 404 NoSuchKey, as in S3; otherwise 412 PreconditionFailed when the
    current version (None: no object) fails a condition."""
    live = current if current is not None and not current.is_delete_marker else None
    if live is None and "if-match" in headers:
        raise errors.no_such_key(key)
    check_preconditions(
        headers,
        etag=live.etag if live else None,
        last_modified=live.created if live else None,
        method="PUT",
    )


def full_object_checksum(kept: tuple[str, str] | None) -> ObjectChecksum | None:
    """The checksum a one-blob object keeps, from (algorithm, base64)."""
    return ObjectChecksum(kept[0].upper(), FULL_OBJECT, kept[1]) if kept else None


def checksum_headers(version: ObjectVersion) -> dict[str, str]:
    """What HEAD/GET with `x-amz-checksum-mode: ENABLED` show: the checksum the object keeps
    (the client's, or the CRC64NVME default) and its type; nothing for a version written
    before checksums were kept."""
    if not (version.checksum_algorithm and version.checksum):
        return {}
    return {
        f"x-amz-checksum-{version.checksum_algorithm.lower()}": version.checksum,
        "x-amz-checksum-type": version.checksum_type or FULL_OBJECT,
    }


def object_headers(version: ObjectVersion, locations: list[str]) -> dict[str, str]:
    headers = {
        "ETag": quote_etag(version.etag),
        "Last-Modified": http_date(version.created),
        "Accept-Ranges": "bytes",
        "Content-Type": version.content_type or "binary/octet-stream",
        "x-residency-class": version.data_class,
        "x-residency-locations": ",".join(locations),
    }
    if version.subject:
        headers["x-residency-subject"] = version.subject
    if version.rule:
        headers["x-residency-rule"] = version.rule
    headers.update(version.content_headers or {})
    for name, value in version.user_metadata.items():
        headers[META_PREFIX + name] = metadata_header(value)
    if version.tags:
        headers["x-amz-tagging-count"] = str(len(version.tags))
    if version.part_count:
        headers["x-amz-mp-parts-count"] = str(version.part_count)
    return headers


def _latin1_safe(headers: dict[str, str]) -> dict[str, str]:
    """HTTP header values are latin-1; S3 RFC 2047-encodes others, we percent-encode them."""
    safe: dict[str, str] = {}
    for name, value in headers.items():
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            value = quote(value, safe=" !#$&'()*+,/:;=?@[]~")
        safe[name] = value
    return safe


@dataclass(frozen=True, slots=True)
class ReadTarget:
    """The version of an object a read addresses (the current one unless it names another),
    which the caller may read, where its bytes are, and its `x-amz-version-id` header."""

    ref: ObjectRef
    version: ObjectVersion
    segments: list[SegmentRef]
    locations: list[str]
    version_headers: dict[str, str]


async def find_object(
    ctx: RequestContext, bucket_name: str, key: str, version_id: str | None
) -> ObjectLookup:
    """The bucket and the addressed version in one read hop (the current version on the GET
    hot path's single statement); NoSuchBucket without the bucket."""
    if version_id is None:
        found = await ctx.gw.db.read_driver(lookup_object, load_object, bucket_name, key)
    else:
        found = await ctx.gw.db.read(load_object_version, bucket_name, key, version_id)
    if found is None:
        raise errors.no_such_bucket(bucket_name)
    return found


async def read_target(
    ctx: RequestContext,
    bucket_name: str,
    key: str,
    *,
    action: Action | None = None,
    version_id: str | None = None,
) -> ReadTarget:
    """Resolve and authorize a read (GET/HEAD, or the source of a copy) in one read hop."""
    found = await find_object(ctx, bucket_name, key, version_id)
    locations = [p.location for p in found.placements]
    ref = await authorize.check_object(
        ctx, found.bucket, key, found.version, locations=locations, action=action
    )
    if found.version is None:
        raise missing(found.marker, key, version_id)
    segments = [SegmentRef(s.blob_key, s.size, s.checksum) for s in found.segments]
    shown = version_headers(found.bucket, found.version)
    return ReadTarget(ref, found.version, segments, locations, shown)


async def _get_or_head(ctx: RequestContext, *, with_body: bool) -> Response:
    version_id = requested_version(ctx.query)
    target = await read_target(ctx, ctx.bucket, ctx.key, version_id=version_id)
    version, segments, locations = target.version, target.segments, target.locations
    check_preconditions(
        ctx.headers, etag=version.etag, last_modified=version.created, method=ctx.request.method
    )
    headers = object_headers(version, locations)
    headers.update(target.version_headers)
    part: int | None = None
    if "partNumber" in ctx.query:
        part = part_number(ctx.query["partNumber"])
        byte_range = part_range(ctx, part, version, segments)
    else:
        byte_range = parse_range(ctx.headers.get("range"), version.size)
    for param, header in _RESPONSE_OVERRIDES.items():
        if param in ctx.query:
            headers[header] = ctx.query[param]
    status = 200
    start, end = 0, version.size - 1
    if byte_range is not None and byte_range.length == 0:
        start, end = byte_range.start, byte_range.end  # an empty last part: no bytes, no range
    elif byte_range is not None:
        status = 206
        start, end = byte_range.start, byte_range.end
        headers["Content-Range"] = byte_range.content_range
    if ctx.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
        if part is not None:
            headers.update(part_checksum_headers(target, part))
        elif byte_range is None or byte_range.length == version.size:
            # The whole object, ranged or not: its checksum describes what is sent, as S3.
            headers.update(checksum_headers(version))
    length = end - start + 1
    headers["Content-Length"] = str(length)
    headers = _latin1_safe(headers)
    if not with_body or length == 0:
        return Response(b"", status_code=status, headers=headers)
    await authorize.charge_read(ctx, target.ref)
    reader = ReplicaReader(ctx.key, ctx.gw.locations, locations)
    if length <= SMALL_BODY:
        # One buffer no larger than a streamed chunk, sent in one piece: no streaming task
        # group, and a read that fails on every replica is still a clean S3 error.
        body = b"".join([chunk async for chunk in reader.read(segments, start, end)])
        return Response(body, status_code=status, headers=headers)
    if offers_pathsend(ctx.request.scope):
        # A whole object in one local file: the server sends it (no bytes through Python).
        path = await reader.local_file(segments, start, end)
        if path is not None:
            return PathSendResponse(path, status, headers)
    chunks: AsyncIterator[bytes] = await prefetch(reader.read(segments, start, end))
    return StreamingResponse(chunks, status_code=status, headers=headers)


def whole_number(value: str) -> int | None:
    """A small non-negative decimal (`http.decimal` of at most 9 digits), else None."""
    return decimal(value) if len(value.strip()) <= 9 else None


def part_number(value: str, maximum: int = 10_000) -> int:
    number = whole_number(value)
    if number is None or not 1 <= number <= maximum:
        raise errors.invalid_argument(
            f"Part number must be an integer between 1 and {maximum}, inclusive",
            name="partNumber",
            value=value,
        )
    return number


def part_range(
    ctx: RequestContext, number: int, version: ObjectVersion, segments: list[SegmentRef]
) -> ByteRange | None:
    """GET/HEAD `?partNumber=N`: the bytes of part N of a multipart object (a one-blob object
    is its own part 1); None for the whole of an empty object, an empty range for an empty
    last part of a non-empty one (S3 takes a 0-byte last part)."""
    if ctx.headers.get("range"):
        raise errors.invalid_request(
            "Cannot specify both Range header and partNumber query parameter"
        )
    sizes = [s.size for s in segments] if version.part_count else [version.size]
    if number > len(sizes):
        raise errors.S3Error(
            "InvalidPartNumber", "The requested partnumber is not satisfiable", 416
        )
    start = sum(sizes[: number - 1])
    if version.size == 0:
        return None
    return ByteRange(start, start + sizes[number - 1] - 1, version.size)


def part_checksum_headers(target: ReadTarget, number: int) -> dict[str, str]:
    """What GET/HEAD `?partNumber=N` with `x-amz-checksum-mode: ENABLED` show, as S3 does:
    a COMPOSITE object's part N checksum (type COMPOSITE); the object's own checksum when
    part N is all of it (a one-blob object, a one-part upload); otherwise nothing, since a
    FULL_OBJECT checksum does not describe a part and a client would check the part's bytes
    against it."""
    version = target.version
    if not (version.checksum_algorithm and version.checksum):
        return {}
    if version.part_count and version.checksum_type == COMPOSITE:
        segments = target.segments
        found = segments[number - 1].checksum if number <= len(segments) else None
        if not found:  # a part written before part checksums were kept
            return {}
        return {
            f"x-amz-checksum-{version.checksum_algorithm.lower()}": found,
            "x-amz-checksum-type": COMPOSITE,
        }
    sizes = [s.size for s in target.segments] if version.part_count else [version.size]
    if sizes[number - 1] == version.size:
        return checksum_headers(version)
    return {}


async def get_object(ctx: RequestContext) -> Response:
    return await _get_or_head(ctx, with_body=True)


async def head_object(ctx: RequestContext) -> Response:
    return await _get_or_head(ctx, with_body=False)


async def _remove(
    bucket: Bucket, key: str, version_id: str | None, session: AsyncSession
) -> tuple[Deleted, dict[str, Any] | None]:
    """Delete the current version (versioning off), add a delete marker (versioning on), or
    delete the version named. Returns the answer and what the audit entry must say (None
    when nothing changed)."""
    detail: dict[str, Any] = {"key": key}
    if version_id is None:
        deletion = await delete_object(session, bucket, key)
        removed, marker = deletion.removed, deletion.marker
        done = Deleted(key)
        if marker is not None:
            detail["delete_marker"] = marker.version_id
            done = Deleted(key, delete_marker=True, delete_marker_version_id=marker.s3_version_id)
    else:
        removed, marker = await delete_version(session, bucket, key, version_id), None
        detail["s3_version_id"] = version_id
        done = Deleted(key, version_id, removed is not None and removed.is_delete_marker)
    if removed is not None:
        detail["version_id"] = removed.version_id
    return done, detail if removed is not None or marker is not None else None


async def _delete_one(
    ctx: RequestContext, bucket: Bucket, key: str, version_id: str | None, session: AsyncSession
) -> Deleted:
    """`_remove`, audited in the same transaction."""
    done, detail = await _remove(bucket, key, version_id, session)
    if detail is not None:
        action = "delete_object" if version_id is None else "delete_version"
        await ctx.audit(session, DELETE, f"s3://{bucket.name}/{key}", {"action": action, **detail})
    return done


def _delete_headers(done: Deleted) -> dict[str, str]:
    headers = {"x-amz-delete-marker": "true"} if done.delete_marker else {}
    shown = done.version_id or done.delete_marker_version_id
    if shown:
        headers["x-amz-version-id"] = shown
    return headers


async def delete_object_handler(ctx: RequestContext) -> Response:
    version_id = requested_version(ctx.query)
    async with ctx.gw.db.session() as session:
        bucket = await authorize.object_bucket(session, ctx)
        target = await _target(session, bucket, ctx.key, version_id)
        await authorize.check_object(
            ctx, bucket, ctx.key, target.version, locations=target.locations, session=session
        )
        done = await _delete_one(ctx, bucket, ctx.key, version_id, session)
    return empty_response(204, headers=_delete_headers(done))


@dataclass(frozen=True, slots=True)
class _Target:
    """The row a delete addresses (`pk` None: nothing) and, for an access decision, the
    version with bytes it is (None for nothing or a delete marker) and its locations."""

    pk: int | None
    version: ObjectVersion | None
    locations: tuple[str, ...]


async def _target(
    session: AsyncSession, bucket: Bucket, key: str, version_id: str | None
) -> _Target:
    row = await find_addressed(session, bucket, key, version_id)
    if row is None:
        return _Target(None, None, ())
    if row.is_delete_marker:
        return _Target(row.id, None, ())
    _, placements = await version_blobs(session, row)
    return _Target(row.id, row, tuple(p.location for p in placements))


def _require_integrity_header(ctx: RequestContext) -> None:
    """DeleteObjects must carry Content-MD5 or an `x-amz-checksum-*` (header or declared
    trailer), as S3 requires; `request_body` then verifies it before anything is deleted."""
    names = ctx.headers.keys()
    trailers = ctx.headers.get("x-amz-trailer", "").lower()
    if (
        "content-md5" in names
        or any(
            name.startswith(CHECKSUM_PREFIX) and name not in NOT_CHECKSUM_HEADERS for name in names
        )
        or CHECKSUM_PREFIX in trailers
    ):
        return
    raise errors.invalid_request("Missing required header for this request: Content-MD5")


async def delete_objects(ctx: RequestContext) -> Response:
    """Up to 1,000 keys: decided outside the write lock, deleted in one short transaction
    (in a bucket with versioning, or naming versions, `_delete_versions`).

    The latest versions are read and Cedar decides every key first (in chunks, the event loop
    serving other requests between them); then one write transaction deletes the allowed keys
    whose latest version is still the one decided on, re-deciding the rare key that changed
    in between, and records one audit entry for the whole batch.
    """
    _require_integrity_header(ctx)
    request = parse_delete(await read_body(request_body(ctx.request, ctx.auth)))
    failed: list[DeleteError] = []
    wanted: list[ObjectIdentifier] = []
    for obj in request.objects:
        if obj.version_id is not None and not is_version_id(obj.version_id):
            failed.append(
                DeleteError(
                    obj.key,
                    "NoSuchVersion",
                    "The specified version does not exist.",
                    obj.version_id,
                )
            )
            continue
        try:
            check_object_key(obj.key)
        except MetaError as exc:
            failed.append(DeleteError(obj.key, "InvalidArgument", exc.message))
            continue
        wanted.append(obj)
    keys = list(dict.fromkeys(obj.key for obj in wanted))
    async with ctx.gw.db.session(write=False) as session:
        bucket = await authorize.object_bucket(session, ctx)
        by_version = bucket.versioning is not None or any(
            obj.version_id not in (None, NULL_VERSION) for obj in wanted
        )
        current = {} if by_version else await latest_versions(session, bucket.id, keys)
    if by_version:
        done = await _delete_versions(ctx, wanted) if wanted else []
        failed += [d for d in done if isinstance(d, DeleteError)]
        kept = [d for d in done if isinstance(d, Deleted)]
        return xml_response(delete_result(kept, failed, quiet=request.quiet))
    refused: dict[str, str] = {}
    if keys:
        refs = await authorize.object_refs(ctx, bucket, _delete_facts(keys, current))
        decisions = await authorize.decide_deletes(ctx, refs)
        decided = _Decided(current, dict(zip(keys, zip(refs, decisions, strict=True), strict=True)))
        refused = await ctx.gw.db.write(_delete_decided, ctx, keys, decided)
    deleted: list[Deleted] = []
    for obj in wanted:
        refusal = refused.get(obj.key)
        if refusal is not None:
            failed.append(DeleteError(obj.key, "AccessDenied", refusal))
        else:
            deleted.append(Deleted(obj.key, obj.version_id))
    return xml_response(delete_result(deleted, failed, quiet=request.quiet))


async def _delete_versions(
    ctx: RequestContext, wanted: list[ObjectIdentifier]
) -> list[Deleted | DeleteError]:
    """DeleteObjects in a bucket with versioning, or naming versions: each entry deletes the
    version it names or adds a delete marker. As for plain batches, Cedar decides every entry
    on what it addresses before the write lock; the write then re-decides only the entries
    whose addressed row changed meanwhile."""
    async with ctx.gw.db.session(write=False) as session:
        bucket = await authorize.object_bucket(session, ctx)
        targets = [await _target(session, bucket, o.key, o.version_id) for o in wanted]
    refs = await authorize.object_refs(
        ctx, bucket, [(o.key, t.version, t.locations) for o, t in zip(wanted, targets, strict=True)]
    )
    decisions = await authorize.decide_deletes(ctx, refs)
    decided = list(zip(targets, refs, decisions, strict=True))
    return await ctx.gw.db.write(_delete_decided_versions, ctx, wanted, decided)


async def _delete_decided_versions(
    session: AsyncSession,
    ctx: RequestContext,
    wanted: list[ObjectIdentifier],
    decided: list[tuple[_Target, ObjectRef, AccessDecision | None]],
) -> list[Deleted | DeleteError]:
    bucket = await authorize.object_bucket(session, ctx)
    await lock_keys(session, bucket.id, [obj.key for obj in wanted])
    decisions = [(ref, decision) for _, ref, decision in decided]
    changed: list[tuple[int, _Target]] = []
    for i, (obj, (before, _, _)) in enumerate(zip(wanted, decided, strict=True)):
        row = await find_addressed(session, bucket, obj.key, obj.version_id)
        if (row.id if row is not None else None) != before.pk:
            changed.append((i, await _target(session, bucket, obj.key, obj.version_id)))
    if changed:  # written or deleted since the decision: decide again on what is there now
        refs = await authorize.object_refs(
            ctx,
            bucket,
            [(wanted[i].key, now.version, now.locations) for i, now in changed],
            session=session,
        )
        again = await authorize.decide_deletes(ctx, refs, session=session, whole_request=False)
        for (i, _), ref, decision in zip(changed, refs, again, strict=True):
            decisions[i] = (ref, decision)
    await authorize.audit_refused_deletes(
        session, ctx, [(ref, d) for ref, d in decisions if d is not None]
    )
    done: list[Deleted | DeleteError] = []
    changes: list[dict[str, Any]] = []
    for obj, (_, decision) in zip(wanted, decisions, strict=True):
        if decision is not None:
            done.append(DeleteError(obj.key, "AccessDenied", decision.message, obj.version_id))
            continue
        deleted, detail = await _remove(bucket, obj.key, obj.version_id, session)
        done.append(deleted)
        if detail is not None:
            changes.append(detail)
    if changes:  # one entry for the batch, as for plain batches
        await ctx.audit(
            session, DELETE, f"s3://{bucket.name}", {"action": "delete_objects", "deleted": changes}
        )
    return done


Decision = tuple[ObjectRef, AccessDecision | None]


@dataclass(frozen=True, slots=True)
class _Decided:
    """What DeleteObjects decided before its write: the latest versions it saw, and per key
    the resource judged and the decision (None: allowed)."""

    current: dict[str, Current]
    decisions: dict[str, Decision]


def _delete_facts(
    keys: list[str], current: dict[str, Current]
) -> list[tuple[str, ObjectVersion | None, tuple[str, ...]]]:
    """(key, live version or None, its locations) per key, as an access decision sees it."""
    facts: list[tuple[str, ObjectVersion | None, tuple[str, ...]]] = []
    for key in keys:
        found = current.get(key)
        if found is None or found.version.is_delete_marker:
            facts.append((key, None, ()))
        else:
            facts.append((key, found.version, found.locations))
    return facts


def _pk(found: Current | Latest | None) -> int | None:
    if found is None:
        return None
    return found.version.id if isinstance(found, Current) else found.id


async def _delete_decided(
    session: AsyncSession, ctx: RequestContext, keys: list[str], decided: _Decided
) -> dict[str, str]:
    """The write half of DeleteObjects: returns the refused keys with the reason."""
    bucket = await authorize.object_bucket(session, ctx)
    await lock_keys(session, bucket.id, keys)
    now = await latest_ids(session, bucket.id, keys)
    decisions = dict(decided.decisions)
    changed = [k for k in keys if _pk(now.get(k)) != _pk(decided.current.get(k))]
    if changed:  # overwritten or deleted since the decision: decide again on what is there now
        fresh = await latest_versions(session, bucket.id, changed)
        refs = await authorize.object_refs(
            ctx, bucket, _delete_facts(changed, fresh), session=session
        )
        again = await authorize.decide_deletes(ctx, refs, session=session, whole_request=False)
        decisions.update(zip(changed, zip(refs, again, strict=True), strict=True))
    refused = [(key, ref, d) for key, (ref, d) in decisions.items() if d is not None]
    await authorize.audit_refused_deletes(session, ctx, [(ref, d) for _, ref, d in refused])
    victims = [now[k] for k in keys if k in now and decisions[k][1] is None]
    await delete_versions(session, [v.id for v in victims])
    if victims:
        await ctx.audit(
            session,
            DELETE,
            f"s3://{bucket.name}",
            {
                "action": "delete_objects",
                "deleted": [{"key": v.key, "version_id": v.version_id} for v in victims],
            },
        )
    return {key: d.message for key, _, d in refused}
