"""Keep HTTP/1.1 connections sane when a response is sent before the request body was read.

The gateway refuses many writes before reading their body (ResidencyViolation, AccessDenied,
PreconditionFailed...). Unread body bytes would otherwise be parsed as the next request on a
keep-alive connection. Small leftovers are drained and discarded; for large ones the response
carries `Connection: close`, as S3 does, rather than pulling gigabytes nobody will store.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_DRAIN = 1024 * 1024
DRAIN_TIMEOUT = 20.0


class UnreadBodyGuard:
    """Drain a small unread body, or close the connection, before an early answer.

    No draining when the client sent `Expect: 100-continue` and nothing was read yet (it is
    waiting for our go-ahead and may never send: reading would send `100 Continue` first,
    inviting a body we will not store), when the answer already closes the connection (e.g.
    RequestTimeout), or when the leftover is large or takes longer than `drain_timeout`
    seconds to arrive: the answer then carries `Connection: close` instead.
    """

    def __init__(
        self, app: ASGIApp, max_drain: int = MAX_DRAIN, drain_timeout: float = DRAIN_TIMEOUT
    ) -> None:
        self.app = app
        self.max_drain = max_drain
        self.drain_timeout = drain_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        done = False
        started = False
        received = 0
        declared = _declared_length(scope)

        async def tracking_receive() -> Message:
            nonlocal done, received, started
            started = True
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                done = not message.get("more_body", False)
            elif message["type"] == "http.disconnect":
                done = True
            return message

        async def drain() -> bool:
            """Read and drop the rest of the body; False if it did not come in time."""
            try:
                async with asyncio.timeout(self.drain_timeout):
                    while not done:
                        await tracking_receive()
            except TimeoutError:
                return False
            return True

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not done and _has_body(scope):
                headers = message.get("headers", [])
                remaining = None if declared is None else declared - received
                drainable = (
                    remaining is not None
                    and remaining <= self.max_drain
                    and (started or not _expects_continue(scope))
                    and not _closes(headers)
                )
                if not drainable or not await drain():
                    headers = [(k, v) for k, v in headers if k.lower() != b"connection"]
                    headers.append((b"connection", b"close"))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, tracking_receive, guarded_send)


def _expects_continue(scope: Scope) -> bool:
    return any(
        name == b"expect" and bytes(value).strip().lower() == b"100-continue"
        for name, value in scope.get("headers", ())
    )


def _closes(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(
        k.lower() == b"connection" and bytes(v).strip().lower() == b"close" for k, v in headers
    )


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return bytes(value).strip() != b"0"
        if name == b"transfer-encoding":
            return True
    return False
