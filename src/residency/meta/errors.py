"""Domain errors of the metadata layer.

Each error carries the S3 error `code` it stands for, so the gateway maps it to an XML error
without a lookup table, and the CLI prints its message as one readable line.
"""

from __future__ import annotations

from typing import ClassVar


class MetaError(Exception):
    """Base of every error this layer raises on purpose."""

    code: ClassVar[str] = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DatabaseConfigError(MetaError):
    """The database URL is malformed or its driver is not installed."""


class NoDatabase(DatabaseConfigError):
    """A command that only reads found no residency database where it looked.

    Creating an empty one there would answer "all clear" about data it never saw.
    """


class InvalidName(MetaError):
    """A tenant, principal or access key name breaks the naming rules."""

    code = "InvalidArgument"


class AlreadyExists(MetaError):
    """A tenant, principal or access key with this name already exists."""

    code = "InvalidArgument"


class NotFound(MetaError):
    """Something the caller named does not exist."""

    code = "NoSuchEntity"


class NoSuchTenant(NotFound):
    code = "NoSuchEntity"


class NoSuchPrincipal(NotFound):
    code = "NoSuchEntity"


class NoSuchAccessKey(NotFound):
    code = "InvalidAccessKeyId"


class InvalidBucketName(MetaError):
    code = "InvalidBucketName"


class BucketAlreadyExists(MetaError):
    """The name is taken by another tenant (bucket names are global)."""

    code = "BucketAlreadyExists"


class BucketAlreadyOwnedByYou(MetaError):
    code = "BucketAlreadyOwnedByYou"


class NoSuchBucket(NotFound):
    code = "NoSuchBucket"


class BucketNotEmpty(MetaError):
    code = "BucketNotEmpty"


class NoSuchKey(NotFound):
    code = "NoSuchKey"


class InvalidKey(MetaError):
    """An object key is empty or longer than S3 allows (1024 bytes of UTF-8)."""

    code = "KeyTooLongError"


class InvalidTag(MetaError):
    code = "InvalidTag"


class InvalidArgument(MetaError):
    code = "InvalidArgument"


class NoSuchUpload(NotFound):
    code = "NoSuchUpload"


class InvalidPart(MetaError):
    code = "InvalidPart"


class InvalidPartOrder(MetaError):
    code = "InvalidPartOrder"


class EntityTooSmall(MetaError):
    code = "EntityTooSmall"


class MalformedPartList(MetaError):
    """CompleteMultipartUpload named no part at all."""

    code = "MalformedXML"


class IntentMissing(MetaError):
    """A commit names a blob that has no live write intent (never registered, or swept).

    The version is not made visible: its bytes may already be gone.
    """

    code = "InternalError"


class BlobBusy(MetaError):
    """The sweep is deleting an old copy under this key at this location; retry shortly."""

    code = "SlowDown"
