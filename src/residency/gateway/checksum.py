"""Request body integrity: Content-MD5, x-amz-content-sha256, x-amz-checksum-* (header or trailer).

The handler wraps the raw body once and streams the result to storage:

    body = checksum.verified_body(request.stream(), req, auth)   # checks headers up front
    info = await write_replicated(locations, blob_key, body)      # raises at end of stream
    headers.update(body.response_headers())                       # x-amz-checksum-* echo

Hashes run as bytes flow; every comparison happens when the stream ends, so a mismatch
surfaces as an exception from the iterator *before* the handler commits any metadata (and the
storage layer deletes what it wrote). Nothing is buffered here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import awscrt.checksums
import google_crc32c

from residency.gateway import errors
from residency.gateway.chunked import AwsChunkedBody, declared_trailers, decoded_content_length
from residency.gateway.http import decimal
from residency.gateway.sigv4 import PayloadMode, RequestParts, VerifiedAuth, payload_mode

__all__ = [
    "ALGORITHMS",
    "DIGEST_SIZES",
    "BodyExpectations",
    "Digesting",
    "ExpectedChecksum",
    "Hasher",
    "VerifiedBody",
    "combine_full_object",
    "composite",
    "decode_checksum",
    "expectations",
    "new_hasher",
    "parse_content_md5",
    "verified_body",
]

ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
DEFAULT_ALGORITHM = "crc64nvme"
"""What S3 stores for an object whose upload sent no checksum (since 2025)."""
FULL_OBJECT = "FULL_OBJECT"
COMPOSITE = "COMPOSITE"
MULTIPART_TYPES: Mapping[str, tuple[str, ...]] = {
    "crc32": (COMPOSITE, FULL_OBJECT),
    "crc32c": (COMPOSITE, FULL_OBJECT),
    "crc64nvme": (FULL_OBJECT,),
    "sha1": (COMPOSITE,),
    "sha256": (COMPOSITE,),
}
"""The checksum types a multipart upload may use per algorithm, the default first (S3's)."""
DIGEST_SIZES: Mapping[str, int] = {
    "crc32": 4,
    "crc32c": 4,
    "crc64nvme": 8,
    "sha1": 20,
    "sha256": 32,
}
_HEADER_PREFIX = "x-amz-checksum-"
# Headers that share the prefix but carry no checksum value.
_NOT_CHECKSUMS = frozenset(
    {"x-amz-checksum-type", "x-amz-checksum-algorithm", "x-amz-checksum-mode"}
)


class Hasher(Protocol):
    def update(self, data: bytes) -> None: ...

    def digest(self) -> bytes: ...


class _Crc32:
    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return (self._value & 0xFFFFFFFF).to_bytes(4, "big")


class _Crc32c:
    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes) -> None:
        self._value = google_crc32c.extend(self._value, data)

    def digest(self) -> bytes:
        return int(self._value).to_bytes(4, "big")


