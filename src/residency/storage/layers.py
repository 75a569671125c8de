"""Cross-cutting behaviour as layers that wrap a `BlobStore`, the way OpenDAL layers wrap an
operator: backends stay plain, and a test or a deployment stacks what it needs.

OpenDAL's own layers (retry with backoff on temporary errors, timeouts, a shared concurrency
limit) run natively under the operator and see every request, including the ones inside a
streaming read or a multipart write; `NativeLayer` applies them. Layers written here in Python
(`FaultLayer`) wrap any store, including one that already has Python layers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from typing import Literal, Protocol

import opendal

from residency.storage.blobs import BlobStat
from residency.storage.errors import LocationUnavailable, StorageError
from residency.storage.opendal_store import OpendalStore
from residency.storage.store import BlobReader, BlobStore, BlobWriter

__all__ = [
    "FaultLayer",
    "Layer",
    "NativeLayer",
    "Operation",
    "RetryPolicy",
    "concurrency_limit",
    "default_layers",
    "retry",
    "timeout",
]

Operation = Literal[
    "open_writer", "write", "commit", "open_reader", "read", "stat", "delete", "list", "check"
]


class Layer(Protocol):
    """Wraps a store in another store with extra behaviour."""

    def layer(self, inner: BlobStore) -> BlobStore: ...


@dataclass(frozen=True)
class NativeLayer:
    """An OpenDAL layer, applied to the operator under the store.

    Must sit below any Python layer: it needs the OpenDAL store itself.
    """

    native: opendal.layers.Layer

    def layer(self, inner: BlobStore) -> BlobStore:
        if not isinstance(inner, OpendalStore):
            raise TypeError(
                f"{type(self.native).__name__} is an OpenDAL layer; apply it before Python layers"
            )
        return inner.with_layer(self.native)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for temporary errors (5xx, throttling, dropped connections).

    The defaults give up within about half a second so that a dead endpoint is reported as
    `LocationUnavailable` quickly and readers can fail over to another replica.
    """

    max_times: int = 3
    min_delay: float = 0.05
    max_delay: float = 2.0
    factor: float = 2.0
    jitter: bool = True


def retry(policy: RetryPolicy | None = None) -> NativeLayer:
    p = policy or RetryPolicy()
    return NativeLayer(
        opendal.layers.RetryLayer(
            max_times=p.max_times,
            factor=p.factor,
            jitter=p.jitter,
            max_delay=p.max_delay,
            min_delay=p.min_delay,
        )
    )


def timeout(control: float = 30.0, io: float = 60.0) -> NativeLayer:
    """Bound a stalled request: `control` for stat/delete/list, `io` for each read/write call."""
    return NativeLayer(opendal.layers.TimeoutLayer(timeout=control, io_timeout=io))


def concurrency_limit(limit: int) -> NativeLayer:
    """At most `limit` requests in flight. Reuse one instance to share the limit across stores."""
    return NativeLayer(opendal.layers.ConcurrentLimitLayer(limit))


def default_layers() -> list[Layer]:
    """What `open_location` applies unless told otherwise: timeouts inside, retry outside."""
    return [timeout(), retry()]


def _injected(op: str, location: str, key: str | None) -> StorageError:
    return LocationUnavailable(f"injected fault in {op}", location=location, key=key)


@dataclass(frozen=True)
class FaultLayer:
    """Makes a store fail or slow down on purpose, to test failure handling end to end.

    `fail` lists operations that always fail; `fail_after_bytes` fails a write once a blob has
    received that many bytes (a replica dying mid-stream); `write_delay` sleeps before every
    write call (a slow replica). `error(op, location, key)` builds the raised error.
    """

    fail: Collection[Operation] = ()
    fail_after_bytes: int | None = None
    write_delay: float = 0.0
    error: Callable[[str, str, str | None], StorageError] = _injected

    def layer(self, inner: BlobStore) -> BlobStore:
        return _FaultStore(inner, self)


class _FaultStore:
    def __init__(self, inner: BlobStore, spec: FaultLayer) -> None:
        self._inner = inner
        self._spec = spec

    @property
    def name(self) -> str:
        return self._inner.name

    def _maybe_fail(self, op: Operation, key: str | None) -> None:
        if op in self._spec.fail:
            raise self._spec.error(op, self.name, key)

    async def open_writer(
        self, key: str, *, part_size: int | None = None, concurrency: int = 1
    ) -> BlobWriter:
        self._maybe_fail("open_writer", key)
        inner = await self._inner.open_writer(key, part_size=part_size, concurrency=concurrency)
        return _FaultWriter(self, key, inner)

    async def open_reader(self, key: str, offset: int, length: int | None) -> BlobReader:
        self._maybe_fail("open_reader", key)
        return _FaultReader(self, key, await self._inner.open_reader(key, offset, length))

    async def stat(self, key: str) -> BlobStat:
        self._maybe_fail("stat", key)
        return await self._inner.stat(key)

    async def delete(self, key: str) -> None:
        self._maybe_fail("delete", key)
        await self._inner.delete(key)

    async def list(self, prefix: str) -> AsyncIterator[BlobStat]:
        self._maybe_fail("list", prefix or None)
        async for stat in self._inner.list(prefix):
            yield stat

    async def check(self) -> None:
        self._maybe_fail("check", None)
        await self._inner.check()


class _FaultWriter:
    def __init__(self, store: _FaultStore, key: str, inner: BlobWriter) -> None:
        self._store = store
        self._key = key
        self._inner = inner
        self._written = 0

    async def write(self, data: bytes) -> None:
        spec = self._store._spec
        if spec.write_delay:
            await asyncio.sleep(spec.write_delay)
        self._store._maybe_fail("write", self._key)
        limit = spec.fail_after_bytes
        if limit is not None and self._written + len(data) > limit:
            # Store what fits first, so a partial blob really exists and cleanup is exercised.
            head = data[: max(limit - self._written, 0)]
            if head:
                await self._inner.write(head)
                self._written += len(head)
            raise spec.error("write", self._store.name, self._key)
        await self._inner.write(data)
        self._written += len(data)

    async def commit(self) -> None:
        self._store._maybe_fail("commit", self._key)
        await self._inner.commit()

    async def abort(self) -> None:
        await self._inner.abort()


class _FaultReader:
    def __init__(self, store: _FaultStore, key: str, inner: BlobReader) -> None:
        self._store = store
        self._key = key
        self._inner = inner

    async def read(self, size: int) -> bytes:
        self._store._maybe_fail("read", self._key)
        return await self._inner.read(size)

    async def close(self) -> None:
        await self._inner.close()
