"""Read a large blob as several concurrent range requests, yielding its bytes in order.

One stream per object is bound by one connection's throughput (a few tens of MB/s to a
distant object store); `streams` ranges in flight multiply it. Each range is read whole
before it is handed on, so memory stays under `streams x part_size`, whatever the object's
size. The last range reads to the end of the blob, so a source that grew since it was
recorded shows up as a size mismatch downstream instead of being cut silently.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from residency.storage import Location, SizeMismatch

__all__ = ["ranged_read"]


async def _read_range(source: Location, key: str, offset: int, length: int | None) -> list[bytes]:
    chunks = [chunk async for chunk in source.read(key, offset, length)]
    got = sum(map(len, chunks))
    if length is not None and got != length:
        # A short middle range would splice the next one in at the wrong offset.
        raise SizeMismatch(
            expected=offset + length, actual=offset + got, location=source.name, key=key
        )
    return chunks


async def ranged_read(
    source: Location, key: str, size: int, *, part_size: int, streams: int
) -> AsyncIterator[bytes]:
    """The bytes of `key` (recorded as `size` bytes), read `streams` ranges at a time."""
    if part_size < 1 or streams < 1:
        raise ValueError("part_size and streams must be at least 1")
    starts = list(range(0, max(size, 1), part_size))
    pending: deque[asyncio.Task[list[bytes]]] = deque()
    next_part = 0

    def launch() -> None:
        nonlocal next_part
        while next_part < len(starts) and len(pending) < streams:
            offset = starts[next_part]
            last = next_part == len(starts) - 1
            length = None if last else part_size
            pending.append(asyncio.create_task(_read_range(source, key, offset, length)))
            next_part += 1

    try:
        launch()
        while pending:
            chunks = await pending.popleft()
            launch()
            for chunk in chunks:
                yield chunk
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
