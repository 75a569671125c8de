"""Multipart uploads: placement decided at creation, parts written to every chosen location,
completion commits a manifest of the part blobs (no concatenation)."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from residency.audit.kinds import DELETE, PLACEMENT
from residency.gateway import authorize, errors
from residency.gateway.checksum import Digesting
from residency.gateway.context import RequestContext
from residency.gateway.handlers.common import empty_response, owner, quote_etag, xml_response
from residency.gateway.handlers.copy import copy_source_headers, load_source, source_stream
from residency.gateway.handlers.objects import (
    check_write_conditions,
    checked_key,
    content_headers,
    request_tags,
    user_metadata,
)
from residency.gateway.http import (
    check_copy_source_conditions,
    decimal,
    parse_copy_source,
    parse_copy_source_range,
)
from residency.gateway.multipart_checksums import (
    Completion,
    UploadChecksum,
    check_part_request,
    creation_choice,
    part_checksum,
)
from residency.gateway.payload import request_body
from residency.gateway.versions import version_headers
from residency.gateway.writes import Inherited, audit_placement, decide, recheck, write_blob
from residency.gateway.xml import (
    CompletedPart,
    PartEntry,
    UploadEntry,
    complete_multipart_upload_result,
    copy_part_result,
    initiate_multipart_upload_result,
    list_multipart_uploads_result,
    list_parts_result,
    parse_complete_multipart_upload,
    read_body,
)
from residency.meta.errors import NoSuchUpload
from residency.meta.models import (
    Bucket,
    MultipartPart,
    MultipartUpload,
    ObjectVersion,
    Principal,
    Tenant,
)
from residency.meta.repo import multipart as mp
from residency.meta.repo.objects import find_latest, version_blobs
from residency.meta.specs import Checksums
from residency.meta.writes import abandon_intents, lock_key
from residency.storage import BlobInfo

MAX_PART_SIZE = 5 * 1024**3


def _part_number(ctx: RequestContext) -> int:
    value = ctx.query.get("partNumber", "")
    number = decimal(value)
    if number is None or not 1 <= number <= mp.MAX_PART_NUMBER:
        raise errors.invalid_argument(
            f"Part number must be an integer between 1 and {mp.MAX_PART_NUMBER}, inclusive",
            name="partNumber",
            value=value,
        )
    return number


async def _upload(ctx: RequestContext, session: AsyncSession) -> tuple[Bucket, MultipartUpload]:
    """The request's upload, if the caller may manage it (judged as the object it will make)."""
    bucket = await authorize.object_bucket(session, ctx)
    upload_id = ctx.query.get("uploadId", "")
    try:
        upload = await mp.get_upload(session, bucket, ctx.key, upload_id)
    except NoSuchUpload:
        await authorize.check_object(ctx, bucket, ctx.key, None, session=session)
        raise errors.no_such_upload(upload_id) from None
    await authorize.check_object(ctx, bucket, ctx.key, upload, session=session)
    return bucket, upload


def _classified(upload: MultipartUpload) -> Inherited:
    return Inherited(upload.data_class, upload.subject, upload.subject_count)


async def create_multipart_upload(ctx: RequestContext) -> Response:
    key = checked_key(ctx.key)
    meta = user_metadata(ctx.headers)
    tags = request_tags(ctx.headers)
    algorithm, checksum_type = creation_choice(ctx.headers)
    async with ctx.gw.db.session(write=False) as session:
        bucket = await authorize.object_bucket(session, ctx)
    placement = await decide(ctx, bucket, key, user_metadata=meta, tags=tags)
    attrs = replace(
        placement.version_attrs(
            content_type=ctx.headers.get("content-type"),
            user_metadata=meta,
            tags=tags,
        ),
        content_headers=content_headers(ctx.headers),
    )
    async with ctx.gw.db.session() as session:
        bucket = await authorize.object_bucket(session, ctx)
        tenant = await session.get(Tenant, ctx.identity.tenant_id)
        principal = await session.get(Principal, ctx.identity.principal_id)
        assert tenant is not None
        upload = await mp.create_upload(
            session,
            bucket,
            key,
            attrs,
            tenant=tenant,
            principal=principal,
            locations=placement.locations,
            checksum_algorithm=algorithm,
            checksum_type=checksum_type,
        )
        upload_id = upload.upload_id
        await audit_placement(
            session,
            ctx,
            f"s3://{ctx.bucket}/{key}",
            placement,
            upload_id=upload_id,
            phase="multipart upload created",
        )
    headers = placement.response_headers()
    if algorithm and checksum_type:
        headers["x-amz-checksum-algorithm"] = algorithm
        headers["x-amz-checksum-type"] = checksum_type
    return xml_response(
        initiate_multipart_upload_result(ctx.bucket, key, upload_id), headers=headers
    )


