"""The small interface every location backend and every layer speaks.

A `BlobStore` is what OpenDAL's `Accessor` is to an `Operator`: the raw operations, already
raising `StorageError`s. Layers (see `layers.py`) wrap one store in another, so retry,
concurrency limits and fault injection never leak into a backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from residency.storage.blobs import BlobStat

__all__ = ["BlobReader", "BlobStore", "BlobWriter"]


class BlobWriter(Protocol):
    """A blob being written. Nothing is visible under the key as complete before `commit`."""

    async def write(self, data: bytes) -> None: ...

    async def commit(self) -> None:
        """Flush and finish; the blob is durable when this returns."""
        ...

    async def abort(self) -> None:
        """Give up and remove whatever part of the blob was stored; never raises."""
        ...


class BlobReader(Protocol):
    """A (possibly ranged) read that streams from the backend."""

    async def read(self, size: int) -> bytes:
        """Up to `size` bytes; b"" at the end of the range or blob."""
        ...

    async def close(self) -> None: ...


class BlobStore(Protocol):
    """One location's bytes. Every method raises `StorageError` subclasses only."""

    @property
    def name(self) -> str:
        """The location name, used in error messages."""
        ...

    async def open_writer(
        self, key: str, *, part_size: int | None = None, concurrency: int = 1
    ) -> BlobWriter:
        """Start a write. Object stores upload it in `part_size` parts, `concurrency` of them
        in flight (memory: about (concurrency + 1) x part_size); local disks just stream."""
        ...

    async def open_reader(self, key: str, offset: int, length: int | None) -> BlobReader: ...

    async def stat(self, key: str) -> BlobStat: ...

    async def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> AsyncIterator[BlobStat]: ...

    async def check(self) -> None: ...
