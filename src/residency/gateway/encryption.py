"""Server-side encryption is not implemented: a request that asks for it is refused.

S3 clients ask with headers (`--sse AES256`, `aws:kms` with a key id, SSE-C keys). Ignoring
them would store plaintext while the client believes it asked for, and got, encryption. So
until SSE exists, a write that names any of them is `501 NotImplemented`, naming the header,
before the body is read: nothing is stored. The check runs once, in the request pipeline
(`app._dispatch`), for every operation that stores bytes.
"""

from __future__ import annotations

from collections.abc import Iterable

from residency.gateway.errors import S3Error

WRITES = frozenset(
    {"PutObject", "CopyObject", "CreateMultipartUpload", "UploadPart", "UploadPartCopy"}
)
"""The operations whose bytes SSE headers would ask to be encrypted (or decrypted, for a copy's
SSE-C source)."""

PREFIXES = ("x-amz-server-side-encryption", "x-amz-copy-source-server-side-encryption")
"""SSE-S3 and SSE-KMS (`…`, `…-aws-kms-key-id`, `…-context`, `…-bucket-key-enabled`),
SSE-C (`…-customer-algorithm`, `…-customer-key`, `…-customer-key-md5`) and a copy source's
SSE-C key: every header S3 defines for server-side encryption starts with one of these."""


def encryption_header(header_names: Iterable[str]) -> str | None:
    """The first SSE header among `header_names` (lowercase, as ASGI gives them), if any."""
    for name in header_names:
        if name.startswith(PREFIXES):
            return name
    return None


def refuse_encryption(operation: str, header_names: Iterable[str]) -> None:
    """Raise `NotImplemented` (501) if a write asks for server-side encryption."""
    if operation not in WRITES:
        return
    header = encryption_header(header_names)
    if header is not None:
        raise S3Error(
            "NotImplemented",
            f"Server-side encryption is not implemented by this gateway, so the request was "
            f"refused and nothing was stored ({header}). Send it without server-side "
            "encryption headers, or encrypt the data before uploading it.",
            header=header,
        )