class _Crc64Nvme:
    """CRC-64/NVME from awscrt (the AWS SDKs' own, hardware-accelerated implementation)."""

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes) -> None:
        self._value = int(awscrt.checksums.crc64nvme(data, self._value))

    def digest(self) -> bytes:
        return (self._value & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")


def new_hasher(algorithm: str) -> Hasher:
    """An incremental hasher for an S3 checksum algorithm name (any case)."""
    name = algorithm.lower()
    if name == "crc32":
        return _Crc32()
    if name == "crc32c":
        return _Crc32c()
    if name == "crc64nvme":
        return _Crc64Nvme()
    if name in ("sha1", "sha256", "md5"):
        hasher: Any = hashlib.new(name)
        return hasher  # type: ignore[no-any-return]
    raise errors.invalid_request(
        f"Checksum algorithm {algorithm!r} is not supported; use one of "
        f"{', '.join(a.upper() for a in ALGORITHMS)}."
    )


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _decode_b64(value: str) -> bytes | None:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def decode_checksum(algorithm: str, value: str) -> bytes | None:
    """The raw digest a base64 checksum value stands for; None unless it is exactly one
    digest of `algorithm` (lower case) in valid base64."""
    digest = _decode_b64(value)
    if digest is None or len(digest) != DIGEST_SIZES[algorithm]:
        return None
    return digest


_COMBINE: Mapping[str, Callable[[int, int, int], int]] = {
    "crc32": awscrt.checksums.combine_crc32,
    "crc32c": awscrt.checksums.combine_crc32c,
    "crc64nvme": awscrt.checksums.combine_crc64nvme,
}


def combine_full_object(algorithm: str, parts: Iterable[tuple[bytes, int]]) -> str:
    """The CRC (base64) of the concatenation of parts, each given as (its CRC, its size),
    computed from the part CRCs alone (awscrt's combine): no byte is read again."""
    combine = _COMBINE[algorithm]
    size = DIGEST_SIZES[algorithm]
    value = 0
    for digest, length in parts:
        value = combine(value, int.from_bytes(digest, "big"), length)
    return _b64(value.to_bytes(size, "big"))


def composite(algorithm: str, digests: Sequence[bytes]) -> str:
    """S3's COMPOSITE checksum: the checksum of the concatenated part digests, then `-N`."""
    hasher = new_hasher(algorithm)
    for digest in digests:
        hasher.update(digest)
    return f"{_b64(hasher.digest())}-{len(digests)}"


class Digesting:
    """Bytes passing through (a copy's source stream) with one checksum computed on the way;
    `value` (base64) once the stream has ended."""

    def __init__(self, source: AsyncIterable[bytes], algorithm: str) -> None:
        self._source = source
        self.algorithm = algorithm.lower()
        self._hasher = new_hasher(self.algorithm)
        self.value: str | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        async for chunk in self._source:
            self._hasher.update(chunk)
            yield chunk
        self.value = _b64(self._hasher.digest())


def parse_content_md5(value: str) -> bytes:
    """The 16 raw bytes of a Content-MD5 header; InvalidDigest when it is not that."""
    digest = _decode_b64(value)
    if digest is None or len(digest) != 16:
        raise errors.invalid_digest(content_md5=value)
    return digest


@dataclass(frozen=True, slots=True)
class ExpectedChecksum:
    algorithm: str
    """Lower-case algorithm name, e.g. `crc32c`."""
    value: str | None
    """Base64 digest from the header; None while it is still to come in a trailer."""
    in_trailer: bool = False


@dataclass(frozen=True, slots=True)
class BodyExpectations:
    """Everything the request promises about its body, read from headers before the body."""

    payload: PayloadMode
    content_length: int | None = None
    """Bytes of payload expected (decoded length for aws-chunked), when announced."""
    content_md5: bytes | None = None
    sha256_hex: str | None = None
    checksum: ExpectedChecksum | None = None
    trailers: tuple[str, ...] = field(default_factory=tuple)


def _checksum_value(algorithm: str, value: str, where: str) -> str:
    digest = _decode_b64(value)
    if digest is None or len(digest) != DIGEST_SIZES[algorithm]:
        raise errors.invalid_request(f"Value for {_HEADER_PREFIX}{algorithm} {where} is invalid.")
    return value.strip()


def _algorithm_of(name: str) -> str:
    algorithm = name[len(_HEADER_PREFIX) :]
    if algorithm not in DIGEST_SIZES:
        raise errors.invalid_request(
            f"{name} is not a supported checksum; use one of "
            f"{', '.join(_HEADER_PREFIX + a for a in ALGORITHMS)}."
        )
    return algorithm


def expectations(
    req: RequestParts, auth: VerifiedAuth | None, *, header_checksums: bool = True
) -> BodyExpectations:
    """Read and validate the integrity headers; raises before any body byte is read.

    `header_checksums=False`: an `x-amz-checksum-*` header is not about this body (on
    CompleteMultipartUpload it is the object's checksum); trailers still are."""
    if auth is not None:
        mode = auth.payload
    else:
        announced = req.header("x-amz-content-sha256")
        mode = payload_mode(announced) if announced is not None else PayloadMode.UNSIGNED
        if mode.signs_chunks:
            raise errors.access_denied(f"{mode.value} requires a signed request")

    sha256_hex: str | None = None
    if mode is PayloadMode.SHA256:
        sha256_hex = (
            auth.content_sha256
            if auth is not None and auth.content_sha256
            else (req.header("x-amz-content-sha256") or "").strip().lower()
        )

    content_length: int | None
    if mode.is_aws_chunked:
        content_length = decoded_content_length(req)
    else:
        content_length = decimal(req.header("content-length"))

    md5_header = req.header("content-md5")
    content_md5 = parse_content_md5(md5_header) if md5_header is not None else None

    in_headers = [
        (name, value)
        for name, value in req.headers
        if header_checksums and name.startswith(_HEADER_PREFIX) and name not in _NOT_CHECKSUMS
    ]
    trailers = declared_trailers(req)
    if trailers and not mode.has_trailer:
        raise errors.invalid_request(
            "x-amz-trailer is only allowed with STREAMING-UNSIGNED-PAYLOAD-TRAILER or "
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER bodies."
        )
    trailer_checksums = [t for t in trailers if t.startswith(_HEADER_PREFIX)]
    if len(in_headers) + len(trailer_checksums) > 1:
        raise errors.invalid_request(
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        )
    checksum: ExpectedChecksum | None = None
    if in_headers:
        name, value = in_headers[0]
        algorithm = _algorithm_of(name)
        checksum = ExpectedChecksum(algorithm, _checksum_value(algorithm, value, "header"))
    elif trailer_checksums:
        checksum = ExpectedChecksum(_algorithm_of(trailer_checksums[0]), None, in_trailer=True)

    sdk_algorithm = (req.header("x-amz-sdk-checksum-algorithm") or "").strip().lower()
    if sdk_algorithm and checksum is not None and sdk_algorithm != checksum.algorithm:
        raise errors.invalid_request(
            f"Value for x-amz-sdk-checksum-algorithm header is invalid: it names "
            f"{sdk_algorithm.upper()} but the checksum sent is {checksum.algorithm.upper()}."
        )
    return BodyExpectations(
        payload=mode,
        content_length=content_length,
        content_md5=content_md5,
        sha256_hex=sha256_hex,
        checksum=checksum,
        trailers=trailers,
    )


class VerifiedBody:
    """The request payload as an async iterator that checks every promise at end of stream.

    Raises from iteration: the decoder's errors (aws-chunked), IncompleteBody (fewer bytes
    than announced), XAmzContentSHA256Mismatch, BadDigest (Content-MD5 or x-amz-checksum-*).
    After a clean end, `size` and `checksum` (algorithm, base64) describe what was received.
    """

    def __init__(
        self,
        source: AsyncIterable[bytes],
        expect: BodyExpectations,
        decoder: AwsChunkedBody | None = None,
    ) -> None:
        self._source = source
        self.expect = expect
        self._decoder = decoder
        self._md5 = hashlib.md5(usedforsecurity=False) if expect.content_md5 else None
        self._sha256 = hashlib.sha256() if expect.sha256_hex else None
        self._checksum = new_hasher(expect.checksum.algorithm) if expect.checksum else None
        self._extra: dict[str, Hasher] = {}
        self.size = 0
        self.checksum: tuple[str, str] | None = None
        """(algorithm, base64) of the client's checksum, once verified."""
        self.digests: dict[str, str] = {}
        """Base64 per algorithm of everything computed: the client's and `also_compute`'s."""
        self.verified = False
        self._started = False

    def also_compute(self, algorithm: str) -> None:
        """Compute this algorithm too (e.g. an upload's, which the client may not send);
        its value lands in `digests`. Only before the body is read."""
        if self._started:
            raise RuntimeError("also_compute after the body started")
        name = algorithm.lower()
        sent = self.expect.checksum
        if (sent is None or sent.algorithm != name) and name not in self._extra:
            self._extra[name] = new_hasher(name)

    def keep_default_checksum(self) -> None:
        """When the client sends no checksum, compute S3's default (CRC64NVME) to store."""
        if self.expect.checksum is None:
            self.also_compute(DEFAULT_ALGORITHM)

    @property
    def object_checksum(self) -> tuple[str, str] | None:
        """(algorithm, base64) an object keeps: the client's checksum, else the default
        (when `keep_default_checksum` asked for it); only after a clean end of stream."""
        if self.checksum is not None:
            return self.checksum
        value = self.digests.get(DEFAULT_ALGORITHM)
        return (DEFAULT_ALGORITHM, value) if value is not None else None

    @property
    def expected_size(self) -> int | None:
        """Payload size announced by the headers (for EntityTooLarge checks up front)."""
        return self.expect.content_length

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        if self._started:
            raise RuntimeError("a request body can be read only once")
        self._started = True
        hashers = [h for h in (self._md5, self._sha256, self._checksum) if h is not None]
        hashers.extend(self._extra.values())
        async for piece in self._source:
            self.size += len(piece)
            for hasher in hashers:
                hasher.update(piece)
            yield piece
        self._finish()

    def _finish(self) -> None:
        expect = self.expect
        if expect.content_length is not None and self.size != expect.content_length:
            raise errors.incomplete_body(
                f"The body carries {self.size} bytes but {expect.content_length} were announced."
            )
        if self._sha256 is not None:
            computed = self._sha256.hexdigest()
            if computed != expect.sha256_hex:
                raise errors.content_sha256_mismatch(
                    client=expect.sha256_hex or "", computed=computed
                )
        if self._md5 is not None and self._md5.digest() != expect.content_md5:
            raise errors.bad_digest(
                expected=_b64(expect.content_md5 or b""), calculated=_b64(self._md5.digest())
            )
        if self._checksum is not None and expect.checksum is not None:
            algorithm = expect.checksum.algorithm
            computed_b64 = _b64(self._checksum.digest())
            expected_b64 = expect.checksum.value
            if expect.checksum.in_trailer:
                assert self._decoder is not None
                received = self._decoder.trailers.get(_HEADER_PREFIX + algorithm)
                if received is None:  # the decoder already insists on declared trailers
                    raise errors.invalid_request(f"Missing trailer {_HEADER_PREFIX}{algorithm}.")
                expected_b64 = _checksum_value(algorithm, received, "trailing header")
            if computed_b64 != expected_b64:
                raise errors.bad_digest(
                    f"The {algorithm.upper()} you specified did not match the calculated checksum.",
                    expected=expected_b64,
                    calculated=computed_b64,
                )
            self.checksum = (algorithm, computed_b64)
            self.digests[algorithm] = computed_b64
        for name, hasher in self._extra.items():
            self.digests[name] = _b64(hasher.digest())
        self.verified = True

    def response_headers(self) -> dict[str, str]:
        """`x-amz-checksum-<algorithm>` to echo on the PUT/UploadPart response (S3 does):
        the client's checksum, or the default one computed in its place."""
        kept = self.object_checksum
        if kept is None:
            return {}
        algorithm, value = kept
        return {f"{_HEADER_PREFIX}{algorithm}": value}


def verified_body(
    raw: AsyncIterable[bytes],
    req: RequestParts,
    auth: VerifiedAuth | None,
    *,
    header_checksums: bool = True,
) -> VerifiedBody:
    """Decode (aws-chunked) and verify a request body; header errors raise right here."""
    expect = expectations(req, auth, header_checksums=header_checksums)
    if expect.payload.is_aws_chunked:
        decoder = AwsChunkedBody(
            raw,
            payload=expect.payload,
            decoded_content_length=expect.content_length,
            declared_trailers=expect.trailers,
            auth=auth,
        )
        return VerifiedBody(decoder, expect, decoder)
    return VerifiedBody(raw, expect)
