"""write_replicated: one read of the source, every replica or none, bounded buffering."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from storage_helpers import agen, collect, make, pattern

from residency.storage import (
    BlobNotFound,
    BlobStore,
    BlobWriter,
    FaultLayer,
    Location,
    LocationUnavailable,
    SizeMismatch,
    write_replicated,
)

MiB = 1 << 20


async def assert_absent_everywhere(locations: list[Location], key: str) -> None:
    for loc in locations:
        with pytest.raises(BlobNotFound):
            await loc.stat(key)
        assert [s.key async for s in loc.list("")] == [], f"{loc.name} kept a blob"


@pytest.fixture
def fs_and_s3(fs_location: Location, s3_location: Location) -> list[Location]:
    return [fs_location, s3_location]


async def test_replicates_to_fs_and_s3_reading_the_source_once(fs_and_s3: list[Location]):
    data = pattern(5 * MiB + 7, seed=1)
    pulls = 0

    async def source() -> AsyncIterator[bytes]:
        nonlocal pulls
        for i in range(0, len(data), 300_000):
            pulls += 1
            yield data[i : i + 300_000]

    info = await write_replicated(fs_and_s3, "obj/1", source(), expect_size=len(data))
    assert pulls == -(-len(data) // 300_000)
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).digest()
    for loc in fs_and_s3:
        assert (await loc.stat("obj/1")).size == len(data)
        assert hashlib.sha256(await collect(loc.read("obj/1"))).digest() == info.sha256


async def test_failing_replica_mid_stream_leaves_nothing_anywhere(
    fs_location: Location, s3_location: Location
) -> None:
    dying = s3_location.layer(FaultLayer(fail_after_bytes=3 * MiB))
    with pytest.raises(LocationUnavailable, match="injected fault in write") as err:
        await write_replicated(
            [fs_location, dying], "obj/torn", agen([pattern(MiB)] * 6), expect_size=6 * MiB
        )
    assert err.value.location == "s3-loc"
    await assert_absent_everywhere([fs_location, s3_location], "obj/torn")


async def test_replica_failing_at_commit_removes_the_committed_ones(
    fs_location: Location, s3_location: Location
) -> None:
    refusing = s3_location.layer(FaultLayer(fail=["commit"]))
    with pytest.raises(LocationUnavailable, match="injected fault in commit"):
        await write_replicated([fs_location, refusing], "obj/c", agen([b"abc" * 1000]))
    await assert_absent_everywhere([fs_location, s3_location], "obj/c")


async def test_dead_endpoint_replica_leaves_nothing_on_the_live_ones(
    fs_location: Location, s3_location: Location, dead_s3_location: Location
) -> None:
    with pytest.raises(LocationUnavailable) as err:
        await write_replicated(
            [fs_location, s3_location, dead_s3_location],
            "obj/dead",
            agen([pattern(2 * MiB, seed=4)]),
        )
    assert err.value.location == "dead-s3"
    await assert_absent_everywhere([fs_location, s3_location], "obj/dead")


async def test_replica_that_cannot_open_aborts_the_ones_already_open(
    fs_location: Location, tmp_path: Path
) -> None:
    second = make("fs-two", "fs", root=str(tmp_path / "two"))
    broken = second.layer(FaultLayer(fail=["open_writer"]))
    with pytest.raises(LocationUnavailable, match="open_writer"):
        await write_replicated([fs_location, broken], "k", agen([b"x" * 100]))
    await assert_absent_everywhere([fs_location, second], "k")


async def test_short_source_is_rejected_and_cleaned_up(fs_and_s3: list[Location]) -> None:
    with pytest.raises(SizeMismatch, match="ended early") as err:
        await write_replicated(fs_and_s3, "obj/short", agen([b"x" * 1000]), expect_size=1001)
    assert (err.value.expected, err.value.actual) == (1001, 1000)
    await assert_absent_everywhere(fs_and_s3, "obj/short")


async def test_long_source_is_rejected_before_the_extra_bytes_are_written(
    fs_location: Location,
) -> None:
    with pytest.raises(SizeMismatch, match="ran past"):
        await write_replicated([fs_location], "obj/long", agen([b"x" * 1000]), expect_size=999)
    await assert_absent_everywhere([fs_location], "obj/long")


async def test_source_error_propagates_unchanged_and_cleans_up(fs_and_s3: list[Location]):
    class ClientWentAway(Exception):
        pass

    async def source() -> AsyncIterator[bytes]:
        yield pattern(2 * MiB)
        raise ClientWentAway("connection reset by peer")

    with pytest.raises(ClientWentAway):
        await write_replicated(fs_and_s3, "obj/src", source())
    await assert_absent_everywhere(fs_and_s3, "obj/src")


async def test_cancelled_write_cleans_up(fs_location: Location) -> None:
    started = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            started.set()
            yield b"z" * 65536
            await asyncio.sleep(0)

    task = asyncio.create_task(write_replicated([fs_location], "obj/cancel", endless()))
    await started.wait()
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_absent_everywhere([fs_location], "obj/cancel")


class _Counting:
    """A test layer that records how many bytes reached the store below it."""

    def __init__(self) -> None:
        self.written = 0

    def layer(self, inner: BlobStore) -> BlobStore:
        outer = self

        class Store:
            name = inner.name

            async def open_writer(
                self, key: str, *, part_size: int | None = None, concurrency: int = 1
            ) -> BlobWriter:
                writer = await inner.open_writer(key, part_size=part_size, concurrency=concurrency)

                class Writer:
                    async def write(self, data: bytes) -> None:
                        await writer.write(data)
                        outer.written += len(data)

                    async def commit(self) -> None:
                        await writer.commit()

                    async def abort(self) -> None:
                        await writer.abort()

                return Writer()

            def __getattr__(self, attr: str) -> object:
                return getattr(inner, attr)

        return Store()  # type: ignore[return-value]


async def test_slow_replica_applies_backpressure(fs_location: Location, tmp_path: Path) -> None:
    chunk, depth = 64 * 1024, 2
    counter = _Counting()
    slow = (
        make("fs-slow", "fs", root=str(tmp_path / "slow"))
        .layer(counter)
        .layer(FaultLayer(write_delay=0.005))
    )
    pulled, worst_lead = 0, 0

    async def source() -> AsyncIterator[bytes]:
        nonlocal pulled, worst_lead
        for _ in range(64):
            worst_lead = max(worst_lead, pulled - counter.written)
            pulled += chunk
            yield b"s" * chunk

    info = await write_replicated(
        [fs_location, slow], "obj/slow", source(), chunk_size=chunk, queue_depth=depth
    )
    assert info.size == 64 * chunk
    # The source may only run ahead of the slow replica by what the queue and the chunks in
    # hand can hold, not by the whole object.
    assert worst_lead <= (depth + 3) * chunk
    assert (await slow.stat("obj/slow")).size == 64 * chunk


async def test_locations_must_be_distinct_and_present(fs_location: Location) -> None:
    with pytest.raises(ValueError, match="distinct"):
        await write_replicated([fs_location, fs_location], "k", agen([b"x"]))
    with pytest.raises(ValueError, match="at least one"):
        await write_replicated([], "k", agen([b"x"]))