async def _store_part(
    ctx: RequestContext,
    upload: MultipartUpload,
    number: int,
    blob_key: str,
    info: BlobInfo,
    checksum: str | None,
) -> MultipartPart:
    refs = [(name, blob_key) for name in upload.locations]
    try:
        async with ctx.gw.db.session() as session:
            return await mp.put_part(
                session,
                upload,
                number,
                blob_key=blob_key,
                size=info.size,
                etag=info.etag,
                checksums=Checksums.from_digests(info),
                checksum=checksum,
            )
    except BaseException:
        async with ctx.gw.db.session() as session:
            await abandon_intents(session, refs)
        raise


async def upload_part(ctx: RequestContext) -> Response:
    number = _part_number(ctx)
    async with ctx.gw.db.session(write=False) as session:
        bucket, upload = await _upload(ctx, session)
    await recheck(ctx, bucket, ctx.key, _classified(upload), upload.locations, doing="UploadPart")
    body = request_body(ctx.request, ctx.auth, max_size=MAX_PART_SIZE)
    sent = body.expect.checksum.algorithm if body.expect.checksum else None
    check_part_request(upload, sent or ctx.headers.get("x-amz-sdk-checksum-algorithm"))
    chosen = UploadChecksum.of(upload)
    body.also_compute(chosen.algorithm)  # the upload's, whatever the client sent
    blob_key, info = await write_blob(
        ctx.gw, upload.locations, body, expect_size=body.expected_size
    )
    value = body.digests[chosen.algorithm]
    await _store_part(ctx, upload, number, blob_key, info, value)
    headers = {"ETag": quote_etag(info.etag), f"x-amz-checksum-{chosen.algorithm}": value}
    return empty_response(headers={**headers, **body.response_headers()})


async def upload_part_copy(ctx: RequestContext) -> Response:
    number = _part_number(ctx)
    async with ctx.gw.db.session(write=False) as session:
        bucket, upload = await _upload(ctx, session)
    source = parse_copy_source(ctx.headers["x-amz-copy-source"])
    src = await load_source(ctx, source)
    version, segments, locations = src.version, src.segments, src.locations
    # The upload's places must suit both the object being built and the bytes copied in.
    await recheck(
        ctx, bucket, ctx.key, _classified(upload), upload.locations, doing="UploadPartCopy"
    )
    source_class = Inherited(version.data_class, version.subject, version.subject_count)
    await recheck(ctx, bucket, ctx.key, source_class, upload.locations, doing="UploadPartCopy")
    check_copy_source_conditions(ctx.headers, etag=version.etag, last_modified=version.created)
    range_header = ctx.headers.get("x-amz-copy-source-range")
    if range_header:
        byte_range = parse_copy_source_range(range_header, version.size)
        start, end = byte_range.start, byte_range.end
    else:
        start, end = 0, version.size - 1
    if end - start + 1 > MAX_PART_SIZE:
        raise errors.entity_too_large(proposed_size=end - start + 1, max_size_allowed=MAX_PART_SIZE)
    await authorize.charge_read(ctx, src.ref)
    chosen = UploadChecksum.of(upload)
    chunks = Digesting(
        source_stream(ctx, source.key, segments, locations, start, end), chosen.algorithm
    )
    blob_key, info = await write_blob(ctx.gw, upload.locations, chunks, expect_size=end - start + 1)
    value = chunks.value
    part = await _store_part(ctx, upload, number, blob_key, info, value)
    shown = {chosen.name: value} if chosen.explicit and value else None
    return xml_response(
        copy_part_result(quote_etag(info.etag), part.created, shown),
        headers=copy_source_headers(src),
    )


