"""The least an ASGI app can do under granian: serve files from disk, nothing else.

`bench/gateway.py` runs it with the same granian settings as `residency serve` (HTTP/1, uvloop,
no websockets, same worker count) as the ceiling for any Starlette/ASGI gateway on this
machine: no auth, no metadata, no policy. Small files are read and sent as one body, large ones
through `http.response.pathsend`, exactly as residency does.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]

ROOT = os.environ.get("GRANIAN_FLOOR_ROOT", ".")
INLINE_MAX = 1024 * 1024


async def app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    path = os.path.join(ROOT, scope["path"].lstrip("/"))
    try:
        size = os.stat(path).st_size
    except OSError:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    headers = [(b"content-length", str(size).encode()), (b"content-type", b"binary/octet-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if size > INLINE_MAX and "http.response.pathsend" in scope.get("extensions", {}):
        await send({"type": "http.response.pathsend", "path": path})
        return
    # One pread on the loop, as residency reads small ranges: cheaper than a thread hop.
    fd = os.open(path, os.O_RDONLY)
    try:
        body = os.pread(fd, size, 0)
    finally:
        os.close(fd)
    await send({"type": "http.response.body", "body": body})
