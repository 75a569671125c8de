"""ListObjects (V1), ListObjectsV2 and ListObjectVersions: prefix, delimiter, pagination,
url encoding, owner."""

from __future__ import annotations

import base64
import binascii

from starlette.responses import Response

from residency.gateway import authorize, errors
from residency.gateway.context import RequestContext
from residency.gateway.handlers.common import owner, quote_etag, xml_response
from residency.gateway.http import decimal
from residency.gateway.xml import (
    ObjectEntry,
    Owner,
    VersionEntry,
    list_objects_v1,
    list_objects_v2,
    list_versions_result,
)
from residency.meta.models import ObjectVersion
from residency.meta.repo.objects import MAX_KEYS, Listing, list_objects
from residency.meta.repo.versions import list_versions


def _max_keys(ctx: RequestContext) -> int:
    value = ctx.query.get("max-keys")
    if value is None:
        return MAX_KEYS
    number = decimal(value)
    if number is None:
        raise errors.invalid_argument(
            "Provided max-keys not an integer or within integer range",
            name="max-keys",
            value=value,
        )
    return min(number, MAX_KEYS)


def _encoding(ctx: RequestContext) -> str | None:
    value = ctx.query.get("encoding-type")
    if value is None:
        return None
    if value.lower() != "url":
        raise errors.invalid_argument(
            "Invalid Encoding Method specified in Request", name="encoding-type", value=value
        )
    return "url"


def _entries(rows: list[ObjectVersion], who: Owner | None) -> list[ObjectEntry]:
    return [
        ObjectEntry(
            key=v.key, last_modified=v.created, etag=quote_etag(v.etag), size=v.size, owner=who
        )
        for v in rows
    ]


def encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(marker.encode("utf-8")).decode("ascii")


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise errors.invalid_argument(
            "The continuation token provided is incorrect",
            name="continuation-token",
            value=token,
        ) from None


async def _list(ctx: RequestContext, *, start_after: str) -> Listing:
    async with ctx.gw.db.session(write=False) as session:
        bucket = await authorize.bucket(session, ctx)
        return await list_objects(
            session,
            bucket,
            prefix=ctx.query.get("prefix", ""),
            delimiter=ctx.query.get("delimiter", ""),
            start_after=start_after,
            max_keys=_max_keys(ctx),
        )


async def list_objects_v1_handler(ctx: RequestContext) -> Response:
    marker = ctx.query.get("marker", "")
    encoding = _encoding(ctx)
    listing = await _list(ctx, start_after=marker)
    delimiter = ctx.query.get("delimiter") or None
    body = list_objects_v1(
        bucket=ctx.bucket,
        prefix=ctx.query.get("prefix", ""),
        marker=marker,
        max_keys=_max_keys(ctx),
        is_truncated=listing.is_truncated,
        contents=_entries(list(listing.objects), owner(ctx)),
        common_prefixes=listing.common_prefixes,
        delimiter=delimiter,
        next_marker=listing.next_marker if listing.is_truncated else None,
        encoding_type=encoding,
    )
    return xml_response(body)


async def list_objects_v2_handler(ctx: RequestContext) -> Response:
    token = ctx.query.get("continuation-token")
    start_after = ctx.query.get("start-after")
    encoding = _encoding(ctx)
    resume = decode_token(token) if token else ""
    listing = await _list(ctx, start_after=max(resume, start_after or ""))
    fetch_owner = ctx.query.get("fetch-owner", "false").lower() == "true"
    body = list_objects_v2(
        bucket=ctx.bucket,
        prefix=ctx.query.get("prefix", ""),
        max_keys=_max_keys(ctx),
        is_truncated=listing.is_truncated,
        contents=_entries(list(listing.objects), owner(ctx) if fetch_owner else None),
        common_prefixes=list(listing.common_prefixes),
        delimiter=ctx.query.get("delimiter") or None,
        start_after=start_after,
        continuation_token=token,
        next_continuation_token=(
            encode_token(listing.next_marker)
            if listing.is_truncated and listing.next_marker is not None
            else None
        ),
        encoding_type=encoding,
        fetch_owner=fetch_owner,
    )
    return xml_response(body)


async def list_object_versions_handler(ctx: RequestContext) -> Response:
    """Every version and delete marker, newest first within a key (a bucket that never had
    versioning lists each object once, as its `null` version)."""
    key_marker = ctx.query.get("key-marker", "")
    version_id_marker = ctx.query.get("version-id-marker", "")
    encoding = _encoding(ctx)
    max_keys = _max_keys(ctx)
    async with ctx.gw.db.session(write=False) as session:
        bucket = await authorize.bucket(session, ctx)
        page = await list_versions(
            session,
            bucket,
            prefix=ctx.query.get("prefix", ""),
            delimiter=ctx.query.get("delimiter", ""),
            key_marker=key_marker,
            version_id_marker=version_id_marker,
            max_keys=max_keys,
        )
    who = owner(ctx)
    entries = [
        VersionEntry(
            key=v.key,
            version_id=v.s3_version_id,
            is_latest=v.is_latest,
            last_modified=v.created,
            owner=who,
            delete_marker=v.is_delete_marker,
            etag=quote_etag(v.etag),
            size=v.size,
        )
        for v in page.versions
    ]
    body = list_versions_result(
        bucket=ctx.bucket,
        prefix=ctx.query.get("prefix", ""),
        key_marker=key_marker,
        version_id_marker=version_id_marker,
        max_keys=max_keys,
        is_truncated=page.is_truncated,
        entries=entries,
        common_prefixes=page.common_prefixes,
        delimiter=ctx.query.get("delimiter") or None,
        next_key_marker=page.next_key_marker,
        next_version_id_marker=page.next_version_id_marker,
        encoding_type=encoding,
    )
    return xml_response(body)
