"""`WholeCopier`: small copies share worker-thread hops, each keeps its own result or error."""

from __future__ import annotations

import asyncio
import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from residency.catalog import load_catalog
from residency.config import LocationConfig
from residency.migrate.whole_copies import WholeCopier, WholeCopy
from residency.storage import BlobNotFound, Location, SizeMismatch, open_location
from residency.storage.local_io import SyncBarrier


def fs(name: str, root: Path) -> Location:
    cfg = LocationConfig(
        name=name, provider="aws", region="us-east-1", scheme="fs", options={"root": str(root)}
    )
    return open_location(cfg, load_catalog().facts_for(cfg))


def blob(i: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest() * (10 + i)


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Location, Location]:
    src, dst = fs("src", tmp_path / "src"), fs("dst", tmp_path / "dst")
    for i in range(40):
        (tmp_path / "src" / f"o{i}").write_bytes(blob(i))
    return src, dst


def job(src: Location, dst: Location, i: int, size: int | None = None) -> WholeCopy:
    return WholeCopy(src, f"o{i}", [dst], f"blobs/{i:02x}/k{i}", size or len(blob(i)), ("sha256",))


async def test_copies_waiting_together_share_one_hop(
    pair: tuple[Location, Location], tmp_path: Path
) -> None:
    src, dst = pair
    barrier = SyncBarrier.open(tmp_path / "dst")
    barriers = {"dst": barrier} if barrier else None
    try:
        with ThreadPoolExecutor(4) as pool:
            copier = WholeCopier(pool, threads=1, per_hop=64, barriers=barriers)
            results = await asyncio.gather(*(copier.copy(job(src, dst, i)) for i in range(40)))
        if barrier is not None:
            barrier.sync()
    finally:
        if barrier is not None:
            barrier.close()
    # All 40 were submitted in one turn of the loop: one hop carried them.
    assert copier.hops == 1
    for i, written in enumerate(results):
        assert written.digests["sha256"] == hashlib.sha256(blob(i)).digest()
        assert (tmp_path / "dst" / f"blobs/{i:02x}/k{i}").read_bytes() == blob(i)


async def test_one_blob_per_hop_spreads_over_the_threads(pair: tuple[Location, Location]) -> None:
    src, dst = pair
    with ThreadPoolExecutor(8) as pool:
        copier = WholeCopier(pool, threads=8, per_hop=1)
        results = await asyncio.gather(*(copier.copy(job(src, dst, i)) for i in range(20)))
    assert copier.hops == 20
    assert [w.size for w in results] == [len(blob(i)) for i in range(20)]


async def test_a_failing_copy_fails_alone(pair: tuple[Location, Location], tmp_path: Path) -> None:
    src, dst = pair
    jobs = [job(src, dst, i) for i in range(6)]
    jobs[2] = WholeCopy(src, "missing", [dst], "blobs/02/k2", 10, ("sha256",))
    jobs[4] = job(src, dst, 4, size=len(blob(4)) + 1)  # the source is not the recorded size
    with ThreadPoolExecutor(2) as pool:
        copier = WholeCopier(pool, threads=2, per_hop=64)
        results = await asyncio.gather(*(copier.copy(j) for j in jobs), return_exceptions=True)
    assert isinstance(results[2], BlobNotFound)
    assert isinstance(results[4], SizeMismatch)
    for i in (0, 1, 3, 5):
        assert not isinstance(results[i], BaseException)
        assert (tmp_path / "dst" / f"blobs/{i:02x}/k{i}").read_bytes() == blob(i)
    assert not (tmp_path / "dst" / "blobs/02/k2").exists()
    assert not (tmp_path / "dst" / "blobs/04/k4").exists()


async def test_a_cancelled_copy_does_not_hold_up_the_others(
    pair: tuple[Location, Location],
) -> None:
    src, dst = pair
    with ThreadPoolExecutor(2) as pool:
        copier = WholeCopier(pool, threads=1, per_hop=4)
        tasks = [asyncio.ensure_future(copier.copy(job(src, dst, i))) for i in range(10)]
        await asyncio.sleep(0)
        tasks[7].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[7], asyncio.CancelledError)
    assert all(not isinstance(r, BaseException) for i, r in enumerate(done) if i != 7)


def test_threads_and_hop_size_must_be_positive() -> None:
    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match="at least 1"):
        WholeCopier(pool, threads=0, per_hop=1)
