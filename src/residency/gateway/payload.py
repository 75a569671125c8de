"""The request body of a write, decoded and verified while it streams (`gateway.checksum`).

A client that goes away mid-body ends the stream with IncompleteBody, and one that stops
sending for `Settings.body_idle_timeout` seconds with RequestTimeout, so the storage writer
sees a failed source and removes what it wrote.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request

from residency.gateway import errors
from residency.gateway.checksum import VerifiedBody, verified_body
from residency.gateway.sigv4 import RequestParts, VerifiedAuth

MAX_OBJECT_SIZE = 5 * 1024**4
"""5 TiB, S3's largest object (and part upload ceiling is 5 GiB, checked by the handler)."""


DEFAULT_IDLE_TIMEOUT = 20.0
"""Seconds without a byte of body before RequestTimeout (`Settings.body_idle_timeout`)."""
DEFAULT_MIN_RATE = 1024
"""Bytes per second a body must average over each idle-timeout span spent waiting for the
client (`Settings.body_min_rate`)."""


@dataclass(frozen=True, slots=True)
class BodyPace:
    """How slowly a client may send its body before it gets RequestTimeout."""

    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    min_rate: int = DEFAULT_MIN_RATE

    @classmethod
    def of(cls, request: Request) -> BodyPace:
        """The app's settings (the defaults when the app has no gateway state)."""
        settings = getattr(getattr(request.app.state, "gateway", None), "settings", None)
        if settings is None:
            return cls()
        return cls(float(settings.body_idle_timeout), int(settings.body_min_rate))


async def _raw(request: Request) -> AsyncIterator[bytes]:
    """The body as it arrives. No byte for `idle_timeout` seconds, or fewer than `min_rate`
    bytes/s over `idle_timeout` seconds of waiting for the client, is RequestTimeout (the
    answer closes the connection): a client trickling bytes cannot hold a request open.
    Only time spent waiting for the client counts, not time spent storing what it sent."""
    pace = BodyPace.of(request)
    stream = request.stream()
    waited = 0.0
    arrived = 0
    try:
        while True:
            started = time.monotonic()
            try:
                # A timer per read, not a task per read (`wait_for`): big bodies are many reads.
                async with asyncio.timeout(pace.idle_timeout):
                    chunk = await anext(stream)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise errors.request_timeout() from None
            waited += time.monotonic() - started
            arrived += len(chunk)
            if waited >= pace.idle_timeout:
                if arrived < pace.min_rate * waited:
                    raise errors.request_timeout()
                waited, arrived = 0.0, 0
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise errors.incomplete_body(
            "The client disconnected before the body was complete."
        ) from None
    finally:
        await stream.aclose()


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
