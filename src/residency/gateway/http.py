"""HTTP semantics S3 layers on GET/HEAD/PUT/copy: byte ranges, conditional requests, dates.

Pure functions over header values: handlers pass what they read from the request and the
object's validators (ETag, Last-Modified, size) and get a value back or an `S3Error`. Plus the
one response type Starlette lacks: headers from us, body from a file the server sends itself.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from residency.gateway import errors

PATHSEND = "http.response.pathsend"

__all__ = [
    "PATHSEND",
    "ByteRange",
    "CopySource",
    "PathSendResponse",
    "check_copy_source_conditions",
    "check_preconditions",
    "decimal",
    "http_date",
    "offers_pathsend",
    "parse_copy_source",
    "parse_copy_source_range",
    "parse_http_date",
    "parse_range",
]

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE | re.ASCII)
_BEYOND_ANY_OBJECT = 10**20
"""Stands for a byte offset of more than 20 digits: past the end of every object, and never
an `int()` of thousands of digits (which Python refuses with ValueError)."""


def _offset(digits: str) -> int:
    return int(digits) if len(digits) <= 20 else _BEYOND_ANY_OBJECT


def decimal(value: str | None) -> int | None:
    """A non-negative decimal of ASCII digits (at most 20, surrounding blanks allowed);
    None for anything else. `str.isdigit` alone would take '²' or '٣', and `int` of
    thousands of digits raises: request numbers go through here instead."""
    if value is None:
        return None
    text = value.strip()
    if not 0 < len(text) <= 20 or not text.isascii() or not text.isdigit():
        return None
    return int(text)


@dataclass(frozen=True, slots=True)
class ByteRange:
    """An inclusive byte range `start..end` of an object of `size` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


def offers_pathsend(scope: Scope) -> bool:
    """Whether the ASGI server sends files itself (granian does; uvicorn does not)."""
    return PATHSEND in scope.get("extensions", {})


class PathSendResponse(Response):
    """A response whose body is the whole file at `path`, sent by the ASGI server.

    Unlike Starlette's `FileResponse` it takes every header from the caller (Content-Length,
    Content-Range, ETag and the rest are the object's, already decided) and never interprets
    the request's `Range` or `If-Range` itself. Only for servers that `offers_pathsend`.
    """

    def __init__(self, path: Path, status_code: int, headers: Mapping[str, str]) -> None:
        super().__init__(None, status_code=status_code, headers=headers)
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": PATHSEND, "path": str(self.path)})


