"""rechunk: same bytes out, every chunk full-sized except the last."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from storage_helpers import agen

from residency.storage.streams import rechunk


async def rechunked(pieces: list[bytes], size: int) -> list[bytes]:
    return [c async for c in rechunk(agen(pieces), size)]


@given(st.lists(st.binary(max_size=300), max_size=30), st.integers(min_value=1, max_value=97))
async def test_preserves_bytes_and_bounds_chunks(pieces: list[bytes], size: int) -> None:
    out = await rechunked(pieces, size)
    assert b"".join(out) == b"".join(pieces)
    assert all(len(c) == size for c in out[:-1])
    assert all(0 < len(c) <= size for c in out)


async def test_accepts_bytearray_and_memoryview() -> None:
    out = [c async for c in rechunk(agen([bytearray(b"abc"), memoryview(b"defg")]), 3)]  # type: ignore[list-item]
    assert out == [b"abc", b"def", b"g"]
    assert all(type(c) is bytes for c in out)


async def test_rejects_nonpositive_size() -> None:
    with pytest.raises(ValueError, match="positive"):
        await rechunked([b"x"], 0)
