"""AWS Signature Version 2 for S3: presigned URLs and the `Authorization: AWS` header.

boto3's `generate_presigned_url` still signs this way by default (signature_version `s3`),
as do many older clients: `?AWSAccessKeyId=…&Expires=<epoch seconds>&Signature=<base64>`.
A client configured with signature_version `s3` (and older tools such as s3cmd) signs every
request in a header instead: `Authorization: AWS <AWSAccessKeyId>:<base64 signature>`.
The signature is HMAC-SHA1 over

    HTTP-Verb \\n Content-MD5 \\n Content-Type \\n Expires-or-Date \\n
    CanonicalizedAmzHeaders CanonicalizedResource

where CanonicalizedAmzHeaders is every `x-amz-*` header of the request (lower-case name,
sorted, repeated values joined by ',', one `name:value\\n` each) and CanonicalizedResource is
`/bucket/key` as sent on the wire (path-style even for a virtual-host request) followed by the
sub-resources (`?uploadId=…&partNumber=…`, `versionId`, `response-*` overrides, …) sorted by
name. Every `x-amz-*` header enters the string to sign, so none can be added to a presigned
URL after the fact. The body is never signed (the payload is `UNSIGNED-PAYLOAD`, unless the
client also sends a signed `x-amz-content-sha256` digest, which is then verified).

A presigned URL signs its `Expires`; header auth signs the `Date` header, or, when the request
carries `x-amz-date`, an empty line (`date_lines` lists the forms clients use), and the time
the request claims (`x-amz-date`, else `Date`) must be within `sigv4.MAX_SKEW` of the
server's (RequestTimeTooSkewed otherwise), as for SigV4.

Only `x-amz-*` headers enter the string to sign, so a SigV2 request must not carry the
gateway's own `x-residency-*` request headers (a bucket's default class, subject and policy,
the purpose of a read): they could be added or changed by anyone who relays the request.
Such a request is refused as S3 refuses unsigned headers (AccessDenied, HeadersNotSigned).

Two steps, like `sigv4`: `parse` (syntax) and, after the caller looked the secret up, `verify`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import re
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime

from residency.gateway import errors
from residency.gateway.sigv4 import (
    MAX_SKEW,
    Credential,
    PayloadMode,
    RequestParts,
    VerifiedAuth,
    canonical_uris,
    parse_amz_date,
    parse_http_date,
    payload_mode,
    query_pairs,
)

__all__ = [
    "SUBRESOURCES",
    "DateLine",
    "ParsedV2",
    "canonical_resource",
    "date_lines",
    "is_header_v2",
    "is_presigned_v2",
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
HEADER_SCHEME = "AWS"
RESIDENCY_HEADER_PREFIX = "x-residency-"
"""The gateway's own request headers; SigV2 cannot sign them (it signs only `x-amz-*`)."""


@dataclass(frozen=True, slots=True)
class DateLine:
    """A candidate fourth line of a header-auth string to sign: `text`, and whether the
    `x-amz-date` header is also among the CanonicalizedAmzHeaders."""

    text: str
    amz_date_in_headers: bool = True


def date_lines(req: RequestParts) -> tuple[DateLine, ...]:
    """The fourth lines a header-auth signer may have used. Without `x-amz-date` it is the
    `Date` header. With it the S3 documentation says two things: its text, an empty line
    (`x-amz-date` then signed among the amz headers, as boto2 and s3cmd sign), and its
    example, the `x-amz-date` value in place of the date (and not among the amz headers);
    servers such as MinIO sign the `Date` header regardless. Each signs the time the request
    claims, so accepting any of them widens nothing."""
    amz_date = req.header("x-amz-date")
    date = (req.header("date") or "").strip()
    if amz_date is None:
        return (DateLine(_wire(date)),)
    lines = [DateLine(""), DateLine(_wire(amz_date.strip()), amz_date_in_headers=False)]
    if date:
        lines.append(DateLine(_wire(date)))
    return tuple(lines)


