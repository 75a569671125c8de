"""Hasher against hashlib / zlib / google-crc32c, however the bytes are split."""

from __future__ import annotations

import base64
import hashlib
import zlib

import google_crc32c
import pytest
from hypothesis import given
from hypothesis import strategies as st

from residency.storage.checksums import ALGORITHMS, Hasher, from_base64, from_hex, to_base64, to_hex


def reference(data: bytes) -> dict[str, bytes]:
    return {
        "md5": hashlib.md5(data).digest(),
        "sha256": hashlib.sha256(data).digest(),
        "crc32": zlib.crc32(data).to_bytes(4, "big"),
        "crc32c": google_crc32c.value(data).to_bytes(4, "big"),
    }


@given(st.lists(st.binary(max_size=2000), max_size=20))
def test_digests_match_references_for_any_split(pieces: list[bytes]) -> None:
    hasher = Hasher()
    for piece in pieces:
        hasher.update(piece)
    data = b"".join(pieces)
    assert hasher.digests() == reference(data)
    assert hasher.size == len(data)


def test_known_vectors() -> None:
    hasher = Hasher()
    hasher.update(b"123456789")
    digests = hasher.digests()
    # The standard CRC check values for "123456789".
    assert digests["crc32"].hex() == "cbf43926"
    assert digests["crc32c"].hex() == "e3069283"
    assert digests["md5"].hex() == "25f9e794323b453885f5181f1b624d0b"


def test_subset_and_order_of_algorithms() -> None:
    hasher = Hasher(["crc32c", "md5", "crc32c"])
    hasher.update(b"abc")
    assert hasher.algorithms == ("crc32c", "md5")
    assert set(hasher.digests()) == {"crc32c", "md5"}
    assert set(Hasher().algorithms) == set(ALGORITHMS)


def test_digests_can_be_taken_midway() -> None:
    hasher = Hasher()
    hasher.update(b"abc")
    assert hasher.digests() == reference(b"abc")
    hasher.update(b"def")
    assert hasher.digests() == reference(b"abcdef")


def test_unknown_algorithm() -> None:
    with pytest.raises(ValueError, match="unknown checksum algorithm 'sha1'"):
        Hasher(["sha1"])  # type: ignore[list-item]


def test_base64_and_hex_helpers() -> None:
    digest = hashlib.md5(b"x").digest()
    assert to_base64(digest) == base64.b64encode(digest).decode()
    assert from_base64(to_base64(digest)) == digest
    assert to_hex(digest) == digest.hex()
    assert from_hex(to_hex(digest)) == digest
    assert from_hex(f'"{digest.hex()}"') == digest  # ETags come quoted
    with pytest.raises(ValueError, match="not valid base64"):
        from_base64("not base64!")
    with pytest.raises(ValueError, match="not a hex digest"):
        from_hex("xyz")