async def complete_multipart_upload(ctx: RequestContext) -> Response:
    # An `x-amz-checksum-*` header here is the whole object's checksum, not the XML body's.
    requested = parse_complete_multipart_upload(
        await read_body(request_body(ctx.request, ctx.auth, header_checksums=False))
    )
    _check_conditional_complete(ctx)
    try:
        return await _complete(ctx, requested)
    except (errors.S3Error, NoSuchUpload) as exc:
        code = exc.code
        if code != "NoSuchUpload":
            raise
        # Completed already (a retry after a lost answer): S3 answers with the same result.
        done = await _completed_before(ctx, ctx.query.get("uploadId", ""))
        if done is None:
            raise
        return done


def _check_conditional_complete(ctx: RequestContext) -> None:
    """Complete takes `If-None-Match: *` (only if the key is free) or `If-Match: <etag>`
    (only over that version), as PutObject does; other forms are NotImplemented, as in S3."""
    if_match, if_none_match = ctx.headers.get("if-match"), ctx.headers.get("if-none-match")
    if if_match is not None and if_none_match is not None:
        raise errors.not_implemented("CompleteMultipartUpload with both If-Match and If-None-Match")
    if if_none_match is not None and if_none_match.strip() != "*":
        raise errors.not_implemented("CompleteMultipartUpload with If-None-Match other than *")


async def _complete(ctx: RequestContext, requested: list[CompletedPart]) -> Response:
    async with ctx.gw.db.session(write=False) as session:
        bucket, upload = await _upload(ctx, session)
    completion = Completion(upload, ctx.headers, requested)
    await recheck(
        ctx, bucket, ctx.key, _classified(upload), upload.locations, doing="CompleteMultipartUpload"
    )
    async with ctx.gw.db.session() as session:
        bucket, upload = await _upload(ctx, session)
        upload_id = upload.upload_id
        if "if-match" in ctx.headers or "if-none-match" in ctx.headers:
            await lock_key(session, bucket.id, ctx.key)  # held until the version is in
            check_write_conditions(
                ctx.headers, ctx.key, await find_latest(session, bucket, ctx.key)
            )
        commit = await mp.complete_upload(
            session,
            upload,
            [(p.part_number, p.etag) for p in requested],
            bucket=bucket,
            checksum=completion,
        )
        version = commit.version
        await ctx.audit(
            session,
            PLACEMENT,
            f"s3://{ctx.bucket}/{ctx.key}",
            {
                "phase": "multipart upload completed",
                "upload_id": upload_id,
                "version_id": version.version_id,
                "rule": version.rule,
                "data_class": version.data_class,
                "subject": version.subject,
                "locations": list(upload.locations),
                "parts": len(requested),
                "size": version.size,
                "etag": version.etag,
            },
        )
        locations = list(upload.locations)
    return _completed(ctx, bucket, version, locations)


async def _completed_before(ctx: RequestContext, upload_id: str) -> Response | None:
    """The answer to a Complete of an upload that already made the key's current version."""
    async with ctx.gw.db.session(write=False) as session:
        bucket = await authorize.object_bucket(session, ctx)
        version = await find_latest(session, bucket, ctx.key)
        if version is None or version.is_delete_marker or version.upload_id != upload_id:
            return None
        _, placements = await version_blobs(session, version)
        locations = [p.location for p in placements]
        await authorize.check_object(
            ctx, bucket, ctx.key, version, locations=locations, session=session
        )
    return _completed(ctx, bucket, version, locations)


