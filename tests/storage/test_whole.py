"""`copy_whole`: a small blob copied in one blocking hop, all or nothing, on every scheme."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from pathlib import Path

import pytest
from storage_helpers import make

from residency.storage import (
    BlobNotFound,
    FaultLayer,
    InvalidBlobKey,
    Location,
    LocationUnavailable,
    SizeMismatch,
    StorageError,
    copy_whole,
    whole_copy_possible,
)


async def put(loc: Location, key: str, data: bytes) -> None:
    async def one() -> object:
        yield data

    await loc.write(key, one())  # type: ignore[arg-type]


async def read(loc: Location, key: str) -> bytes:
    return b"".join([c async for c in loc.read(key)])


async def test_copies_to_every_destination_with_the_digests_asked_for(
    location: Location, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 40
    await put(location, "src/a", data)
    other = make("fs-dst", "fs", root=str(tmp_path / "dst"))
    written = await asyncio.to_thread(
        copy_whole,
        location,
        "src/a",
        [other, location],
        "blobs/b",
        size=len(data),
        algorithms=("sha256", "crc32c"),
    )
    assert written.size == len(data)
    assert set(written.digests) == {"sha256", "crc32c"}
    assert written.digests["sha256"] == hashlib.sha256(data).digest()
    assert await read(other, "blobs/b") == data
    assert await read(location, "blobs/b") == data
    assert (await location.stat("blobs/b")).size == len(data)


async def test_a_missing_source_or_bad_size_writes_nothing(location: Location) -> None:
    with pytest.raises(BlobNotFound) as missing:
        await asyncio.to_thread(
            copy_whole, location, "nope", [location], "out", size=1, algorithms=("sha256",)
        )
    assert missing.value.location == location.name
    await put(location, "src/short", b"12345")
    with pytest.raises(SizeMismatch, match="expected 6 bytes, got 5"):
        await asyncio.to_thread(
            copy_whole, location, "src/short", [location], "out", size=6, algorithms=("sha256",)
        )
    with pytest.raises(BlobNotFound):
        await location.stat("out")
    with pytest.raises(InvalidBlobKey):
        await asyncio.to_thread(
            copy_whole, location, "src/short", [location], "a//b", size=5, algorithms=("md5",)
        )


async def test_a_failing_destination_takes_back_the_copies_already_made(tmp_path: Path) -> None:
    src = make("src", "fs", root=str(tmp_path / "src"))
    first = make("first", "fs", root=str(tmp_path / "first"))
    gone = make("gone", "fs", root=str(tmp_path / "gone"))
    await put(src, "k", b"payload")
    shutil.rmtree(tmp_path / "gone")  # unmounted: writing must not recreate the root
    with pytest.raises(LocationUnavailable, match=r"root directory .* is missing"):
        await asyncio.to_thread(
            copy_whole, src, "k", [first, gone], "copy", size=7, algorithms=("sha256",)
        )
    assert not (tmp_path / "gone").exists()
    with pytest.raises(BlobNotFound):
        await first.stat("copy")


async def test_a_directory_is_not_a_blob(tmp_path: Path) -> None:
    loc = make("fs", "fs", root=str(tmp_path / "r"))
    (tmp_path / "r" / "dir").mkdir()
    with pytest.raises(StorageError, match="not a blob"):
        await asyncio.to_thread(copy_whole, loc, "dir", [loc], "x", size=0, algorithms=("md5",))


def test_python_layers_take_the_streaming_path(tmp_path: Path) -> None:
    plain = make("plain", "fs", root=str(tmp_path / "p"))
    assert whole_copy_possible([plain])
    assert not whole_copy_possible([plain, plain.layer(FaultLayer(fail=["write"]))])
