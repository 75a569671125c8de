"""The one backend: a `BlobStore` over an OpenDAL `AsyncOperator`, for every scheme.

Scheme differences stay inside OpenDAL. Two things are added here: the `fs` root guard (OpenDAL
creates missing parent directories on write, so a deleted or unmounted root would silently be
recreated and reads would look like "not found"; a missing root means the location is down),
and blocking whole-blob calls for worker threads, which on `fs` go straight to the OS
(`local_io`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from functools import cached_property
from pathlib import Path
from typing import Any

import opendal

from residency.storage import local_io
from residency.storage.blobs import BlobStat
from residency.storage.errors import (
    BlobNotFound,
    LocationUnavailable,
    StorageError,
    map_opendal_error,
)

__all__ = ["LOCAL_READ_MAX", "OpendalStore"]

# Ranges up to this size on `fs` are read with one blocking pread; larger ones stream.
LOCAL_READ_MAX = 1 << 20


class OpendalStore:
    """A location's bytes behind an OpenDAL operator (layers already applied to `operator`)."""

    def __init__(
        self,
        name: str,
        operator: opendal.AsyncOperator,
        *,
        fs_root: Path | None = None,
        part_size: int | None = None,
    ) -> None:
        self._name = name
        self.operator = operator
        self._fs_root = fs_root
        self._part_size = part_size

    @property
    def name(self) -> str:
        return self._name

    @property
    def fs_root(self) -> Path | None:
        """The directory of an `fs` location (None for object stores)."""
        return self._fs_root

    def with_layer(self, layer: opendal.layers.Layer) -> OpendalStore:
        """The same store with an OpenDAL layer (retry, timeout, concurrency) on its operator."""
        return OpendalStore(
            self._name,
            self.operator.layer(layer),
            fs_root=self._fs_root,
            part_size=self._part_size,
        )

    @cached_property
    def blocking(self) -> opendal.Operator:
        """The same operator (layers included) for blocking calls from a worker thread.

        OpenDAL releases the GIL while a blocking call waits on IO, so a thread can read, hash
        and write a small blob in one hop instead of a dozen event-loop round trips.
        """
        return self.operator.to_operator()

    def _root_missing(self) -> bool:
        return self._fs_root is not None and not os.path.isdir(self._fs_root)

    def _guard(self, key: str | None) -> None:
        """Before an operation that would succeed on a missing root (a write recreates it, a
        delete or a listing finds nothing): the location is down, not empty. Reads and stats
        need no guard: they fail on a missing root, and `_error` tells why."""
        if self._root_missing():
            raise LocationUnavailable(
                f"root directory {self._fs_root} is missing", location=self._name, key=key
            )

    def _error(self, exc: Exception, key: str | None, op: str) -> StorageError:
        if self._root_missing():
            return LocationUnavailable(
                f"root directory {self._fs_root} is missing", location=self._name, key=key
            )
        return map_opendal_error(exc, location=self._name, key=key, op=op)

    def _write_options(self, part_size: int | None, concurrency: int) -> dict[str, Any]:
        """Object stores upload in parts (`concurrency` of them at once); local disks stream."""
        if self._part_size is None:
            return {}
        options: dict[str, Any] = {"chunk": part_size or self._part_size}
        if concurrency > 1:
            options["concurrent"] = concurrency
        return options

    async def open_writer(
        self, key: str, *, part_size: int | None = None, concurrency: int = 1
    ) -> _Writer:
        self._guard(key)
        options = self._write_options(part_size, concurrency)
        try:
            file = await self.operator.open(key, "wb", **options)
        except Exception as exc:
            raise self._error(exc, key, "write") from exc
        return _Writer(self, key, file)

    async def open_reader(
        self, key: str, offset: int, length: int | None
    ) -> _Reader | _LoadedReader:
        if self._fs_root is not None and length is not None and length <= LOCAL_READ_MAX:
            # A small range from local disk: one pread in the event loop (tens of µs from the
            # page cache) instead of four trips through OpenDAL's runtime (~0.4 ms measured).
            data = local_io.read_range(self._fs_root, self._name, key, offset, length)
            return _LoadedReader(data)
        options: dict[str, Any] = {"offset": offset}
        if length is not None:
            options["size"] = length
        try:
            file = await self.operator.open(key, "rb", **options)
        except Exception as exc:
            raise self._error(exc, key, "read") from exc
        return _Reader(self, key, file, offset, length)

    async def stat(self, key: str) -> BlobStat:
        try:
            meta = await self.operator.stat(key)
        except Exception as exc:
            raise self._error(exc, key, "stat") from exc
        if not meta.is_file:
            raise BlobNotFound("not a blob (a directory)", location=self._name, key=key)
        return BlobStat(key, meta.content_length, meta.last_modified)

    async def delete(self, key: str) -> None:
        self._guard(key)
        try:
            await self.operator.delete(key)
        except Exception as exc:
            raise self._error(exc, key, "delete") from exc

    async def list(self, prefix: str) -> AsyncIterator[BlobStat]:
        """Streams entries page by page; order is the backend's (lexicographic on S3)."""
        self._guard(prefix or None)
        if self._fs_root is not None:
            pages = local_io.walk(self._fs_root, self._name, prefix)
            while (page := await asyncio.to_thread(next, pages, None)) is not None:
                for stat in page:
                    yield stat
            return
        try:
            lister = await self.operator.list(prefix, recursive=True)
            async for entry in lister:
                path = entry.path
                if path.endswith("/") or not path.startswith(prefix):
                    continue
                meta = entry.metadata
                if not meta.is_file:
                    continue
                yield BlobStat(path, meta.content_length, meta.last_modified)
        except StorageError:
            raise
        except Exception as exc:
            raise self._error(exc, prefix or None, "list") from exc

    async def check(self) -> None:
        self._guard(None)
        try:
            await self.operator.check()
        except Exception as exc:
            err = self._error(exc, None, "check")
            if not isinstance(err, LocationUnavailable):
                err = LocationUnavailable(err.detail, location=self._name)
            raise err from exc

    # --- blocking calls, for worker threads (see `blocking`) -------------------------------
    # On `fs` they go straight to the OS (`local_io`): OpenDAL's blocking `fs` runs the async
    # backend on its runtime, several thread handoffs per call.

    def read_bytes(self, key: str) -> bytes:
        """The whole blob in one request (one GET on an object store, no HEAD first)."""
        if self._fs_root is not None:
            return local_io.read_file(self._fs_root, self._name, key)
        try:
            return self.blocking.read(key)
        except Exception as exc:
            raise self._error(exc, key, "read") from exc

    def write_bytes(
        self, key: str, data: bytes, *, barrier: local_io.SyncBarrier | None = None
    ) -> None:
        """The whole blob in one request (one PUT); durable when this returns, or on `fs`
        with a `barrier`, once that barrier's `sync()` has returned."""
        self._guard(key)
        if self._fs_root is not None:
            local_io.write_file(self._fs_root, self._name, key, data, barrier=barrier)
            return
        try:
            self.blocking.write(key, data)
        except Exception as exc:
            raise self._error(exc, key, "write") from exc

    def size_of(self, key: str) -> int:
        if self._fs_root is not None:
            return local_io.file_size(self._fs_root, self._name, key)
        try:
            meta = self.blocking.stat(key)
        except Exception as exc:
            raise self._error(exc, key, "stat") from exc
        if not meta.is_file:
            raise BlobNotFound("not a blob (a directory)", location=self._name, key=key)
        return int(meta.content_length)

    def discard(self, key: str) -> None:
        """Best-effort delete (an abort's cleanup); the orphan sweep removes what is left."""
        if self._fs_root is not None:
            local_io.delete_file(self._fs_root, key)
            return
        with contextlib.suppress(Exception):
            self.blocking.delete(key)


