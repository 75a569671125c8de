"""One log line per request: method, path, status, bytes, milliseconds, request id.

Pure ASGI middleware so streamed bodies are counted as they leave, and the line is written when
the response really ends (or the client goes away). Query strings are left out: presigned URLs
carry signatures there.
"""

from __future__ import annotations

import logging
import os
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("residency.gateway")


def new_request_id() -> str:
    """16 upper-case hex characters, like S3's `x-amz-request-id`."""
    return os.urandom(8).hex().upper()


class AccessLog:
    """Assign a request id (in `scope["state"]["request_id"]`) and log the outcome."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 0
        sent = 0
        declared = 0

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
            await self.app(scope, receive, counting_send)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            log.info(
                "%s %s %s %dB %.1fms id=%s",
                scope["method"],
                scope.get("path", ""),
                status or "-",
                sent,
                elapsed_ms,
                request_id,
            )
