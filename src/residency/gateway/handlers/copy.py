"""CopyObject: a new write checked against the policy, streamed replica-to-replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from starlette.responses import Response

from residency.access import Action
from residency.gateway import authorize, errors
from residency.gateway.checksum import ALGORITHMS, DEFAULT_ALGORITHM, Digesting
from residency.gateway.context import RequestContext
from residency.gateway.handlers.common import quote_etag, xml_response
from residency.gateway.handlers.objects import (
    ReadTarget,
    checked_key,
    commit_simple,
    content_headers,
    full_object_checksum,
    read_target,
    request_tags,
    user_metadata,
)
from residency.gateway.http import CopySource, check_copy_source_conditions, parse_copy_source
from residency.gateway.reads import ReplicaReader, SegmentRef
from residency.gateway.versions import check_version_id, version_headers
from residency.gateway.writes import Inherited, decide, write_blob
from residency.gateway.xml import copy_object_result
from residency.meta.models import ObjectVersion


async def load_source(ctx: RequestContext, source: CopySource) -> ReadTarget:
    """The source version (`?versionId=` in the copy source, else the current one), if the
    caller may read it (ReadObject).

    Its bulk-data charge (`authorize.charge_read`) is left to the caller, once the
    destination is known to be allowed too.
    """
    version_id = None if source.version_id is None else check_version_id(source.version_id)
    try:
        return await read_target(
            ctx, source.bucket, source.key, action=Action.READ_OBJECT, version_id=version_id
        )
    except errors.S3Error as exc:
        if exc.code == "MethodNotAllowed":  # the version named is a delete marker
            raise errors.invalid_request(
                "The source of a copy request may not specifically refer to a delete marker "
                "by version id."
            ) from None
        raise


def copy_source_headers(src: ReadTarget) -> dict[str, str]:
    """`x-amz-copy-source-version-id`: the source version copied, when it has an id to show."""
    return {f"x-amz-copy-source-{k[len('x-amz-') :]}": v for k, v in src.version_headers.items()}


def source_stream(
    ctx: RequestContext,
    key: str,
    segments: list[SegmentRef],
    locations: list[str],
    start: int,
    end: int,
) -> AsyncIterator[bytes]:
    if end < start:

        async def empty() -> AsyncIterator[bytes]:
            return
            yield b""

        return empty()
    return ReplicaReader(key, ctx.gw.locations, locations).read(segments, start, end)


def _copy_checksum_algorithm(ctx: RequestContext, source: ObjectVersion) -> str:
    """A copy is one new blob with a FULL_OBJECT checksum: of `x-amz-checksum-algorithm`
    when asked, else of the source's algorithm, else S3's default (CRC64NVME)."""
    asked: str | None = ctx.headers.get("x-amz-checksum-algorithm")
    if asked is not None:
        if asked.strip().lower() not in ALGORITHMS:
            raise errors.invalid_request(
                "Checksum algorithm provided is unsupported. Please try again with any of "
                f"the valid types: [{', '.join(a.upper() for a in ALGORITHMS)}]"
            )
        return asked.strip().lower()
    return str(source.checksum_algorithm or DEFAULT_ALGORITHM).lower()


async def copy_object(ctx: RequestContext) -> Response:
    key = checked_key(ctx.key)
    source = parse_copy_source(ctx.headers["x-amz-copy-source"])
    async with ctx.gw.db.session(write=False) as session:
        bucket = await authorize.object_bucket(session, ctx)
    try:
        src = await load_source(ctx, source)
    except errors.S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchVersion"):
            # A caller who may not write the destination learns nothing about sources.
            await authorize.check_object(ctx, bucket, key, None)
        raise
    version, segments, locations = src.version, src.segments, src.locations
    check_copy_source_conditions(ctx.headers, etag=version.etag, last_modified=version.created)
    metadata_directive = ctx.headers.get("x-amz-metadata-directive", "COPY").upper()
    tagging_directive = ctx.headers.get("x-amz-tagging-directive", "COPY").upper()
    for name, value in (
        ("x-amz-metadata-directive", metadata_directive),
        ("x-amz-tagging-directive", tagging_directive),
    ):
        if value not in ("COPY", "REPLACE"):
            raise errors.invalid_argument(f"Unknown {name}", name=name, value=value)
    if (source.bucket, source.key) == (ctx.bucket, key) and metadata_directive == "COPY":
        raise errors.invalid_request(
            "This copy request is illegal because it is trying to copy an object to itself "
            "without changing the object's metadata, storage class, website redirect location "
            "or encryption attributes."
        )
    if metadata_directive == "REPLACE":
        meta = user_metadata(ctx.headers)
        content_type = ctx.headers.get("content-type")
        kept_headers = content_headers(ctx.headers)
    else:
        meta = dict(version.user_metadata)
        content_type = version.content_type
        kept_headers = dict(version.content_headers or {})
    tags = request_tags(ctx.headers) if tagging_directive == "REPLACE" else dict(version.tags)

    # The copy is what its source is; only values this request states (REPLACE) restate it,
    # never metadata or tags carried over from the source.
    inherited = Inherited(version.data_class, version.subject, version.subject_count)
    placement = await decide(
        ctx,
        bucket,
        key,
        user_metadata=meta if metadata_directive == "REPLACE" else {},
        tags=tags if tagging_directive == "REPLACE" else {},
        inherited=inherited,
    )
    await authorize.charge_read(ctx, src.ref)
    chunks = Digesting(
        source_stream(ctx, source.key, segments, locations, 0, version.size - 1),
        _copy_checksum_algorithm(ctx, version),
    )
    blob_key, info = await write_blob(ctx.gw, placement.locations, chunks, expect_size=version.size)
    attrs = replace(
        placement.version_attrs(content_type=content_type, user_metadata=meta, tags=tags),
        content_headers=kept_headers,
    )
    new = await commit_simple(
        ctx,
        ctx.bucket,
        key,
        placement,
        attrs,
        blob_key,
        info,
        full_object_checksum((chunks.algorithm, chunks.value) if chunks.value else None),
        copied_from=f"s3://{source.bucket}/{source.key}",
        copied_version=version.version_id,
    )
    return xml_response(
        copy_object_result(quote_etag(info.etag), new.created),
        headers={
            **placement.response_headers(),
            **version_headers(bucket, new),
            **copy_source_headers(src),
        },
    )