def http_date(moment: datetime) -> str:
    """RFC 7231 IMF-fixdate (`Mon, 23 Nov 2026 09:21:26 GMT`) for Last-Modified and friends."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP date (IMF-fixdate, RFC 850 or asctime) in UTC; None when absent or invalid."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
        if parsed is None:
            return None
        # Year 9999 with a negative offset is past datetime.max in UTC: no date, not a crash.
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def parse_range(value: str | None, size: int) -> ByteRange | None:
    """The `Range` of a GET/HEAD; None means "send the whole object".

    As S3 does: a header that does not parse, or asks for several ranges, is ignored (whole
    object, 200); a well-formed single range that misses the object is InvalidRange (416).
    """
    if value is None:
        return None
    if "," in value:
        return None
    match = _RANGE.match(value)
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:  # suffix: the last n bytes
        suffix = _offset(last)
        if suffix == 0 or size == 0:
            raise errors.invalid_range(size, value)
        return ByteRange(max(0, size - suffix), size - 1, size)
    start = _offset(first)
    end = _offset(last) if last else size - 1
    if last and end < start:
        return None  # syntactically invalid per RFC 9110: ignored
    if start >= size:
        raise errors.invalid_range(size, value)
    return ByteRange(start, min(end, size - 1), size)


def parse_copy_source_range(value: str, size: int) -> ByteRange:
    """`x-amz-copy-source-range: bytes=first-last` (UploadPartCopy): both ends required."""
    match = _RANGE.match(value)
    if match is None or not match.group(1) or not match.group(2):
        raise errors.invalid_argument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where "
            "first and last are the zero-based offsets of the first and last bytes to copy",
            name="x-amz-copy-source-range",
            value=value,
        )
    start, end = _offset(match.group(1)), _offset(match.group(2))
    if end < start:
        raise errors.invalid_argument(
            "The x-amz-copy-source-range value must have first <= last",
            name="x-amz-copy-source-range",
            value=value,
        )
    if end >= size:  # S3 (and the s3-tests conformance suite): InvalidRange
        raise errors.invalid_range(size, value)
    return ByteRange(start, end, size)


@dataclass(frozen=True, slots=True)
class CopySource:
    bucket: str
    key: str
    version_id: str | None = None


def parse_copy_source(value: str) -> CopySource:
    """`x-amz-copy-source: [/]bucket/key[?versionId=v]`, key URL-decoded."""
    raw = value.strip()
    path, _, query = raw.partition("?")
    try:
        path = urllib.parse.unquote(path, errors="strict").lstrip("/")
    except UnicodeDecodeError:  # never U+FFFD: that would name another object
        raise errors.invalid_argument(
            "Invalid copy source encoding: percent-encoded bytes that are not UTF-8",
            name="x-amz-copy-source",
            value=value,
        ) from None
    bucket, _, key = path.partition("/")
    version_id: str | None = None
    if query:
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        version_id = params.get("versionId") or None
    if not bucket or not key:
        raise errors.invalid_argument(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            name="x-amz-copy-source",
            value=value,
        )
    return CopySource(bucket, key, version_id)


def _etags(value: str) -> list[str]:
    tags: list[str] = []
    for item in value.split(","):
        tag = item.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        tag = tag.strip('"')
        if tag:
            tags.append(tag)
    return tags


def _etag_matches(header: str, etag: str | None) -> bool:
    if etag is None:
        return False
    if header.strip() == "*":
        return True
    return etag.strip('"') in _etags(header)


def _seconds(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class _Conditions:
    if_match: str | None
    if_none_match: str | None
    if_modified_since: datetime | None
    if_unmodified_since: datetime | None


def _read(headers: Mapping[str, str], prefix: str) -> _Conditions:
    lower = {k.lower(): v for k, v in headers.items()}
    return _Conditions(
        if_match=lower.get(f"{prefix}if-match"),
        if_none_match=lower.get(f"{prefix}if-none-match"),
        if_modified_since=parse_http_date(lower.get(f"{prefix}if-modified-since")),
        if_unmodified_since=parse_http_date(lower.get(f"{prefix}if-unmodified-since")),
    )


def check_preconditions(
    headers: Mapping[str, str],
    *,
    etag: str | None,
    last_modified: datetime | None,
    method: str = "GET",
) -> None:
    """RFC 9110 §13.2.2 evaluation order with S3's precedence; raises 412 or 304.

    `etag` (quoted or not) and `last_modified` describe the current object; pass `etag=None`
    when no object exists (a conditional PUT). If-Match decides alone when present (S3: a
    true If-Match overrides a false If-Unmodified-Since), likewise If-None-Match over
    If-Modified-Since. A failed If-None-Match or If-Modified-Since is 304 Not Modified for
    GET/HEAD and 412 for other methods; If-Modified-Since only applies to GET/HEAD.
    """
    c = _read(headers, "")
    safe = method.upper() in ("GET", "HEAD")
    modified = _seconds(last_modified) if last_modified is not None else None

    if c.if_match is not None:
        if not _etag_matches(c.if_match, etag):
            raise errors.precondition_failed("If-Match")
    elif (
        c.if_unmodified_since is not None
        and modified is not None
        and modified > c.if_unmodified_since
    ):
        raise errors.precondition_failed("If-Unmodified-Since")

    def not_modified() -> errors.S3Error:
        return errors.not_modified(
            etag=f'"{etag.strip(chr(34))}"' if etag else None,
            last_modified=http_date(modified) if modified else None,
        )

    if c.if_none_match is not None:
        if _etag_matches(c.if_none_match, etag):
            if safe:
                raise not_modified()
            raise errors.precondition_failed("If-None-Match")
    elif (
        c.if_modified_since is not None
        and safe
        and modified is not None
        and modified <= c.if_modified_since
    ):
        raise not_modified()


def check_copy_source_conditions(
    headers: Mapping[str, str], *, etag: str, last_modified: datetime
) -> None:
    """`x-amz-copy-source-if-*` for CopyObject / UploadPartCopy: every failure is 412.

    Same precedence as GET: a true if-match wins over a false if-unmodified-since, a false
    if-none-match decides over if-modified-since.
    """
    c = _read(headers, "x-amz-copy-source-")
    modified = _seconds(last_modified)
    if c.if_match is not None:
        if not _etag_matches(c.if_match, etag):
            raise errors.precondition_failed("x-amz-copy-source-If-Match")
    elif c.if_unmodified_since is not None and modified > c.if_unmodified_since:
        raise errors.precondition_failed("x-amz-copy-source-If-Unmodified-Since")
    if c.if_none_match is not None:
        if _etag_matches(c.if_none_match, etag):
            raise errors.precondition_failed("x-amz-copy-source-If-None-Match")
    elif c.if_modified_since is not None and modified <= c.if_modified_since:
        raise errors.precondition_failed("x-amz-copy-source-If-Modified-Since")
