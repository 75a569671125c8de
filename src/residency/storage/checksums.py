"""Checksums computed once while bytes stream past: MD5 (ETag), SHA-256, CRC32C and CRC32.

Digests are raw bytes, big-endian for the CRCs, exactly as S3 encodes them in base64 in
`x-amz-checksum-crc32c` / `x-amz-checksum-crc32` and in hex in ETags.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Iterable
from typing import Final, Literal, Protocol

import google_crc32c

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "Hasher",
    "from_base64",
    "from_hex",
    "to_base64",
    "to_hex",
]

Algorithm = Literal["md5", "sha256", "crc32c", "crc32"]
ALGORITHMS: Final[tuple[Algorithm, ...]] = ("md5", "sha256", "crc32c", "crc32")


class _Running(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


class _Crc32:
    """zlib's CRC32 (the S3 `CRC32` checksum) with the hashlib interface."""

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes, /) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


class _Crc32c:
    """Castagnoli CRC via google-crc32c (C implementation, releases the GIL on big buffers)."""

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes, /) -> None:
        self._value = google_crc32c.extend(self._value, data)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


def _new(algorithm: Algorithm) -> _Running:
    if algorithm == "md5":
        return hashlib.md5(usedforsecurity=False)
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "crc32c":
        return _Crc32c()
    if algorithm == "crc32":
        return _Crc32()
    raise ValueError(f"unknown checksum algorithm {algorithm!r}; use one of {ALGORITHMS}")


class Hasher:
    """Feeds every byte once to several running checksums and counts them."""

    def __init__(self, algorithms: Iterable[Algorithm] = ALGORITHMS) -> None:
        self._running = {name: _new(name) for name in dict.fromkeys(algorithms)}
        self.size = 0

    @property
    def algorithms(self) -> tuple[Algorithm, ...]:
        return tuple(self._running)

    def update(self, data: bytes) -> None:
        for running in self._running.values():
            running.update(data)
        self.size += len(data)

    def digests(self) -> dict[Algorithm, bytes]:
        """Digests of everything fed so far (the hasher can keep going afterwards)."""
        return {name: running.digest() for name, running in self._running.items()}


def to_base64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def from_base64(text: str) -> bytes:
    """Decode a base64 checksum header value; ValueError if it is not valid base64."""
    try:
        return base64.b64decode(text.strip(), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not valid base64: {text!r}") from exc


def to_hex(digest: bytes) -> str:
    return digest.hex()


def from_hex(text: str) -> bytes:
    """Decode a hex digest (an ETag may come quoted); ValueError if it is not hex."""
    try:
        return bytes.fromhex(text.strip().strip('"'))
    except ValueError as exc:
        raise ValueError(f"not a hex digest: {text!r}") from exc