class _Writer:
    def __init__(self, store: OpendalStore, key: str, file: Any) -> None:
        self._store = store
        self._key = key
        self._file: Any = file

    async def write(self, data: bytes) -> None:
        try:
            await self._file.write(data)
        except Exception as exc:
            raise self._store._error(exc, self._key, "write") from exc

    async def commit(self) -> None:
        try:
            await self._file.close()
        except Exception as exc:
            raise self._store._error(exc, self._key, "write") from exc

    async def abort(self) -> None:
        # Closing would publish the partial blob, so drop the writer unclosed and delete the key.
        # (The Python binding has no Writer.abort: an S3 multipart upload stays incomplete until
        # the bucket's lifecycle rule for incomplete uploads removes it; nothing is visible.)
        # Best effort: if the delete fails too, the orphan sweep removes what is left.
        self._file = None
        with contextlib.suppress(Exception):
            await self._store.operator.delete(self._key)


class _LoadedReader:
    """A range already in memory (small local reads)."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    async def read(self, size: int) -> bytes:
        chunk, self._data = self._data[:size], self._data[size:]
        return bytes(chunk)

    async def close(self) -> None:
        self._data = memoryview(b"")


class _Reader:
    def __init__(
        self, store: OpendalStore, key: str, file: Any, offset: int, length: int | None
    ) -> None:
        self._store = store
        self._key = key
        self._file = file
        self._offset = offset
        self._length = length
        self._got = 0
        self._done = False

    async def read(self, size: int) -> bytes:
        if self._done:
            return b""
        if self._length is not None:
            size = min(size, self._length - self._got)
            if size <= 0:
                return b""
        try:
            data: bytes = await self._file.read(size)
        except Exception as exc:
            if self._length is None or not await self._clamp_to_blob():
                raise self._store._error(exc, self._key, "read") from exc
            return await self.read(size)
        if not data:
            self._done = True
        self._got += len(data)
        return data

    async def _clamp_to_blob(self) -> bool:
        """Recover from a bounded range that runs past the end of the blob.

        Backends disagree on that case (fs fails after the last byte, memory before the first,
        S3 says "reader got too little data"), so ask the blob's size: if the range really
        overran, reopen it cut to the blob and carry on; otherwise the error stands.
        """
        try:
            blob_size = (await self._store.stat(self._key)).size
        except StorageError:
            return False
        position = self._offset + self._got
        if self._length is None or self._offset + self._length <= blob_size:
            return False
        await self.close()
        if position >= blob_size:
            self._done = True
            return True
        try:
            self._file = await self._store.operator.open(
                self._key, "rb", offset=position, size=blob_size - position
            )
        except Exception as exc:
            raise self._store._error(exc, self._key, "read") from exc
        self._offset, self._length, self._got = position, blob_size - position, 0
        return True

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a reader cannot lose data
            await self._file.close()
