"""AWS Signature Version 2 query-string authentication (presigned URLs), for S3.

boto3's `generate_presigned_url` still signs this way by default (signature_version `s3`),
as do many older clients: `?AWSAccessKeyId=…&Expires=<epoch seconds>&Signature=<base64>`.
The signature is HMAC-SHA1 over

    HTTP-Verb \\n Content-MD5 \\n Content-Type \\n Expires \\n
    CanonicalizedAmzHeaders CanonicalizedResource

where CanonicalizedAmzHeaders is every `x-amz-*` header of the request (lower-case name,
sorted, repeated values joined by ',', one `name:value\\n` each) and CanonicalizedResource is
`/bucket/key` as sent on the wire (path-style even for a virtual-host request) followed by the
sub-resources (`?uploadId=…&partNumber=…`, `versionId`, `response-*` overrides, …) sorted by
name. Every `x-amz-*` header enters the string to sign, so none can be added to a presigned
URL after the fact. The body is never signed (the payload is `UNSIGNED-PAYLOAD`, unless the
client also sends a signed `x-amz-content-sha256` digest, which is then verified).

Two steps, like `sigv4`: `parse` (syntax) and, after the caller looked the secret up, `verify`.
SigV2 in an `Authorization: AWS …` header is not supported (`sigv4.parse` refuses it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime

from residency.gateway import errors
from residency.gateway.sigv4 import (
    Credential,
    PayloadMode,
    RequestParts,
    VerifiedAuth,
    canonical_uris,
    payload_mode,
    query_pairs,
)

__all__ = [
    "SUBRESOURCES",
    "ParsedV2",
    "canonical_resource",
    "parse",
    "string_to_sign",
    "verify",
]

SUBRESOURCES = frozenset(
    {
        # The S3 SigV2 documentation's list, and botocore's (which signs a few more).
        "accelerate",
        "acl",
        "analytics",
        "cors",
        "defaultObjectAcl",
        "delete",
        "inventory",
        "lifecycle",
        "location",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "partNumber",
        "policy",
        "replication",
        "requestPayment",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
        "restore",
        "select",
        "select-type",
        "storageClass",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "website",
    }
)
"""Query parameters that enter the CanonicalizedResource; every other one is not signed."""

_QUERY_AUTH = ("AWSAccessKeyId", "Signature", "Expires")
_EXPIRES = re.compile(r"\d{1,20}", re.ASCII)


@dataclass(frozen=True, slots=True)
class ParsedV2:
    """A syntactically valid SigV2 presigned request, not yet checked against a secret."""

    access_key_id: str
    signature: bytes
    """The decoded HMAC-SHA1 digest (20 bytes)."""
    signature_text: str
    """The signature as it arrived (base64), for SignatureDoesNotMatch."""
    expires: str
    """Seconds since the epoch, as it enters the string to sign."""


def is_presigned_v2(req: RequestParts) -> bool:
    """Whether the query carries SigV2 query-string authentication."""
    names = {name for name, _ in query_pairs(req.query_string)}
    return "AWSAccessKeyId" in names or ("Signature" in names and "Expires" in names)


def parse(req: RequestParts) -> ParsedV2 | None:
    """Read the SigV2 query auth of a request; None when it has none.

    Raises AccessDenied (as S3 does) when a parameter is missing or malformed, and
    InvalidArgument when an Authorization header is sent as well.
    """
    if not is_presigned_v2(req):
        return None
    query = dict(query_pairs(req.query_string))
    if req.header("authorization") is not None or "X-Amz-Algorithm" in query:
        raise errors.invalid_argument(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified",
            name="Authorization",
            value=req.header("authorization"),
        )
    missing = [name for name in _QUERY_AUTH if not query.get(name)]
    if missing:
        raise errors.access_denied(
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId "
            f"parameters; missing {', '.join(missing)}."
        )
    expires = query["Expires"].strip()
    if not _EXPIRES.fullmatch(expires):
        raise errors.access_denied(f"Invalid date (should be seconds since epoch): {expires}")
    # A '+' the client left unencoded arrives as a space (form decoding); base64 has none.
    text = query["Signature"].strip().replace(" ", "+")
    try:
        signature = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        signature = b""
    return ParsedV2(query["AWSAccessKeyId"], signature, text, expires)


def _resource_query(query_string: str) -> str:
    """The signed sub-resources: raw names, %-decoded values (not '+'), sorted by name."""
    signed: list[tuple[str, str]] = []
    for piece in query_string.split("&"):
        name, sep, value = piece.partition("=")
        if name in SUBRESOURCES:
            text = f"{name}={urllib.parse.unquote(value)}" if sep else name
            signed.append((name, text))
    signed.sort(key=lambda item: item[0])
    return "&".join(text for _, text in signed)


def canonical_resource(req: RequestParts, bucket: str | None = None) -> list[str]:
    """CanonicalizedResource candidates: the path as sent and re-encoded (clients differ on
    `!*'()`), prefixed with `/bucket` for a virtual-host request (`bucket`).

    Every candidate names the same decoded bucket and key, so accepting any of them cannot
    widen what a signature authorises.
    """
    query = _resource_query(req.query_string)
    suffix = f"?{query}" if query else ""
    paths = [_wire(path) for path in canonical_uris(req.raw_path)]
    if bucket is not None:
        prefixed = [f"/{bucket}{path}" for path in paths]
        if req.raw_path in ("", "/"):
            prefixed.append(f"/{bucket}")
        paths = prefixed
    return [path + suffix for path in paths]


def _wire(value: str) -> str:
    """A header value or path as the client signed it: values arrive latin-1 decoded, so
    their bytes are recovered and read as UTF-8 (bytes that are not stay as they were,
    through `surrogateescape`, and `_signed_bytes` puts them back)."""
    return value.encode("latin-1", "replace").decode("utf-8", "surrogateescape")


def _signed_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _amz_headers(req: RequestParts) -> str:
    values: dict[str, list[str]] = {}
    for name, value in req.headers:
        if name.startswith("x-amz-"):
            values.setdefault(name, []).append(_wire(value.strip()))
    return "".join(f"{name}:{','.join(values[name])}\n" for name in sorted(values))


def string_to_sign(req: RequestParts, expires: str, resource: str) -> str:
    """The text HMAC-SHA1 signs (`_signed_bytes` of it); `resource` from `canonical_resource`."""
    return (
        f"{req.method}\n"
        f"{_wire((req.header('content-md5') or '').strip())}\n"
        f"{_wire((req.header('content-type') or '').strip())}\n"
        f"{expires}\n"
        f"{_amz_headers(req)}{resource}"
    )


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def verify(
    auth: ParsedV2,
    req: RequestParts,
    secret_key: str,
    *,
    bucket: str | None = None,
    region: str = "us-east-1",
    now: datetime | None = None,
) -> VerifiedAuth:
    """Check expiry and signature; raise the S3 error a client expects on any mismatch.

    `bucket`: the bucket of a virtual-host-style request (it enters the resource), else None.
    """
    now = now if now is not None else datetime.now(UTC)
    expires_at = int(auth.expires)
    if expires_at < now.timestamp():
        try:
            expiry = _iso(datetime.fromtimestamp(expires_at, UTC))
        except (OverflowError, OSError, ValueError):
            expiry = auth.expires
        raise errors.S3Error(
            "AccessDenied", "Request has expired", expires=expiry, server_time=_iso(now)
        )
    key = secret_key.encode("utf-8")
    first = ""
    for resource in canonical_resource(req, bucket):
        to_sign = string_to_sign(req, auth.expires, resource)
        expected = hmac.new(key, _signed_bytes(to_sign), hashlib.sha1).digest()
        if hmac.compare_digest(expected, auth.signature):
            return _verified(auth, req, now, region)
        first = first or to_sign
    raise errors.signature_does_not_match(
        access_key_id=auth.access_key_id,
        string_to_sign=_signed_bytes(first).decode("utf-8", "replace"),
        signature_provided=auth.signature_text,
    )


def _verified(auth: ParsedV2, req: RequestParts, now: datetime, region: str) -> VerifiedAuth:
    """What the body pipeline needs: the payload is unsigned unless a (signed, since every
    `x-amz-*` header is) `x-amz-content-sha256` digest says otherwise."""
    announced = req.header("x-amz-content-sha256")
    mode = payload_mode(announced) if announced is not None else PayloadMode.UNSIGNED
    if mode.is_aws_chunked:
        raise errors.invalid_request(
            f"A presigned request cannot carry an aws-chunked body (x-amz-content-sha256: "
            f"{announced})."
        )
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    return VerifiedAuth(
        credential=Credential(auth.access_key_id, amz_date[:8], region, "s3"),
        presigned=True,
        amz_date=amz_date,
        request_time=now,
        seed_signature="",
        signing_key=b"",
        payload=mode,
        content_sha256=(announced or "").strip().lower() if mode is PayloadMode.SHA256 else None,
    )
