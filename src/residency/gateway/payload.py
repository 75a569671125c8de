"""The request body of a write, decoded and verified while it streams (`gateway.checksum`).

A client that goes away mid-body ends the stream with IncompleteBody, so the storage writer
sees a failed source and removes what it wrote.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request

from residency.gateway import errors
from residency.gateway.checksum import VerifiedBody, verified_body
from residency.gateway.sigv4 import RequestParts, VerifiedAuth

MAX_OBJECT_SIZE = 5 * 1024**4
"""5 TiB, S3's largest object (and part upload ceiling is 5 GiB, checked by the handler)."""


async def _raw(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise errors.incomplete_body(
            "The client disconnected before the body was complete."
        ) from None


def request_body(
    request: Request,
    auth: VerifiedAuth | None,
    *,
    max_size: int = MAX_OBJECT_SIZE,
    header_checksums: bool = True,
) -> VerifiedBody:
    """Header-level problems (bad Content-MD5, unknown checksum, too large) raise right here,
    before a byte is read; body-level ones raise from iteration. `header_checksums=False`
    when an `x-amz-checksum-*` header describes something else (CompleteMultipartUpload)."""
    body = verified_body(
        _raw(request),
        RequestParts.from_scope(request.scope),
        auth,
        header_checksums=header_checksums,
    )
    size = body.expected_size
    if size is not None and size > max_size:
        raise errors.entity_too_large(proposed_size=size, max_size_allowed=max_size)
    return body
