"""Streaming decoder for `aws-chunked` request bodies (the STREAMING-* payload modes).

Wire format, per chunk: `<hex size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n`, ended by a
zero-size chunk, then (trailer modes) `name:value\\r\\n` lines and an empty line. Signed modes
chain each chunk signature from the request's seed signature; the signed trailer mode signs the
trailer block too. The decoder holds at most one chunk (signed modes: the chunk must be checked
before a byte of it moves on) or one network read (unsigned mode), never the whole body.

Trailer *values* (e.g. `x-amz-checksum-crc32`) are collected into `AwsChunkedBody.trailers`;
`residency.gateway.checksum` checks them against the payload.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import AsyncIterable, AsyncIterator, Sequence

from residency.gateway import errors
from residency.gateway.errors import S3Error
from residency.gateway.http import decimal
from residency.gateway.sigv4 import (
    EMPTY_SHA256,
    PayloadMode,
    RequestParts,
    VerifiedAuth,
    hmac_sha256,
    payload_mode,
)

__all__ = [
    "MAX_CHUNK_SIZE",
    "MAX_TRAILER_SECTION",
    "AwsChunkedBody",
    "declared_trailers",
    "decoded_content_length",
    "stored_content_encoding",
]

MAX_CHUNK_SIZE = 16 * 1024 * 1024
"""Largest chunk accepted in the signed modes (each chunk is held whole until checked)."""
MAX_CHUNK_HEADER = 4096
MAX_TRAILER_SECTION = 16 * 1024
_CRLF = b"\r\n"
_SIGNATURE_EXT = b"chunk-signature="
_TRAILER_SIGNATURE = "x-amz-trailer-signature"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")


def _framing(message: str) -> S3Error:
    return errors.invalid_request(f"The aws-chunked request body is malformed: {message}")


def decoded_content_length(req: RequestParts) -> int:
    """`x-amz-decoded-content-length`, which S3 requires for every aws-chunked upload."""
    value = req.header("x-amz-decoded-content-length")
    if value is None:
        raise errors.missing_content_length(
            "You must provide the x-amz-decoded-content-length header with an aws-chunked body."
        )
    length = decimal(value)
    if length is None:
        raise errors.invalid_argument(
            "x-amz-decoded-content-length must be a non-negative integer",
            name="x-amz-decoded-content-length",
            value=value,
        )
    return length


def declared_trailers(req: RequestParts) -> tuple[str, ...]:
    """Lower-case names listed in `x-amz-trailer` (the trailers the body promises)."""
    value = req.header("x-amz-trailer") or ""
    return tuple(name.strip().lower() for name in value.split(",") if name.strip())


def stored_content_encoding(value: str | None) -> str | None:
    """Content-Encoding to store for the object: the transfer framing `aws-chunked` removed."""
    if value is None:
        return None
    kept = [c.strip() for c in value.split(",") if c.strip() and c.strip() != "aws-chunked"]
    return ",".join(kept) or None


class _Reader:
    """Bytes from an async iterator with line and exact reads; holds one network read."""

    def __init__(self, raw: AsyncIterable[bytes]) -> None:
        self._it = aiter(raw)
        self._buf = bytearray()
        self._pos = 0
        self.eof = False

    @property
    def available(self) -> int:
        return len(self._buf) - self._pos

    async def _fill(self) -> bool:
        if self.eof:
            return False
        while True:
            try:
                piece = await anext(self._it)
            except StopAsyncIteration:
                self.eof = True
                return False
            if piece:
                break
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += piece
        return True

    async def line(self, limit: int) -> bytes | None:
        """The next CRLF-terminated line without its CRLF; None at end of input."""
        scanned = 0  # bytes after _pos known to hold no CRLF (positions move on _fill)
        while True:
            idx = self._buf.find(_CRLF, self._pos + scanned)
            if idx >= 0:
                line = bytes(self._buf[self._pos : idx])
                self._pos = idx + 2
                return line
            if self.available > limit:
                raise _framing(f"a line is longer than {limit} bytes")
            scanned = max(0, self.available - 1)
            if not await self._fill():
                if self.available and bytes(self._buf[self._pos :]) != b"\r":
                    raise errors.incomplete_body("The aws-chunked body ended inside a line.")
                self._pos = len(self._buf)
                return None

    async def some(self, limit: int) -> bytes:
        """Up to `limit` bytes (at least one); b"" at end of input."""
        if not self.available and not await self._fill():
            return b""
        end = min(len(self._buf), self._pos + limit)
        piece = bytes(self._buf[self._pos : end])
        self._pos = end
        return piece

    async def exact(self, size: int) -> bytes | None:
        parts: list[bytes] = []
        need = size
        while need:
            piece = await self.some(need)
            if not piece:
                return None
            parts.append(piece)
            need -= len(piece)
        return b"".join(parts)

    async def at_end(self) -> bool:
        return not self.available and not await self._fill()


class AwsChunkedBody:
    """Async iterator over the decoded payload of an aws-chunked body.

    Raises (while iterating): IncompleteBody when the body ends early or its size differs from
    `x-amz-decoded-content-length`; SignatureDoesNotMatch on a bad chunk or trailer signature;
    InvalidRequest on bad framing or an oversized signed chunk; MalformedTrailerError when the
    trailers differ from what `x-amz-trailer` declared. After the last payload byte has been
    yielded and the iterator is exhausted, `trailers` holds the (verified) trailer values.
    """

    def __init__(
        self,
        raw: AsyncIterable[bytes],
        *,
        payload: PayloadMode,
        decoded_content_length: int | None,
        declared_trailers: Sequence[str] = (),
        auth: VerifiedAuth | None = None,
        max_chunk_size: int = MAX_CHUNK_SIZE,
    ) -> None:
        if not payload.is_aws_chunked:
            raise ValueError(f"{payload} is not an aws-chunked payload mode")
        if payload.signs_chunks and auth is None:
            raise errors.access_denied(f"{payload.value} requires a signed request")
        self._reader = _Reader(raw)
        self._payload = payload
        self._expected = decoded_content_length
        self._declared = tuple(declared_trailers)
        self._auth = auth
        self._max_chunk = max_chunk_size
        self._previous = auth.seed_signature if auth is not None else ""
        self.trailers: dict[str, str] = {}
        self.decoded_size = 0
        self.finished = False

    @classmethod
    def from_request(
        cls, raw: AsyncIterable[bytes], req: RequestParts, auth: VerifiedAuth | None
    ) -> AwsChunkedBody:
        """Decoder configured from the request headers and its verified authorization."""
        announced = req.header("x-amz-content-sha256") or ""
        payload = auth.payload if auth is not None else payload_mode(announced)
        if not payload.is_aws_chunked:
            raise errors.invalid_request(f"{payload.value} is not an aws-chunked payload mode.")
        return cls(
            raw,
            payload=payload,
            decoded_content_length=decoded_content_length(req),
            declared_trailers=declared_trailers(req),
            auth=auth,
        )

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._decode()

    # --- signatures ---------------------------------------------------------------------

    def _check_signature(self, kind: str, digest_lines: str, provided: str) -> None:
        auth = self._auth
        assert auth is not None
        to_sign = (
            f"{kind}\n{auth.amz_date}\n{auth.credential.scope}\n{self._previous}\n{digest_lines}"
        )
        expected = hmac_sha256(auth.signing_key, to_sign).hex()
        if not hmac.compare_digest(expected, provided):
            raise errors.signature_does_not_match(
                access_key_id=auth.access_key_id,
                string_to_sign=to_sign,
                signature_provided=provided,
                message="The chunk signature we calculated does not match the signature you "
                "provided.",
            )
        self._previous = expected

    def _check_chunk(self, data: bytes, provided: str) -> None:
        digest = hashlib.sha256(data).hexdigest()
        self._check_signature("AWS4-HMAC-SHA256-PAYLOAD", f"{EMPTY_SHA256}\n{digest}", provided)

    # --- framing ------------------------------------------------------------------------

    def _parse_header(self, line: bytes) -> tuple[int, str | None]:
        size_text, _, extension = line.partition(b";")
        size_text = size_text.strip()
        if not _HEX_SIZE.fullmatch(size_text):  # int(x, 16) alone would take "0x1f" or "1_0"
            raise _framing(f"bad chunk size line {line[:80]!r}")
        size = int(size_text, 16)
        signature: str | None = None
        if self._payload.signs_chunks:
            extension = extension.strip()
            if not extension.startswith(_SIGNATURE_EXT):
                raise _framing("a chunk has no chunk-signature")
            signature = extension[len(_SIGNATURE_EXT) :].decode("latin-1").lower()
            if not _HEX64.fullmatch(signature):
                raise _framing("a chunk-signature is not 64 hexadecimal characters")
            if size > self._max_chunk:
                raise _framing(
                    f"a chunk of {size} bytes exceeds the limit of {self._max_chunk} bytes"
                )
        return size, signature

    def _count(self, size: int) -> None:
        self.decoded_size += size
        if self._expected is not None and self.decoded_size > self._expected:
            raise errors.incomplete_body(
                f"The aws-chunked body carries more than the {self._expected} bytes announced "
                "by x-amz-decoded-content-length."
            )

    async def _decode(self) -> AsyncIterator[bytes]:
        reader = self._reader
        while True:
            line = await reader.line(MAX_CHUNK_HEADER)
            if line is None:
                raise errors.incomplete_body(
                    "The aws-chunked body ended before its final zero-length chunk."
                )
            size, signature = self._parse_header(line)
            if size == 0:
                if signature is not None:
                    self._check_chunk(b"", signature)
                break
            self._count(size)
            if signature is not None:
                data = await reader.exact(size)
                if data is None:
                    raise errors.incomplete_body("The aws-chunked body ended inside a chunk.")
                self._check_chunk(data, signature)
                yield data
            else:
                remaining = size
                while remaining:
                    piece = await reader.some(remaining)
                    if not piece:
                        raise errors.incomplete_body("The aws-chunked body ended inside a chunk.")
                    remaining -= len(piece)
                    yield piece
            end = await reader.exact(2)
            if end is None:
                raise errors.incomplete_body("The aws-chunked body ended inside a chunk.")
            if end != _CRLF:
                raise _framing("chunk data is not followed by CRLF (wrong chunk size?)")
        await self._read_trailers()
        if self._expected is not None and self.decoded_size != self._expected:
            raise errors.incomplete_body(
                f"The aws-chunked body carries {self.decoded_size} bytes but "
                f"x-amz-decoded-content-length announced {self._expected}."
            )
        if not await reader.at_end():
            raise _framing("data follows the end of the aws-chunked body")
        self.finished = True

    async def _read_trailers(self) -> None:
        reader = self._reader
        lines: list[tuple[str, str]] = []
        budget = MAX_TRAILER_SECTION
        ended = False
        while True:
            line = await reader.line(budget)
            if line is None:
                break  # end of input without the final CRLF: fine if nothing is missing
            if line == b"":
                ended = True
                break
            budget -= len(line) + 2
            if budget < 0:
                raise errors.malformed_trailer("the trailer section is too large")
            name, sep, value = line.decode("utf-8", "replace").partition(":")
            if not sep or not name.strip():
                raise errors.malformed_trailer(f"bad trailer line {line[:80]!r}")
            lines.append((name.strip().lower(), value.strip()))

        if not self._payload.has_trailer:
            if lines:
                raise errors.malformed_trailer(
                    f"{self._payload.value} bodies carry no trailers (x-amz-content-sha256 "
                    "announces a mode without trailer)"
                )
            return
        if not ended:
            received = {name for name, _ in lines}
            if any(name not in received for name in self._declared) or (
                self._payload.signs_chunks and _TRAILER_SIGNATURE not in received
            ):
                raise errors.incomplete_body("The aws-chunked body ended inside its trailers.")
        provided_signature: str | None = None
        if self._payload.signs_chunks:
            if not lines or lines[-1][0] != _TRAILER_SIGNATURE:
                raise errors.malformed_trailer("x-amz-trailer-signature must end the trailers")
            provided_signature = lines.pop()[1].lower()
            if not _HEX64.fullmatch(provided_signature):
                raise errors.malformed_trailer(
                    "x-amz-trailer-signature is not 64 hexadecimal characters"
                )
        trailers: dict[str, str] = {}
        for name, value in lines:
            if name == _TRAILER_SIGNATURE:
                raise errors.malformed_trailer("unexpected x-amz-trailer-signature")
            if name in trailers:
                raise errors.malformed_trailer(f"trailer {name} appears twice")
            if name not in self._declared:
                raise errors.malformed_trailer(f"trailer {name} was not declared in x-amz-trailer")
            trailers[name] = value
        missing = [name for name in self._declared if name not in trailers]
        if missing:
            raise errors.malformed_trailer(
                f"x-amz-trailer declared {', '.join(missing)} but the body did not send it"
            )
        if provided_signature is not None:
            canonical = "".join(f"{name}:{value}\n" for name, value in lines)
            digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
            self._check_signature("AWS4-HMAC-SHA256-TRAILER", digest, provided_signature)
        self.trailers = trailers
