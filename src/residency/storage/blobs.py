"""What storage says about a blob: its key rules, its listing entry, and a finished write."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from residency.storage.checksums import Algorithm
from residency.storage.errors import InvalidBlobKey

__all__ = ["BlobInfo", "BlobStat", "Written", "validate_key"]


@dataclass(frozen=True, slots=True)
class BlobStat:
    """A blob's key and size; `last_modified` when the backend reports it (for sweep grace)."""

    key: str
    size: int
    last_modified: datetime | None = None


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A completed write: size and raw digests of exactly the bytes stored."""

    size: int
    md5: bytes
    sha256: bytes
    crc32c: bytes
    crc32: bytes

    @property
    def etag(self) -> str:
        """The S3 ETag of a single-part object: hex MD5, unquoted."""
        return self.md5.hex()


@dataclass(frozen=True, slots=True)
class Written:
    """A completed copy: its size and the digests it was asked for, over exactly the bytes
    stored (a copy computes only what it verifies, not every checksum a gateway PUT needs)."""

    size: int
    digests: Mapping[Algorithm, bytes]


def validate_key(key: str, *, location: str | None = None) -> str:
    """Reject keys that OpenDAL would normalise into another key or outside the root.

    OpenDAL collapses `a//b` to `a/b` and strips a leading `/`, and a trailing `/` names a
    directory; `.`/`..` segments could climb out of an `fs` root. Any of these would let two
    distinct object keys share one blob, so they are refused rather than rewritten.
    """
    problem = None
    if not key:
        problem = "is empty"
    elif key.startswith("/") or key.endswith("/"):
        problem = "starts or ends with '/'"
    elif "//" in key:
        problem = "contains an empty path segment ('//')"
    elif any(part in (".", "..") for part in key.split("/")):
        problem = "contains a '.' or '..' segment"
    elif "\x00" in key:
        problem = "contains a NUL byte"
    if problem is not None:
        raise InvalidBlobKey(f"invalid blob key: it {problem}", location=location, key=key)
    return key
