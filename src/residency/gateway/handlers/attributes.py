"""GetObjectAttributes: ETag, Checksum, ObjectParts, StorageClass and ObjectSize in one call
(HeadObject and ListParts of a completed object together)."""

from __future__ import annotations

from starlette.responses import Response

from residency.gateway import authorize, errors
from residency.gateway.checksum import FULL_OBJECT
from residency.gateway.context import RequestContext
from residency.gateway.handlers.common import xml_response
from residency.gateway.handlers.objects import find_object, whole_number
from residency.gateway.http import http_date
from residency.gateway.versions import missing, requested_version, version_headers
from residency.gateway.xml import ObjectPartEntry, object_attributes_result

ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
MAX_PARTS = 1000


def _wanted(ctx: RequestContext) -> set[str]:
    raw = ctx.headers.get("x-amz-object-attributes", "")
    wanted = {name.strip() for name in raw.split(",") if name.strip()}
    unknown = sorted(wanted - set(ATTRIBUTES))
    if not wanted or unknown:
        raise errors.invalid_argument(
            "Invalid attribute name specified."
            if unknown
            else "x-amz-object-attributes must name at least one of " + ", ".join(ATTRIBUTES),
            name="x-amz-object-attributes",
            value=raw,
        )
    return wanted


def _number(ctx: RequestContext, header: str, default: int) -> int:
    value = ctx.headers.get(header)
    if value is None:
        return default
    number = whole_number(value)
    if number is None:
        raise errors.invalid_argument(
            f"{header} must be a non-negative integer", name=header, value=value
        )
    return number


async def get_object_attributes(ctx: RequestContext) -> Response:
    version_id = requested_version(ctx.query)
    wanted = _wanted(ctx)
    max_parts = min(_number(ctx, "x-amz-max-parts", MAX_PARTS), MAX_PARTS)
    marker = _number(ctx, "x-amz-part-number-marker", 0)
    found = await find_object(ctx, ctx.bucket, ctx.key, version_id)
    locations = [p.location for p in found.placements]
    await authorize.check_object(ctx, found.bucket, ctx.key, found.version, locations=locations)
    version = found.version
    if version is None:
        raise missing(found.marker, ctx.key, version_id)
    algorithm = version.checksum_algorithm
    checksums = {algorithm: version.checksum} if algorithm and version.checksum else {}
    parts: list[ObjectPartEntry] = []
    next_marker: int | None = None
    truncated = False
    if "ObjectParts" in wanted and version.part_count and algorithm:
        # As S3: the Part elements only when the object has a checksum to show per part.
        later = [
            ObjectPartEntry(number, s.size, {algorithm: s.checksum} if s.checksum else {})
            for number, s in enumerate(found.segments, 1)
            if number > marker
        ]
        parts = later[:max_parts]
        truncated = len(later) > max_parts
        next_marker = parts[-1].part_number if parts and truncated else None
    body = object_attributes_result(
        etag=version.etag.strip('"') if "ETag" in wanted else None,
        checksums=checksums if "Checksum" in wanted else None,
        checksum_type=version.checksum_type or FULL_OBJECT,
        parts=parts,
        parts_count=version.part_count if "ObjectParts" in wanted else None,
        part_number_marker=marker,
        next_part_number_marker=next_marker,
        max_parts=max_parts,
        is_truncated=truncated,
        storage_class="STANDARD" if "StorageClass" in wanted else None,
        object_size=version.size if "ObjectSize" in wanted else None,
    )
    return xml_response(
        body,
        headers={
            "Last-Modified": http_date(version.created),
            **version_headers(found.bucket, version),
        },
    )
