"""Re-chunking: whatever sizes a source yields, the data path moves bounded, sizeable chunks.

Bounded, so that memory is queue depth × chunk size however large the source's chunks are;
sizeable, so that an HTTP body arriving in 8 KiB pieces does not become thousands of tiny
backend writes.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

__all__ = ["DEFAULT_CHUNK_SIZE", "rechunk"]

DEFAULT_CHUNK_SIZE = 1 << 20


async def rechunk(
    chunks: AsyncIterable[bytes | bytearray | memoryview], size: int = DEFAULT_CHUNK_SIZE
) -> AsyncIterator[bytes]:
    """Yield `size`-byte chunks (the last may be shorter), copying only to split or join."""
    if size <= 0:
        raise ValueError("chunk size must be positive")
    buffer = bytearray()
    async for piece in chunks:
        if not piece:
            continue
        if not buffer and len(piece) == size and isinstance(piece, bytes):
            yield piece
            continue
        view = memoryview(piece).cast("B")
        start = 0
        if buffer:
            take = min(size - len(buffer), len(view))
            buffer += view[:take]
            start = take
            if len(buffer) < size:
                continue
            yield bytes(buffer)
            buffer.clear()
        while len(view) - start >= size:
            yield bytes(view[start : start + size])
            start += size
        buffer += view[start:]
    if buffer:
        yield bytes(buffer)
