"""Deferred durability on `fs`: writes without their own fsync, one `syncfs` for all of them."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sys
from pathlib import Path

import pytest
from storage_helpers import make, pattern

from residency.storage import LocationUnavailable, copy_whole, local_io
from residency.storage.local_io import SyncBarrier

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="syncfs(2) is Linux's; elsewhere every write fsyncs",
)


@linux_only
def test_barrier_makes_unsynced_writes_durable_and_reports_a_closed_barrier(
    tmp_path: Path,
) -> None:
    barrier = SyncBarrier.open(tmp_path)
    assert barrier is not None  # this kernel reports writeback errors through syncfs
    try:
        assert barrier.device == os.stat(tmp_path).st_dev
        blobs = {f"blobs/{i:02x}/{i:02x}/k{i}": pattern(3000 + i, seed=i) for i in range(20)}
        for key, data in blobs.items():
            local_io.write_file(tmp_path, "loc", key, data, barrier=barrier)
        barrier.sync()
        for key, data in blobs.items():
            assert (tmp_path / key).read_bytes() == data
    finally:
        barrier.close()
    with pytest.raises(OSError, match="closed"):
        barrier.sync()
    barrier.close()  # closing twice is harmless


def test_no_barrier_for_a_root_that_is_not_there(tmp_path: Path) -> None:
    assert SyncBarrier.open(tmp_path / "missing") is None


def test_a_write_never_recreates_a_missing_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    barrier = SyncBarrier.open(root)
    shutil.rmtree(root)
    try:
        with pytest.raises(LocationUnavailable, match="root directory"):
            local_io.write_file(root, "loc", "blobs/aa/bb/key", b"x", barrier=barrier)
        with pytest.raises(LocationUnavailable, match="root directory"):
            local_io.write_file(root, "loc", "blobs/aa/bb/key", b"x")
    finally:
        if barrier is not None:
            barrier.close()
    assert not root.exists()


async def test_copy_whole_defers_only_where_a_barrier_is_given(tmp_path: Path) -> None:
    src = make("fs-src", "fs", root=str(tmp_path / "src"))
    synced = make("fs-synced", "fs", root=str(tmp_path / "synced"))
    deferred = make("fs-deferred", "fs", root=str(tmp_path / "deferred"))
    data = pattern(50_000, seed=7)
    (tmp_path / "src" / "obj").write_bytes(data)
    barrier = SyncBarrier.open(tmp_path / "deferred")
    try:
        written = await asyncio.to_thread(
            copy_whole,
            src,
            "obj",
            [synced, deferred],
            "blobs/aa/bb/k",
            size=len(data),
            algorithms=("sha256",),
            barriers={"fs-deferred": barrier} if barrier else None,
        )
        if barrier is not None:
            barrier.sync()
    finally:
        if barrier is not None:
            barrier.close()
    assert written.digests["sha256"] == hashlib.sha256(data).digest()
    assert (tmp_path / "synced" / "blobs/aa/bb/k").read_bytes() == data
    assert (tmp_path / "deferred" / "blobs/aa/bb/k").read_bytes() == data


async def test_copy_whole_to_a_deleted_root_fails_and_leaves_no_root(tmp_path: Path) -> None:
    src = make("fs-src", "fs", root=str(tmp_path / "src"))
    dst = make("fs-dst", "fs", root=str(tmp_path / "dst"))
    (tmp_path / "src" / "obj").write_bytes(b"payload")
    barrier = SyncBarrier.open(tmp_path / "dst")
    shutil.rmtree(tmp_path / "dst")
    try:
        with pytest.raises(LocationUnavailable):
            await asyncio.to_thread(
                copy_whole,
                src,
                "obj",
                [dst],
                "blobs/aa/bb/k",
                size=7,
                algorithms=("sha256",),
                barriers={"fs-dst": barrier} if barrier else None,
            )
    finally:
        if barrier is not None:
            barrier.close()
    assert not (tmp_path / "dst").exists()
