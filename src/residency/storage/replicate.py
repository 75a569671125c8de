"""Fan one source stream out to several stores: read once, hash once, write everywhere.

Each store gets a bounded queue and its own writer task; the producer waits on the fullest
queue, so the slowest replica sets the pace and memory stays at about
`len(stores) × (queue_depth + 1) × chunk_size` (plus each backend's part buffer) whatever the
object size. Any failure — source error, short or long source, a replica refusing bytes, even
cancellation of the caller — aborts every writer, so no location keeps a partial or lone blob.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from residency.storage.blobs import BlobInfo, Written, validate_key
from residency.storage.checksums import ALGORITHMS, Algorithm, Hasher
from residency.storage.errors import SizeMismatch
from residency.storage.store import BlobStore, BlobWriter
from residency.storage.streams import DEFAULT_CHUNK_SIZE, rechunk

if TYPE_CHECKING:
    from residency.storage.location import Location

__all__ = ["DEFAULT_QUEUE_DEPTH", "replicate_stream", "write_replicated", "write_to_stores"]

DEFAULT_QUEUE_DEPTH = 4
# Below this, hashing inline is cheaper than a hop to a worker thread.
_HASH_IN_THREAD = 256 * 1024


async def write_replicated(
    locations: Sequence[Location],
    key: str,
    chunks: AsyncIterable[bytes],
    *,
    expect_size: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    queue_depth: int = DEFAULT_QUEUE_DEPTH,
) -> BlobInfo:
    """Write `chunks` to `key` at every location, all or nothing.

    Raises the first failure (`StorageError`, `SizeMismatch`, or the source's own exception)
    after deleting whatever any location stored.
    """
    return await write_to_stores(
        _distinct_stores(locations),
        key,
        chunks,
        expect_size=expect_size,
        chunk_size=chunk_size,
        queue_depth=queue_depth,
    )


async def replicate_stream(
    locations: Sequence[Location],
    key: str,
    chunks: AsyncIterable[bytes],
    *,
    algorithms: Sequence[Algorithm],
    expect_size: int | None = None,
    part_size: int | None = None,
    concurrency: int = 1,
) -> Written:
    """`write_replicated` computing only `algorithms`; object stores upload `part_size` parts,
    `concurrency` at once (a multipart upload with parallel parts)."""
    return await _write(
        _distinct_stores(locations),
        key,
        chunks,
        algorithms=algorithms,
        expect_size=expect_size,
        part_size=part_size,
        concurrency=concurrency,
    )


def _distinct_stores(locations: Sequence[Location]) -> list[BlobStore]:
    names = [loc.name for loc in locations]
    if len(set(names)) != len(names):
        raise ValueError(f"locations must be distinct, got {names}")
    return [loc.store for loc in locations]


async def write_to_stores(
    stores: Sequence[BlobStore],
    key: str,
    chunks: AsyncIterable[bytes],
    *,
    expect_size: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    queue_depth: int = DEFAULT_QUEUE_DEPTH,
) -> BlobInfo:
    """`write_replicated` on bare stores (what `Location.write` uses for one store)."""
    written = await _write(
        stores,
        key,
        chunks,
        algorithms=ALGORITHMS,
        expect_size=expect_size,
        chunk_size=chunk_size,
        queue_depth=queue_depth,
    )
    d = written.digests
    return BlobInfo(
        size=written.size, md5=d["md5"], sha256=d["sha256"], crc32c=d["crc32c"], crc32=d["crc32"]
    )


async def _write(
    stores: Sequence[BlobStore],
    key: str,
    chunks: AsyncIterable[bytes],
    *,
    algorithms: Sequence[Algorithm],
    expect_size: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    queue_depth: int = DEFAULT_QUEUE_DEPTH,
    part_size: int | None = None,
    concurrency: int = 1,
) -> Written:
    if not stores:
        raise ValueError("write needs at least one location")
    if queue_depth < 1:
        raise ValueError("queue_depth must be at least 1")
    if expect_size is not None and expect_size < 0:
        raise ValueError("expect_size must not be negative")
    for store in stores:
        validate_key(key, location=store.name)

    hasher = Hasher(algorithms)
    writers: list[BlobWriter] = []
    tasks: list[asyncio.Task[None]] = []
    in_flight: set[asyncio.Future[None]] = set()
    try:
        # Open one by one so that a failure leaves only the already-opened writers to abort.
        for store in stores:
            writers.append(
                await store.open_writer(key, part_size=part_size, concurrency=concurrency)
            )
        queues: list[asyncio.Queue[bytes | None]] = [
            asyncio.Queue(maxsize=queue_depth) for _ in writers
        ]

        async def produce() -> None:
            async for chunk in rechunk(chunks, chunk_size):
                if expect_size is not None and hasher.size + len(chunk) > expect_size:
                    raise SizeMismatch(
                        expected=expect_size, actual=hasher.size + len(chunk), key=key
                    )
                for queue in queues:
                    await queue.put(chunk)
                # Hash while the writers write; bytes are immutable, so sharing is safe.
                if len(chunk) >= _HASH_IN_THREAD:
                    await asyncio.to_thread(hasher.update, chunk)
                else:
                    hasher.update(chunk)
            if expect_size is not None and hasher.size != expect_size:
                raise SizeMismatch(expected=expect_size, actual=hasher.size, key=key)
            for queue in queues:
                await queue.put(None)

        async def drain(writer: BlobWriter, queue: asyncio.Queue[bytes | None]) -> None:
            while (chunk := await queue.get()) is not None:
                await _to_completion(writer.write(chunk), in_flight)
            await _to_completion(writer.commit(), in_flight)

        tasks.append(asyncio.create_task(produce()))
        tasks.extend(asyncio.create_task(drain(w, q)) for w, q in zip(writers, queues, strict=True))
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            failure = task.exception() if task.done() else None
            if failure is not None:
                raise failure
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # A write or commit already sent must land before the delete, or it could recreate
        # the blob after we removed it.
        await asyncio.gather(*in_flight, return_exceptions=True)
        await asyncio.gather(*(w.abort() for w in writers), return_exceptions=True)
        raise

    return Written(hasher.size, hasher.digests())


async def _to_completion(
    call: Coroutine[Any, Any, None], in_flight: set[asyncio.Future[None]]
) -> None:
    """Await a backend call that cancelling our task does not interrupt halfway."""
    future = asyncio.ensure_future(call)
    in_flight.add(future)
    future.add_done_callback(in_flight.discard)
    await asyncio.shield(future)