@dataclass(frozen=True, slots=True)
class ParsedV2:
    """A syntactically valid SigV2 request (presigned or header), not yet checked against a
    secret."""

    access_key_id: str
    signature: bytes
    """The decoded HMAC-SHA1 digest (20 bytes)."""
    signature_text: str
    """The signature as it arrived (base64), for SignatureDoesNotMatch."""
    expires: str
    """A presigned URL's `Expires` (seconds since the epoch), its string to sign's fourth
    line; for header auth the first of `date_lines`."""
    date_lines: tuple[DateLine, ...] = ()
    """Header auth: what the string to sign may hold as its fourth line (`date_lines`)."""
    request_time: datetime | None = None
    """Header auth: when the client says it signed (`x-amz-date`, else `Date`); None for a
    presigned URL."""
    request_time_text: str = ""
    """That time as the client sent it, for RequestTimeTooSkewed."""

    @property
    def presigned(self) -> bool:
        return self.request_time is None


def is_presigned_v2(req: RequestParts) -> bool:
    """Whether the query carries SigV2 query-string authentication."""
    names = {name for name, _ in query_pairs(req.query_string)}
    return "AWSAccessKeyId" in names or ("Signature" in names and "Expires" in names)


def is_header_v2(req: RequestParts) -> bool:
    """Whether the request carries `Authorization: AWS …` (SigV2 header auth)."""
    header = req.header("authorization")
    return header is not None and header.strip().partition(" ")[0] == HEADER_SCHEME


def parse(req: RequestParts) -> ParsedV2 | None:
    """Read the SigV2 auth of a request (query or `Authorization: AWS` header); None when it
    has neither.

    Raises AccessDenied (as S3 does) when a parameter or the date is missing or malformed,
    InvalidArgument for a malformed header or when both forms are sent, and AccessDenied
    (HeadersNotSigned) when the request carries an `x-residency-*` header.
    """
    if is_presigned_v2(req):
        parsed = _parse_query(req)
    elif is_header_v2(req):
        parsed = _parse_header(req)
    else:
        return None
    _refuse_residency_headers(req)
    return parsed


def _refuse_residency_headers(req: RequestParts) -> None:
    unsigned = sorted({name for name, _ in req.headers if name.startswith(RESIDENCY_HEADER_PREFIX)})
    if unsigned:
        raise errors.access_denied(
            "There were headers present in the request which were not signed (Signature "
            "Version 2 signs only x-amz-* headers: send x-residency-* headers with SigV4)",
            headers_not_signed=", ".join(unsigned),
        )


def _signature_bytes(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _parse_header(req: RequestParts) -> ParsedV2:
    header = req.header("authorization") or ""
    _, _, credentials = header.strip().partition(" ")
    access_key_id, sep, text = credentials.strip().rpartition(":")
    if not sep or not access_key_id or not text or " " in credentials.strip():
        raise errors.invalid_argument(
            "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
            name="Authorization",
            value=header,
        )
    amz_date = req.header("x-amz-date")
    sent = (amz_date if amz_date is not None else req.header("date") or "").strip()
    request_time = parse_amz_date(sent) or parse_http_date(sent)
    if request_time is None:
        raise errors.access_denied("AWS authentication requires a valid Date or x-amz-date header")
    lines = date_lines(req)
    return ParsedV2(
        access_key_id,
        _signature_bytes(text),
        text,
        lines[0].text,
        date_lines=lines,
        request_time=request_time,
        request_time_text=sent,
    )


def _parse_query(req: RequestParts) -> ParsedV2:
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
    return ParsedV2(query["AWSAccessKeyId"], _signature_bytes(text), text, expires)


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
    `!*'()`), prefixed with `/bucket` for a virtual-host request (`bucket`); a bucket's own
    resource with and without its trailing slash (botocore signs `/bucket/` for a request it
    sends to `/bucket`).

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
    else:
        paths += [f"{path}/" for path in paths if len(path) > 1 and path.count("/") == 1]
    return [path + suffix for path in paths]


def _wire(value: str) -> str:
    """A header value or path as the client signed it: values arrive latin-1 decoded, so
    their bytes are recovered and read as UTF-8 (bytes that are not stay as they were,
    through `surrogateescape`, and `_signed_bytes` puts them back)."""
    return value.encode("latin-1", "replace").decode("utf-8", "surrogateescape")


