"""Helpers every handler uses: XML responses, error translation."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import Response

from residency.gateway import errors
from residency.gateway.context import RequestContext
from residency.gateway.errors import S3Error
from residency.gateway.xml import Owner
from residency.meta.errors import MetaError


def xml_response(
    body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        body, status_code=status, headers=dict(headers or {}), media_type="application/xml"
    )


def empty_response(status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(b"", status_code=status, headers=dict(headers or {}))


def owner(ctx: RequestContext) -> Owner:
    return Owner(id=ctx.identity.tenant, display_name=ctx.identity.tenant)


def from_meta(exc: MetaError) -> S3Error:
    """A meta domain error as the S3 error it stands for (its `code` says which)."""
    if exc.code in errors.STATUS:
        return S3Error(exc.code, exc.message)
    return errors.invalid_argument(exc.message)


def quote_etag(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'
