"""Storage errors: a few types callers act on, each naming the location and key involved.

OpenDAL raises its own exception classes from operator calls, but its async file objects raise
plain `OSError`s whose message starts with the error kind ("NotFound (permanent) at read ...").
`map_opendal_error` reads both and keeps one line of cause, so a user sees what went wrong
without a Rust backtrace.
"""

from __future__ import annotations

import re
from typing import Any

import opendal

__all__ = [
    "BlobNotFound",
    "InvalidBlobKey",
    "LocationUnavailable",
    "SizeMismatch",
    "StorageConfigError",
    "StorageError",
    "StoragePermissionDenied",
    "describe_opendal_error",
    "error_kind",
    "map_opendal_error",
]


class StorageError(Exception):
    """Something went wrong storing or fetching bytes at a location."""

    def __init__(self, message: str, *, location: str | None = None, key: str | None = None):
        self.location = location
        self.key = key
        self.detail = message
        super().__init__(_compose(message, location, key))

    def __reduce__(self) -> tuple[Any, ...]:
        # Survive pickling (process pools, Ray tasks) with location/key intact.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[StorageError], args: tuple[Any, ...], state: dict[str, Any]) -> StorageError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class BlobNotFound(StorageError):
    """The blob does not exist at this location."""


class LocationUnavailable(StorageError):
    """The location cannot serve requests now (down, unreachable, root gone, misconfigured).

    Readers fail over to another replica on this error; writers abort the write.
    """


class StoragePermissionDenied(StorageError):
    """The location refused the credentials for this operation."""


class StorageConfigError(StorageError):
    """A location's scheme or options are wrong; it cannot be opened."""


class InvalidBlobKey(StorageError, ValueError):
    """A blob key that could alias another key or escape the location's root."""


class SizeMismatch(StorageError):
    """The source stream ended before, or ran past, the size the caller declared."""

    def __init__(
        self, *, expected: int, actual: int, location: str | None = None, key: str | None = None
    ):
        self.expected = expected
        self.actual = actual
        what = "ended early" if actual < expected else "ran past the declared size"
        super().__init__(
            f"source {what}: expected {expected} bytes, got {actual}"
            + ("" if actual < expected else " or more"),
            location=location,
            key=key,
        )


def _compose(message: str, location: str | None, key: str | None) -> str:
    where = []
    if location is not None:
        where.append(f"location {location!r}")
    if key is not None:
        where.append(f"key {key!r}")
    return f"{message} ({', '.join(where)})" if where else message


_KINDS = {
    opendal.exceptions.NotFound: "NotFound",
    opendal.exceptions.PermissionDenied: "PermissionDenied",
    opendal.exceptions.ConfigInvalid: "ConfigInvalid",
    opendal.exceptions.Unexpected: "Unexpected",
    opendal.exceptions.Unsupported: "Unsupported",
    opendal.exceptions.IsADirectory: "IsADirectory",
    opendal.exceptions.NotADirectory: "NotADirectory",
    opendal.exceptions.AlreadyExists: "AlreadyExists",
    opendal.exceptions.IsSameFile: "IsSameFile",
    opendal.exceptions.ConditionNotMatch: "ConditionNotMatch",
    opendal.exceptions.RateLimited: "RateLimited",
    opendal.exceptions.RangeNotSatisfied: "RangeNotSatisfied",
    opendal.exceptions.Conflict: "Conflict",
}
# Kinds that say this request was wrong, not that the location is down.
_REQUEST_ERRORS = frozenset(
    {
        "Unsupported",
        "IsADirectory",
        "NotADirectory",
        "AlreadyExists",
        "IsSameFile",
        "ConditionNotMatch",
        "Conflict",
        "RangeNotSatisfied",
    }
)
_KIND_PREFIX = re.compile(r"^(\w+) \((?:permanent|temporary|persistent)\)")
_SOURCE_BLOCK = re.compile(r"\n\s*Source:\s*\n\s*(.+)")
_SOURCE_INLINE = re.compile(r", source: (.+)$")
_STATUS = re.compile(r"status: (\d{3})")
_SERVICE_ERROR = re.compile(r'\w+Error \{ code: "([^"]*)", message: "([^"]*)".*?\}')


def error_kind(exc: BaseException) -> str | None:
    """The OpenDAL error kind of `exc` ("NotFound", "Unexpected", ...), or None if not OpenDAL's."""
    for cls, kind in _KINDS.items():
        if isinstance(exc, cls):
            return kind
    if isinstance(exc, OSError):
        match = _KIND_PREFIX.match(str(exc))
        if match:
            return match.group(1)
    return None


def describe_opendal_error(exc: BaseException) -> str:
    """One readable line out of OpenDAL's multi-line message (no context dump, no backtrace)."""
    text = str(exc).split("\n\nBacktrace", 1)[0]
    head = text.split("\n", 1)[0]
    head = re.sub(r", context: \{.*?\} =>", " =>", head)
    if _KIND_PREFIX.match(head) and " => " in head:
        head = head.split(" => ", 1)[1]  # drop "Unexpected (persistent) at stat =>"
    else:
        head = _KIND_PREFIX.sub(r"\1", head, count=1)
        status = _STATUS.search(text)
        if status is not None:  # a bare "Unexpected at stat": the HTTP status is the story
            head += f": HTTP {status.group(1)}"
    source = _SOURCE_BLOCK.search(text) or _SOURCE_INLINE.search(head)
    if source is not None and source.re is _SOURCE_INLINE:
        head = head[: source.start()]
    line = head.strip().rstrip(":")
    if source is not None:
        line += f": {source.group(1).strip()}"
    # Service errors print as `S3Error { code: "NoSuchBucket", message: "...", request_id: ...}`.
    line = _SERVICE_ERROR.sub(lambda m: f"{m.group(1)}: {m.group(2)}", line)
    return line[:400]


def map_opendal_error(
    exc: BaseException, *, location: str, key: str | None, op: str
) -> StorageError:
    """Turn an OpenDAL failure of operation `op` into the StorageError callers act on."""
    kind = error_kind(exc)
    cause = describe_opendal_error(exc)
    if kind == "NotFound" and op not in ("list", "check"):
        return BlobNotFound(f"blob not found during {op}", location=location, key=key)
    if kind == "PermissionDenied":
        return StoragePermissionDenied(f"{op} denied: {cause}", location=location, key=key)
    if kind in _REQUEST_ERRORS:
        return StorageError(f"{op} failed: {cause}", location=location, key=key)
    # Unexpected (network, 5xx, timeouts), RateLimited after retries, ConfigInvalid at run time
    # (e.g. bucket does not exist), NotFound on the location itself: the location cannot serve.
    return LocationUnavailable(f"{op} failed: {cause}", location=location, key=key)
