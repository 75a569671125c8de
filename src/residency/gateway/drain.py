"""Keep HTTP/1.1 connections sane when a response is sent before the request body was read.

The gateway refuses many writes before reading their body (ResidencyViolation, AccessDenied,
PreconditionFailed...). Unread body bytes would otherwise be parsed as the next request on a
keep-alive connection. Small leftovers are drained and discarded; for large ones the response
carries `Connection: close`, as S3 does, rather than pulling gigabytes nobody will store.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_DRAIN = 1024 * 1024


class UnreadBodyGuard:
    def __init__(self, app: ASGIApp, max_drain: int = MAX_DRAIN) -> None:
        self.app = app
        self.max_drain = max_drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        done = False
        received = 0
        declared = _declared_length(scope)

        async def tracking_receive() -> Message:
            nonlocal done, received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                done = not message.get("more_body", False)
            elif message["type"] == "http.disconnect":
                done = True
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal done
            if message["type"] == "http.response.start" and not done and _has_body(scope):
                remaining = None if declared is None else declared - received
                if remaining is not None and remaining <= self.max_drain:
                    while not done:
                        await tracking_receive()
                else:
                    headers = [
                        (k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"
                    ]
                    headers.append((b"connection", b"close"))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, tracking_receive, guarded_send)


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
