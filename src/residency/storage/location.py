"""A `Location`: a configured place for bytes — its name, catalog facts and store."""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from types import TracebackType

from residency.catalog.facts import LocationFacts
from residency.config import LocationConfig
from residency.storage.blobs import BlobInfo, BlobStat, validate_key
from residency.storage.layers import Layer
from residency.storage.opendal_store import OpendalStore
from residency.storage.replicate import DEFAULT_QUEUE_DEPTH, write_to_stores
from residency.storage.store import BlobReader, BlobStore
from residency.storage.streams import DEFAULT_CHUNK_SIZE

__all__ = ["BlobStream", "Location"]


class BlobStream:
    """An open read whose first chunk is already fetched.

    Because opening fetches data, a missing blob or a dead location fails in `Location.open`,
    before a gateway has sent response headers, so it can still fail over or answer 404.
    """

    def __init__(self, reader: BlobReader | None, first: bytes, chunk_size: int) -> None:
        self._reader = reader
        self._pending: bytes | None = first
        self._chunk_size = chunk_size

    def __aiter__(self) -> BlobStream:
        return self

    async def __anext__(self) -> bytes:
        if self._pending is not None:
            data, self._pending = self._pending, None
        elif self._reader is not None:
            data = await self._reader.read(self._chunk_size)
        else:
            data = b""
        if not data:
            await self.aclose()
            raise StopAsyncIteration
        return data

    async def aclose(self) -> None:
        reader, self._reader, self._pending = self._reader, None, None
        if reader is not None:
            await reader.close()

    async def __aenter__(self) -> BlobStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class Location:
    """A named place for bytes, with the facts the policy engine reasons about.

    All methods raise `StorageError` subclasses whose messages name the location and key.
    """

    def __init__(
        self,
        config: LocationConfig,
        facts: LocationFacts,
        store: BlobStore,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        self.config = config
        self.facts = facts
        self.store = store
        self.chunk_size = chunk_size

    @property
    def name(self) -> str:
        return self.config.name

    def __repr__(self) -> str:
        return f"Location({self.name!r}, scheme={self.config.scheme!r})"

    def layer(self, layer: Layer) -> Location:
        """This location with `layer` wrapped around its store (like `Operator.layer`)."""
        return Location(
            self.config, self.facts, layer.layer(self.store), chunk_size=self.chunk_size
        )

    async def write(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        expect_size: int | None = None,
        queue_depth: int = DEFAULT_QUEUE_DEPTH,
    ) -> BlobInfo:
        """Stream `chunks` into a blob, computing checksums; all or nothing."""
        return await write_to_stores(
            [self.store],
            key,
            chunks,
            expect_size=expect_size,
            chunk_size=self.chunk_size,
            queue_depth=queue_depth,
        )

    async def open(
        self, key: str, offset: int = 0, length: int | None = None, *, chunk_size: int | None = None
    ) -> BlobStream:
        """Start a ranged read now: errors surface here, the bytes come from the stream.

        The range is clamped to the blob like an HTTP range: past the end yields nothing.
        """
        validate_key(key, location=self.name)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        size = chunk_size or self.chunk_size
        if length == 0:
            await self.store.stat(key)  # still report a missing blob
            return BlobStream(None, b"", size)
        reader = await self.store.open_reader(key, offset, length)
        try:
            first = await reader.read(size)
        except BaseException:
            await reader.close()
            raise
        return BlobStream(reader, first, size)

    async def read(
        self, key: str, offset: int = 0, length: int | None = None, *, chunk_size: int | None = None
    ) -> AsyncIterator[bytes]:
        """Stream `length` bytes (or to the end) from `offset`, in chunks of at most chunk_size."""
        stream = await self.open(key, offset, length, chunk_size=chunk_size)
        async with stream:
            async for chunk in stream:
                yield chunk

    def local_path(self, key: str) -> Path | None:
        """The file holding blob `key` on an `fs` location, for a server to send it itself.

        None when the bytes are not a plain local file, or when Python layers wrap the store
        (their behaviour, e.g. injected faults, would be bypassed). The path is exactly the one
        OpenDAL's `fs` backend uses (root joined with the key); `validate_key` refuses keys that
        could alias or climb out, and the joined path is checked to stay under the root.
        """
        store = self.store
        if not isinstance(store, OpendalStore):
            return None
        root = store.fs_root
        if root is None:
            return None
        validate_key(key, location=self.name)
        path = os.path.normpath(os.path.join(root, key))
        if os.path.commonpath([root, path]) != str(root) or path == str(root):
            return None
        return Path(path)

    async def stat(self, key: str) -> BlobStat:
        """Size of the blob in one cheap request (HEAD on object stores)."""
        return await self.store.stat(validate_key(key, location=self.name))

    async def delete(self, key: str) -> None:
        """Remove the blob; deleting a missing blob is not an error."""
        await self.store.delete(validate_key(key, location=self.name))

    def list(self, prefix: str = "") -> AsyncIterator[BlobStat]:
        """Every blob whose key starts with `prefix`, streamed page by page (bounded memory)."""
        return self.store.list(prefix)

    async def check(self) -> None:
        """Raise `LocationUnavailable` unless the location answers."""
        await self.store.check()
