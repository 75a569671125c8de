"""Plain values that describe a version to write: its attributes, checksums and segments."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from residency.meta.errors import InvalidArgument, InvalidKey

MAX_KEY_BYTES = 1024


class Digests(Protocol):
    """Anything with raw digests, e.g. `residency.storage.BlobInfo`."""

    @property
    def md5(self) -> bytes: ...
    @property
    def sha256(self) -> bytes: ...
    @property
    def crc32c(self) -> bytes: ...
    @property
    def crc32(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Checksums:
    """Checksums as S3 shows them: `md5` hex, the others base64."""

    md5: str | None = None
    sha256: str | None = None
    crc32c: str | None = None
    crc32: str | None = None

    @classmethod
    def from_digests(cls, d: Digests) -> Checksums:
        def b64(raw: bytes) -> str:
            return base64.b64encode(raw).decode("ascii")

        return cls(md5=d.md5.hex(), sha256=b64(d.sha256), crc32c=b64(d.crc32c), crc32=b64(d.crc32))


@dataclass(frozen=True, slots=True)
class ObjectChecksum:
    """The checksum S3 shows for an object: what the client sent, or the CRC64NVME default."""

    algorithm: str
    """Upper case, as S3 names it: CRC32, CRC32C, CRC64NVME, SHA1, SHA256."""
    type: str
    """FULL_OBJECT, or COMPOSITE for a multipart checksum of the part checksums."""
    value: str
    """Base64 (with `-N` when COMPOSITE)."""


@dataclass(frozen=True, slots=True)
class VersionAttrs:
    """What the request and the policy decided about an object, besides its bytes."""

    data_class: str
    subject: str | None = None
    subject_count: int | None = None
    rule: str | None = None
    content_type: str | None = None
    user_metadata: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    content_headers: Mapping[str, str] = field(default_factory=dict)
    """Cache-Control, Content-Disposition, Content-Encoding, Content-Language, Expires."""


@dataclass(frozen=True, slots=True)
class SegmentSpec:
    blob_key: str
    size: int
    etag: str
    checksum: str | None = None
    """A multipart part's checksum in the object's checksum algorithm."""


def check_object_key(key: str) -> None:
    """S3 keys are 1 to 1024 bytes of UTF-8."""
    if not key:
        raise InvalidArgument("The object key must not be empty.")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument("The object key is not valid UTF-8.") from None
    if len(encoded) > MAX_KEY_BYTES:
        raise InvalidKey(
            f"Your key is too long: {len(encoded)} bytes of UTF-8, at most {MAX_KEY_BYTES}."
        )