def _completed(
    ctx: RequestContext, bucket: Bucket, version: ObjectVersion, locations: list[str]
) -> Response:
    """CompleteMultipartUploadResult for the version an upload made."""
    checksums: dict[str, str] = {}
    if version.checksum_algorithm and version.checksum:
        checksums[version.checksum_algorithm] = version.checksum
    url = f"{ctx.request.base_url}{ctx.bucket}/{ctx.key}"
    return xml_response(
        complete_multipart_upload_result(
            location=url,
            bucket=ctx.bucket,
            key=ctx.key,
            etag=quote_etag(version.etag),
            checksums=checksums,
            checksum_type=version.checksum_type,
        ),
        headers={
            "x-residency-locations": ",".join(locations),
            "x-residency-rule": version.rule or "",
            **version_headers(bucket, version),
        },
    )


async def abort_multipart_upload(ctx: RequestContext) -> Response:
    async with ctx.gw.db.session() as session:
        _, upload = await _upload(ctx, session)
        upload_id = upload.upload_id
        parts = await mp.abort_upload(session, upload)
        await ctx.audit(
            session,
            DELETE,
            f"s3://{ctx.bucket}/{ctx.key}",
            {"action": "abort_multipart_upload", "upload_id": upload_id, "parts": parts},
        )
    return empty_response(204)


def _int_param(ctx: RequestContext, name: str, default: int) -> int:
    value = ctx.query.get(name)
    if value is None:
        return default
    number = decimal(value)
    if number is None:
        raise errors.invalid_argument(
            f"{name} must be a non-negative integer", name=name, value=value
        )
    return number


async def list_parts(ctx: RequestContext) -> Response:
    marker = _int_param(ctx, "part-number-marker", 0)
    max_parts = min(_int_param(ctx, "max-parts", mp.MAX_LISTED), mp.MAX_LISTED)
    async with ctx.gw.db.session(write=False) as session:
        _, upload = await _upload(ctx, session)
        listing = await mp.list_parts(
            session, upload, part_number_marker=marker, max_parts=max_parts
        )
        chosen = UploadChecksum.of(upload)
        parts = []
        for p in listing.parts:
            value = part_checksum(upload, p)
            parts.append(
                PartEntry(
                    part_number=p.part_number,
                    last_modified=p.created,
                    etag=quote_etag(p.etag),
                    size=p.size,
                    checksums={chosen.name: value} if value else {},
                )
            )
        body = list_parts_result(
            bucket=ctx.bucket,
            key=ctx.key,
            upload_id=upload.upload_id,
            part_number_marker=marker,
            next_part_number_marker=listing.next_part_number_marker,
            max_parts=max_parts,
            is_truncated=listing.is_truncated,
            parts=parts,
            owner=owner(ctx),
            checksum_algorithm=chosen.name,
            checksum_type=chosen.type,
        )
    return xml_response(body)


async def list_multipart_uploads(ctx: RequestContext) -> Response:
    key_marker = ctx.query.get("key-marker", "")
    upload_id_marker = ctx.query.get("upload-id-marker", "")
    max_uploads = min(_int_param(ctx, "max-uploads", mp.MAX_LISTED), mp.MAX_LISTED)
    prefix = ctx.query.get("prefix", "")
    async with ctx.gw.db.session(write=False) as session:
        bucket = await authorize.bucket(session, ctx)
        listing = await mp.list_uploads(
            session,
            bucket,
            prefix=prefix,
            key_marker=key_marker,
            upload_id_marker=upload_id_marker,
            max_uploads=max_uploads,
        )
        who = owner(ctx)
        entries = [UploadEntry(u.key, u.upload_id, u.initiated, who) for u in listing.uploads]
    return xml_response(
        list_multipart_uploads_result(
            bucket=ctx.bucket,
            key_marker=key_marker,
            upload_id_marker=upload_id_marker,
            max_uploads=max_uploads,
            is_truncated=listing.is_truncated,
            uploads=entries,
            prefix=prefix,
            next_key_marker=listing.next_key_marker,
            next_upload_id_marker=listing.next_upload_id_marker,
            encoding_type=ctx.query.get("encoding-type"),
        )
    )
