"""Multipart checksums as S3 defines them: COMPOSITE and FULL_OBJECT.

An upload names an algorithm (`x-amz-checksum-algorithm`) and a type (`x-amz-checksum-type`)
when it is created, or neither: then S3's default applies, CRC64NVME of the whole object.

- **COMPOSITE** (CRC32, CRC32C, SHA1, SHA256): the checksum of the concatenated raw part
  checksums, shown as `base64-N`. Every part must carry its checksum, and so must every part
  of the CompleteMultipartUpload body.
- **FULL_OBJECT** (CRC32, CRC32C, CRC64NVME): the CRC of the whole object, combined from the
  part CRCs and sizes (`checksum.combine_full_object`): no byte is read again. A part sent
  without a checksum gets one computed.

The gateway computes the upload's algorithm over every part as it streams, so the part
checksum is always known; what the client claims (per part in the Complete body, or for the
whole object in the Complete request's `x-amz-checksum-*` header) is checked against it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from residency.gateway import checksum, errors
from residency.gateway.checksum import COMPOSITE, DEFAULT_ALGORITHM, FULL_OBJECT, MULTIPART_TYPES
from residency.gateway.xml import CompletedPart
from residency.meta.models import MultipartPart, MultipartUpload
from residency.meta.specs import ObjectChecksum

__all__ = [
    "Completion",
    "UploadChecksum",
    "check_part_request",
    "creation_choice",
    "part_checksum",
]

_PREFIX = "x-amz-checksum-"
_NOT_VALUES = frozenset({"x-amz-checksum-type", "x-amz-checksum-algorithm", "x-amz-checksum-mode"})
_SUPPORTED = ", ".join(a.upper() for a in checksum.ALGORITHMS)


@dataclass(frozen=True, slots=True)
class UploadChecksum:
    """The checksum an upload's object gets: algorithm (lower case), type, and whether the
    client chose it (False: S3's CRC64NVME default, which a Complete header cannot check)."""

    algorithm: str
    type: str
    explicit: bool

    @classmethod
    def of(cls, upload: MultipartUpload) -> UploadChecksum:
        if upload.checksum_algorithm is None:
            return cls(DEFAULT_ALGORITHM, FULL_OBJECT, explicit=False)
        algorithm = upload.checksum_algorithm.lower()
        kind = upload.checksum_type or MULTIPART_TYPES[algorithm][0]
        return cls(algorithm, kind, explicit=True)

    @property
    def name(self) -> str:
        return self.algorithm.upper()


def _type_header(headers: Mapping[str, str]) -> str | None:
    value = headers.get("x-amz-checksum-type")
    if value is None:
        return None
    kind = value.strip().upper()
    if kind not in (COMPOSITE, FULL_OBJECT):
        raise errors.invalid_request("Value for x-amz-checksum-type header is invalid.")
    return kind


def creation_choice(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(ALGORITHM, TYPE) for CreateMultipartUpload, both None for S3's default; InvalidRequest
    for an unknown algorithm or type, a type without an algorithm, or a pair S3 refuses."""
    raw = headers.get("x-amz-checksum-algorithm")
    kind = _type_header(headers)
    if raw is None or not raw.strip():
        if kind is not None:
            raise errors.invalid_request(
                "The x-amz-checksum-type header can only be used with the "
                "x-amz-checksum-algorithm header."
            )
        return None, None
    algorithm = raw.strip().lower()
    if algorithm not in MULTIPART_TYPES:
        raise errors.invalid_request(
            "Checksum algorithm provided is unsupported. Please try again with any of the "
            f"valid types: [{_SUPPORTED}]"
        )
    allowed = MULTIPART_TYPES[algorithm]
    kind = kind or allowed[0]
    if kind not in allowed:
        raise errors.invalid_request(
            f"The {kind} checksum type cannot be used with the {algorithm} checksum algorithm."
        )
    return algorithm.upper(), kind


def _mismatch(expected: str, actual: str) -> errors.S3Error:
    return errors.invalid_request(
        f"Checksum Type mismatch occurred, expected checksum Type: {expected}, "
        f"actual checksum Type: {actual}"
    )


def check_part_request(upload: MultipartUpload, sent: str | None) -> None:
    """UploadPart: `sent` is the algorithm of the part's checksum (header, trailer or
    `x-amz-sdk-checksum-algorithm`), None without one. An upload that named an algorithm
    takes only that one, and a COMPOSITE upload needs it on every part."""
    chosen = UploadChecksum.of(upload)
    if not chosen.explicit:
        return
    if sent is None:
        if chosen.type == COMPOSITE:
            raise _mismatch(chosen.algorithm, "null")
        return
    if sent.lower() != chosen.algorithm:
        raise _mismatch(chosen.algorithm, sent.lower())


def part_checksum(upload: MultipartUpload, part: MultipartPart) -> str | None:
    """A stored part's checksum in the upload's algorithm (parts stored before the
    `checksum` column had CRC32, CRC32C and SHA256 in their own columns)."""
    if part.checksum is not None:
        return part.checksum
    legacy = {"CRC32": part.crc32, "CRC32C": part.crc32c, "SHA256": part.sha256}
    return legacy.get(upload.checksum_algorithm or "")


def _final_header(headers: Mapping[str, str]) -> tuple[str, str] | None:
    sent = [
        (name[len(_PREFIX) :], value)
        for name, value in headers.items()
        if name.startswith(_PREFIX) and name not in _NOT_VALUES
    ]
    if len(sent) > 1:
        raise errors.invalid_request(
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        )
    if not sent:
        return None
    algorithm, value = sent[0]
    if algorithm not in checksum.DIGEST_SIZES:
        raise errors.invalid_request(
            "The algorithm type you specified in x-amz-checksum- header is invalid."
        )
    return algorithm, value.strip()


def _part_claims(parts: Sequence[CompletedPart]) -> list[tuple[str, bytes] | None]:
    """Per requested part, the (algorithm, digest) it claims, validated: bad base64, a wrong
    length or several checksums on one part are InvalidArgument, as in S3."""
    claims: list[tuple[str, bytes] | None] = []
    for part in parts:
        if not part.checksums:
            claims.append(None)
            continue
        if len(part.checksums) > 1:
            raise errors.invalid_argument("Invalid Base64 or multiple checksums present in request")
        element, value = next(iter(part.checksums.items()))
        algorithm = element.removeprefix("Checksum").lower()
        digest = (
            checksum.decode_checksum(algorithm, value)
            if algorithm in checksum.DIGEST_SIZES
            else None
        )
        if digest is None:
            raise errors.invalid_argument("Invalid Base64 or multiple checksums present in request")
        claims.append((algorithm, digest))
    return claims


class Completion:
    """What a CompleteMultipartUpload request says about checksums, checked up front (headers
    and the body's syntax) and then against the stored parts (`__call__`, in the completing
    transaction) to give the object's checksum."""

    def __init__(
        self, upload: MultipartUpload, headers: Mapping[str, str], parts: Sequence[CompletedPart]
    ) -> None:
        self.chosen = UploadChecksum.of(upload)
        self._upload = upload
        kind = _type_header(headers)
        if self.chosen.explicit and kind is not None and kind != self.chosen.type:
            raise errors.invalid_request(
                f"The upload was created using the {self.chosen.type} checksum mode. "
                "The complete request must use the same checksum mode."
            )
        self._claims = _part_claims(parts)
        self._numbers = [p.part_number for p in parts]
        self._final: tuple[str, bytes, int | None] | None = None
        final = _final_header(headers)
        if final is not None and self.chosen.explicit:
            self._final = self._parse_final(*final)

    def _parse_final(self, algorithm: str, value: str) -> tuple[str, bytes, int | None]:
        """(algorithm, digest, N or None) from the Complete request's checksum header."""
        invalid = errors.invalid_request(f"Value for {_PREFIX}{algorithm} header is invalid.")
        count: int | None = None
        if self.chosen.type == COMPOSITE and "-" in value:
            value, _, suffix = value.partition("-")
            if not suffix.isdigit() or not suffix.isascii():
                raise invalid
            count = int(suffix)
        digest = checksum.decode_checksum(algorithm, value)
        if digest is None:
            raise invalid
        if algorithm != self.chosen.algorithm:
            raise _mismatch(self.chosen.algorithm, algorithm)
        return algorithm, digest, count

    def __call__(self, chosen: Sequence[MultipartPart]) -> ObjectChecksum | None:
        """The object's checksum from the chosen parts (in order); raises InvalidPart,
        BadDigest or InvalidRequest where the request's claims do not hold."""
        algorithm, kind = self.chosen.algorithm, self.chosen.type
        digests: list[bytes] = []
        for number, claim, part in zip(self._numbers, self._claims, chosen, strict=True):
            stored = part_checksum(self._upload, part)
            digest = checksum.decode_checksum(algorithm, stored) if stored else None
            if claim is None:
                if self.chosen.explicit and kind == COMPOSITE:
                    raise errors.invalid_request(
                        f"The upload was created using a {algorithm} checksum. The complete "
                        "request must include the checksum for each part. It was missing for "
                        f"part {number} in the request."
                    )
            elif claim[0] != algorithm:
                if self.chosen.explicit:
                    raise errors.bad_digest(
                        f"The {claim[0]} you specified for part {number} did not match what "
                        "we received."
                    )
            elif digest is not None and claim[1] != digest:
                raise errors.invalid_part(number, part.etag)
            if digest is None:
                return None  # a part stored before checksums were kept: nothing to show
            digests.append(digest)
        if kind == COMPOSITE:
            value = checksum.composite(algorithm, digests)
            computed = base64.b64decode(value.partition("-")[0])
        else:
            value = checksum.combine_full_object(
                algorithm, zip(digests, (p.size for p in chosen), strict=True)
            )
            computed = base64.b64decode(value)
        if self._final is not None:
            _, claimed, count = self._final
            if claimed != computed or count not in (None, len(chosen)):
                raise errors.bad_digest(
                    f"The {self.chosen.name} you specified did not match the calculated checksum.",
                    expected=base64.b64encode(claimed).decode("ascii"),
                    calculated=value,
                )
        return ObjectChecksum(self.chosen.name, kind, value)
