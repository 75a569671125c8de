"""One log line per request: method, path, status, bytes, milliseconds, request id.

Pure ASGI middleware so streamed bodies are counted as they leave, and the line is written when
the response really ends (or the client goes away). Query strings are left out: presigned URLs
carry signatures there. What the client chose (the path, so the key) is written through
`loggable`: a key with `%0A` in it must not forge a line of the log.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from residency.gateway.jsonlog import REQUEST_ID

if TYPE_CHECKING:
    from residency.gateway.telemetry import Telemetry

log = logging.getLogger("residency.gateway")


def _escape(ch: str) -> str:
    if ch.isprintable():
        return ch
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def loggable(text: str, *, backslash: bool = True) -> str:
    """`text` on one line, as `repr` would show it: every character that is not printable
    (controls, line and paragraph separators, bidi overrides, any whitespace but the space)
    written as an escape (`\\x0a`, `\\u2028`), so a value can never end a log line or start
    a forged one. With `backslash` the backslash itself is doubled, so an escape in the log
    is unambiguous (the log formatter, which sees values escaped already, passes False)."""
    if text.isprintable() and (not backslash or "\\" not in text):
        return text
    return "".join("\\\\" if backslash and ch == "\\" else _escape(ch) for ch in text)


def new_request_id() -> str:
    """16 upper-case hex characters, like S3's `x-amz-request-id`."""
    return os.urandom(8).hex().upper()


def access_fields(
    scope: Scope, status: int, received: int, sent: int, elapsed_ms: float
) -> dict[str, Any]:
    """An access line's fields for `--log-format json` (the text line ignores them)."""
    client = scope.get("client")
    return {
        "method": scope["method"],
        "path": scope.get("path", ""),
        "status": status or None,
        "operation": scope["state"].get("operation"),
        "bytes_in": received,
        "bytes_out": sent,
        "duration_ms": round(elapsed_ms, 3),
        "client": client[0] if client else None,
    }


class AccessLog:
    """Assign a request id (in `scope["state"]["request_id"]` and `jsonlog.REQUEST_ID`), log
    the outcome, and count it in `telemetry` when the server keeps metrics."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry | None = None) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 0
        sent = 0
        declared = 0
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal status, sent, declared
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", ()):
                    if name.lower() == b"content-length":
                        declared = int(value)
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            elif message["type"] == "http.response.pathsend":
                sent += declared  # the server sends the file itself
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            if self.telemetry is not None:
                self.telemetry.record(scope["state"], status, received, sent, elapsed_ms / 1000)
            log.info(
                "%s %s %s %dB %.1fms id=%s",
                loggable(str(scope["method"])),
                loggable(str(scope.get("path", ""))),
                status or "-",
                sent,
                elapsed_ms,
                request_id,
                extra={"access": access_fields(scope, status, received, sent, elapsed_ms)},
            )
            REQUEST_ID.reset(token)
