"""The same round-trip, range, list and error tests on fs, memory and s3 (moto)."""

from __future__ import annotations

import hashlib
import zlib

import google_crc32c
import pytest
from storage_helpers import agen, collect, pattern

from residency.storage import (
    BlobNotFound,
    InvalidBlobKey,
    Location,
)

SIZE = 3 * 1024 * 1024 + 12345  # several chunks plus a ragged tail


async def test_round_trip_streams_and_reports_checksums(location: Location) -> None:
    data = pattern(SIZE)
    pieces = [data[i : i + 100_000] for i in range(0, len(data), 100_000)]
    info = await location.write("objects/a/blob-1", agen(pieces))

    assert info.size == len(data)
    assert info.md5 == hashlib.md5(data).digest()
    assert info.sha256 == hashlib.sha256(data).digest()
    assert info.crc32 == zlib.crc32(data).to_bytes(4, "big")
    assert info.crc32c == google_crc32c.value(data).to_bytes(4, "big")
    assert info.etag == hashlib.md5(data).hexdigest()

    assert (await location.stat("objects/a/blob-1")).size == len(data)
    chunks = [chunk async for chunk in location.read("objects/a/blob-1", chunk_size=256 * 1024)]
    assert b"".join(chunks) == data
    assert all(0 < len(c) <= 256 * 1024 for c in chunks)
    assert len(chunks) >= len(data) // (256 * 1024)


async def test_empty_blob(location: Location) -> None:
    info = await location.write("empty", agen([]))
    assert info.size == 0
    assert info.md5 == hashlib.md5(b"").digest()
    assert (await location.stat("empty")).size == 0
    assert await collect(location.read("empty")) == b""


async def test_overwrite_replaces_content(location: Location) -> None:
    await location.write("k", agen([b"first version, longer"]))
    await location.write("k", agen([b"second"]))
    assert await collect(location.read("k")) == b"second"


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (0, 10),  # start
        (1_000_000, 123_457),  # middle, crossing chunk boundaries
        (SIZE - 1000, None),  # suffix: to the end
        (SIZE - 1000, 1000),  # suffix: exact
        (777, 1),  # one byte
        (SIZE - 1, 1),  # last byte
        (SIZE - 10, 500),  # runs past the end: clamped
        (SIZE, None),  # starts at the end
        (SIZE + 5, 10),  # starts past the end
        (SIZE + 5, None),
        (5, 0),  # empty range
    ],
)
async def test_ranges(location: Location, offset: int, length: int | None) -> None:
    data = pattern(SIZE, seed=3)
    await location.write("ranged", agen([data]))
    got = await collect(location.read("ranged", offset, length, chunk_size=64 * 1024))
    end = None if length is None else offset + length
    assert got == data[offset:end]


async def test_open_reports_missing_blob_before_streaming(location: Location) -> None:
    with pytest.raises(BlobNotFound) as err:
        await location.open("no/such/key")
    assert location.name in str(err.value)
    assert "no/such/key" in str(err.value)
    assert err.value.location == location.name
    assert err.value.key == "no/such/key"


async def test_not_found_on_every_read_path(location: Location) -> None:
    with pytest.raises(BlobNotFound):
        await location.stat("missing")
    with pytest.raises(BlobNotFound):
        await collect(location.read("missing"))
    with pytest.raises(BlobNotFound):
        await collect(location.read("missing", 10, 5))
    with pytest.raises(BlobNotFound):
        await collect(location.read("missing", 0, 0))


async def test_open_yields_first_chunk_then_the_rest(location: Location) -> None:
    data = pattern(300_000, seed=9)
    await location.write("k", agen([data]))
    stream = await location.open("k", 100, chunk_size=65_536)
    async with stream:
        first = await anext(stream)
        assert first == data[100 : 100 + len(first)]
        rest = b"".join([c async for c in stream])
    assert first + rest == data[100:]


async def test_delete_is_idempotent(location: Location) -> None:
    await location.write("gone/soon", agen([b"x" * 10]))
    await location.delete("gone/soon")
    with pytest.raises(BlobNotFound):
        await location.stat("gone/soon")
    await location.delete("gone/soon")
    await location.delete("never/existed")


async def test_list_with_prefix(location: Location) -> None:
    keys = ["p/a/1", "p/a/2", "p/b", "pq", "q/p/x"]
    for i, key in enumerate(keys):
        await location.write(key, agen([b"y" * (i + 1)]))

    async def listed(prefix: str) -> dict[str, int]:
        return {s.key: s.size async for s in location.list(prefix)}

    assert await listed("") == {k: i + 1 for i, k in enumerate(keys)}
    assert await listed("p/") == {"p/a/1": 1, "p/a/2": 2, "p/b": 3}
    assert await listed("p") == {"p/a/1": 1, "p/a/2": 2, "p/b": 3, "pq": 4}
    assert await listed("p/a/") == {"p/a/1": 1, "p/a/2": 2}
    assert await listed("nothing/") == {}


@pytest.mark.parametrize("key", ["", "/abs", "dir/", "a//b", "a/../b", "./a", "a\x00b"])
async def test_rejects_keys_that_would_alias(location: Location, key: str) -> None:
    with pytest.raises(InvalidBlobKey):
        await location.write(key, agen([b"x"]))
    with pytest.raises(InvalidBlobKey):
        await location.stat(key)
    with pytest.raises(InvalidBlobKey):
        await location.open(key)
    with pytest.raises(InvalidBlobKey):
        await location.delete(key)


async def test_a_directory_is_not_a_blob(location: Location) -> None:
    await location.write("dir/child", agen([b"x"]))
    with pytest.raises(BlobNotFound):
        await location.stat("dir")


async def test_check_passes_on_a_healthy_location(location: Location) -> None:
    await location.check()


async def test_negative_range_is_a_caller_error(location: Location) -> None:
    with pytest.raises(ValueError, match="negative"):
        await location.open("k", -1)
    with pytest.raises(ValueError, match="negative"):
        await location.open("k", 0, -5)