def _signed_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _amz_headers(req: RequestParts, *, with_amz_date: bool = True) -> str:
    values: dict[str, list[str]] = {}
    for name, value in req.headers:
        if name.startswith("x-amz-") and (with_amz_date or name != "x-amz-date"):
            values.setdefault(name, []).append(_wire(value.strip()))
    return "".join(f"{name}:{','.join(values[name])}\n" for name in sorted(values))


def string_to_sign(
    req: RequestParts, expires: str, resource: str, *, amz_date_in_headers: bool = True
) -> str:
    """The text HMAC-SHA1 signs (`_signed_bytes` of it); `expires` is the fourth line (a
    presigned URL's `Expires`, a `DateLine`'s text), `resource` from `canonical_resource`."""
    return (
        f"{req.method}\n"
        f"{_wire((req.header('content-md5') or '').strip())}\n"
        f"{_wire((req.header('content-type') or '').strip())}\n"
        f"{expires}\n"
        f"{_amz_headers(req, with_amz_date=amz_date_in_headers)}{resource}"
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
    """Check expiry (presigned) or clock skew (header), then the signature; raise the S3
    error a client expects on any mismatch.

    `bucket`: the bucket of a virtual-host-style request (it enters the resource), else None.
    """
    now = now if now is not None else datetime.now(UTC)
    if auth.request_time is not None:
        if abs(now - auth.request_time) > MAX_SKEW:
            raise errors.request_time_too_skewed(
                request_time=auth.request_time_text,
                server_time=_iso(now),
                max_allowed_skew_milliseconds=int(MAX_SKEW.total_seconds() * 1000),
            )
    else:
        _check_expiry(auth, now)
    key = secret_key.encode("utf-8")
    first = ""
    lines = auth.date_lines or (DateLine(auth.expires),)
    for line, resource in itertools.product(lines, canonical_resource(req, bucket)):
        to_sign = string_to_sign(
            req, line.text, resource, amz_date_in_headers=line.amz_date_in_headers
        )
        expected = hmac.new(key, _signed_bytes(to_sign), hashlib.sha1).digest()
        if hmac.compare_digest(expected, auth.signature):
            return _verified(auth, req, now, region)
        first = first or to_sign
    raise errors.signature_does_not_match(
        access_key_id=auth.access_key_id,
        string_to_sign=_signed_bytes(first).decode("utf-8", "replace"),
        signature_provided=auth.signature_text,
    )


def _check_expiry(auth: ParsedV2, now: datetime) -> None:
    expires_at = int(auth.expires)
    if expires_at < now.timestamp():
        try:
            expiry = _iso(datetime.fromtimestamp(expires_at, UTC))
        except (OverflowError, OSError, ValueError):
            expiry = auth.expires
        raise errors.S3Error(
            "AccessDenied", "Request has expired", expires=expiry, server_time=_iso(now)
        )


def _verified(auth: ParsedV2, req: RequestParts, now: datetime, region: str) -> VerifiedAuth:
    """What the body pipeline needs: the payload is unsigned unless a (signed, since every
    `x-amz-*` header is) `x-amz-content-sha256` digest says otherwise."""
    announced = req.header("x-amz-content-sha256")
    mode = payload_mode(announced) if announced is not None else PayloadMode.UNSIGNED
    if mode.is_aws_chunked:
        raise errors.invalid_request(
            f"A Signature Version 2 request cannot carry an aws-chunked body "
            f"(x-amz-content-sha256: {announced})."
        )
    request_time = auth.request_time or now
    amz_date = request_time.strftime("%Y%m%dT%H%M%SZ")
    return VerifiedAuth(
        credential=Credential(auth.access_key_id, amz_date[:8], region, "s3"),
        presigned=auth.presigned,
        amz_date=amz_date,
        request_time=request_time,
        seed_signature="",
        signing_key=b"",
        payload=mode,
        content_sha256=(announced or "").strip().lower() if mode is PayloadMode.SHA256 else None,
    )
