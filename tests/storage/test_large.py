"""A 200 MiB object streamed through replication and back, in bounded memory."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from storage_helpers import agen, make, pattern

from residency.storage import Location, write_replicated

MiB = 1 << 20
BIG = 200 * MiB
RSS_BOUND = 64 * MiB

pytestmark = pytest.mark.slow


def generated(size: int, piece: int = 3 * MiB + 1) -> AsyncIterator[bytes]:
    """Distinct bytes made on the fly, in odd-sized pieces; never the whole object at once."""
    base = pattern(piece, seed=42)

    async def gen() -> AsyncIterator[bytes]:
        sent, n = 0, 0
        while sent < size:
            take = min(piece, size - sent)
            yield n.to_bytes(8, "big") + base[8:take] if take > 8 else base[:take]
            sent += take
            n += 1

    return gen()


def expected_sha256(size: int) -> bytes:
    digest = hashlib.sha256()
    base = pattern(3 * MiB + 1, seed=42)
    sent, n = 0, 0
    while sent < size:
        take = min(len(base), size - sent)
        digest.update(n.to_bytes(8, "big") + base[8:take] if take > 8 else base[:take])
        sent += take
        n += 1
    return digest.digest()


@contextmanager
def peak_rss_growth() -> Iterator[Callable[[], int]]:
    """Sample this process's RSS every few ms; yields a function giving peak growth so far."""
    proc = psutil.Process()
    baseline = proc.memory_info().rss
    peak = baseline
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.005):
            peak = max(peak, proc.memory_info().rss)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield lambda: peak - baseline
    finally:
        stop.set()
        thread.join()


async def sha256_of(stream: AsyncIterator[bytes]) -> tuple[bytes, int]:
    digest, size = hashlib.sha256(), 0
    async for chunk in stream:
        assert len(chunk) <= MiB
        digest.update(chunk)
        size += len(chunk)
    return digest.digest(), size


async def test_200_mib_replicated_and_read_back_in_bounded_memory(
    fs_location: Location, s3_location: Location
) -> None:
    want = expected_sha256(BIG)
    with peak_rss_growth() as growth:
        info = await write_replicated(
            [fs_location, s3_location], "big/object", generated(BIG), expect_size=BIG
        )
        written_growth = growth()
        for loc in (fs_location, s3_location):
            got, size = await sha256_of(loc.read("big/object"))
            assert (got, size) == (want, BIG), loc.name
        total_growth = growth()

    assert info.size == BIG
    assert info.sha256 == want
    assert written_growth < RSS_BOUND, f"write grew RSS by {written_growth / MiB:.0f} MiB"
    assert total_growth < RSS_BOUND, f"read back grew RSS by {total_growth / MiB:.0f} MiB"


async def test_small_range_of_a_big_blob_reads_only_that_range(tmp_path: Path) -> None:
    loc = make("fs-big", "fs", root=str(tmp_path / "r"))
    await loc.write("big", generated(64 * MiB))
    proc = psutil.Process()

    async def bytes_read_for(offset: int, length: int | None) -> tuple[bytes, int]:
        before = proc.io_counters().read_chars
        data = b"".join([c async for c in loc.read("big", offset, length)])
        return data, proc.io_counters().read_chars - before

    one, cost = await bytes_read_for(40 * MiB + 3, 1)
    assert len(one) == 1
    assert cost < MiB, f"a 1-byte range read {cost} bytes"
    tail, cost = await bytes_read_for(64 * MiB - 100, None)
    assert len(tail) == 100
    assert cost < MiB, f"a 100-byte suffix read {cost} bytes"
    # and the counter does see a real read, so the bound above means something
    _, cost = await bytes_read_for(0, 8 * MiB)
    assert cost >= 8 * MiB


async def test_write_memory_does_not_depend_on_source_chunk_size(fs_location: Location) -> None:
    """A source yielding 32 MiB pieces is cut down before it is queued."""
    piece = pattern(32 * MiB, seed=5)
    with peak_rss_growth() as growth:
        info = await fs_location.write("huge-pieces", agen([piece] * 3))
        g = growth()
    assert info.size == 96 * MiB
    # the caller's own 32 MiB piece is shared, not copied per queue slot
    assert g < RSS_BOUND, f"grew {g / MiB:.0f} MiB"
