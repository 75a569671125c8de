"""Streaming an object version's bytes from its replicas, with failover between them.

A version is a list of segments (one for a simple object, one per part for a multipart
manifest) held at every placement location. A byte range is served segment by segment; when a
location fails (down, blob missing) the read resumes at the exact same offset from the next
replica, so a client sees one uninterrupted body as long as any replica holds the bytes.

A whole single-segment version whose replica is a local file can instead be sent by the HTTP
server itself (`local_file`): the file is opened first, so a missing or unreadable replica
still fails over before any header is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from residency.gateway.errors import S3Error
from residency.storage import Location, local_io
from residency.storage.errors import StorageError

log = logging.getLogger("residency.gateway")


@dataclass(frozen=True, slots=True)
class SegmentRef:
    blob_key: str
    size: int
    checksum: str | None = None
    """A multipart object's part checksum (`Segment.checksum`), for `?partNumber=N` reads."""


def unavailable(key: str, tried: Sequence[str]) -> S3Error:
    return S3Error(
        "ServiceUnavailable",
        f"No replica of {key!r} can be read right now (tried: {', '.join(tried) or 'none'}).",
        503,
    )


class ReplicaReader:
    """Reads ranges of a version, switching replicas on failure; remembers which failed."""

    def __init__(
        self, key: str, locations: Mapping[str, Location], placements: Sequence[str]
    ) -> None:
        self.key = key
        self.candidates = [locations[name] for name in placements if name in locations]
        self.failed: list[str] = []

    def _current(self) -> Location:
        for loc in self.candidates:
            if loc.name not in self.failed:
                return loc
        raise unavailable(self.key, self.failed)

    def _failed(self, loc: Location, exc: Exception) -> None:
        log.warning(
            "read of %s from %s failed (%s); trying another replica", self.key, loc.name, exc
        )
        self.failed.append(loc.name)

    async def local_file(self, segments: Sequence[SegmentRef], start: int, end: int) -> Path | None:
        """The file holding exactly bytes `start..end`, for the server to send; else None.

        Only a whole single-segment version qualifies, and only when the replica it would be
        read from is a plain local file (`Location.local_path`): otherwise it is streamed, so
        replica order and failover stay what `read` does. The file is opened here and must
        have the segment's size; a replica failing that check is skipped like a failed read.
        Raises the 503 of `read` when no replica is left.
        """
        if len(segments) != 1 or start != 0 or end != segments[0].size - 1:
            return None
        seg = segments[0]
        while True:
            loc = self._current()
            path = loc.local_path(seg.blob_key)
            if path is None:
                return None
            try:
                size = await asyncio.to_thread(local_io.readable_size, path, loc.name, seg.blob_key)
            except StorageError as exc:
                self._failed(loc, exc)
                continue
            if size == seg.size:
                return path
            self._failed(
                loc,
                StorageError(
                    f"blob holds {size} bytes, expected {seg.size}",
                    location=loc.name,
                    key=seg.blob_key,
                ),
            )

    async def read(
        self, segments: Sequence[SegmentRef], start: int, end: int
    ) -> AsyncIterator[bytes]:
        """Bytes `start..end` (inclusive) of the concatenation of `segments`."""
        seg_offset = 0
        for seg in segments:
            seg_end = seg_offset + seg.size - 1
            if seg.size and seg_end >= start and seg_offset <= end:
                first = max(start, seg_offset) - seg_offset
                last = min(end, seg_end) - seg_offset
                async for chunk in self._read_segment(seg, first, last - first + 1):
                    yield chunk
            seg_offset += seg.size
            if seg_offset > end:
                break

    async def _read_segment(
        self, seg: SegmentRef, offset: int, length: int
    ) -> AsyncIterator[bytes]:
        done = 0
        while done < length:
            loc = self._current()
            try:
                async for chunk in loc.read(seg.blob_key, offset + done, length - done):
                    if not chunk:
                        continue
                    chunk = chunk[: length - done]
                    done += len(chunk)
                    yield chunk
                    if done >= length:
                        break
                if done < length:
                    raise StorageError(
                        f"blob ended after {offset + done} bytes, expected {offset + length}",
                        location=loc.name,
                        key=seg.blob_key,
                    )
            except (StorageError, OSError) as exc:
                self._failed(loc, exc)


async def prefetch(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Pull the first chunk now, so "no replica readable" is an S3 error, not a cut body."""
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = b""

    async def rest() -> AsyncIterator[bytes]:
        if first:
            yield first
        async for chunk in chunks:
            yield chunk

    return rest()
