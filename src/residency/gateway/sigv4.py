"""AWS Signature Version 4 verification for S3: Authorization header and presigned query auth.

Two steps, so the caller can look the secret up in its own store between them:

    auth = sigv4.parse(req)                 # syntax only; None for an anonymous request
    secret = await keys.secret_for(auth.credential.access_key_id)   # caller's lookup
    verified = sigv4.verify(auth, req, secret, region="us-east-1")

or in one call with a lookup callback: `await sigv4.authenticate(req, lookup)`.

`verify` returns what the body pipeline needs: the payload mode from `x-amz-content-sha256`,
the seed signature and the derived signing key (chunk signatures of aws-chunked bodies chain
from them, see `residency.gateway.chunked`).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from residency.gateway import errors

__all__ = [
    "ALGORITHM",
    "EMPTY_SHA256",
    "MAX_PRESIGN_EXPIRES",
    "MAX_SKEW",
    "Credential",
    "ParsedAuth",
    "PayloadMode",
    "RequestParts",
    "SecretLookup",
    "VerifiedAuth",
    "authenticate",
    "canonical_query_string",
    "canonical_request",
    "canonical_uris",
    "hmac_sha256",
    "parse",
    "parse_amz_date",
    "parse_http_date",
    "payload_mode",
    "signing_key",
    "string_to_sign",
    "verify",
]

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW = timedelta(minutes=15)
MAX_PRESIGN_EXPIRES = 604800
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CREDENTIAL_DATE = re.compile(r"\d{8}")
_EXPIRES = re.compile(r"-?\d{1,12}", re.ASCII)
# Headers a client may add without signing them although they start with x-amz-.
_UNSIGNED_OK = frozenset({"x-amz-content-sha256"})


class PayloadMode(StrEnum):
    """What `x-amz-content-sha256` announces about the body."""

    UNSIGNED = "UNSIGNED-PAYLOAD"
    SHA256 = "SHA256"
    """A hex SHA-256 of the whole body: verified as the body streams."""
    STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"

    @property
    def is_aws_chunked(self) -> bool:
        return self in (
            PayloadMode.STREAMING_SIGNED,
            PayloadMode.STREAMING_SIGNED_TRAILER,
            PayloadMode.STREAMING_UNSIGNED_TRAILER,
        )

    @property
    def signs_chunks(self) -> bool:
        return self in (PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER)

    @property
    def has_trailer(self) -> bool:
        return self in (
            PayloadMode.STREAMING_SIGNED_TRAILER,
            PayloadMode.STREAMING_UNSIGNED_TRAILER,
        )


@dataclass(frozen=True, slots=True)
class RequestParts:
    """The parts of an HTTP request that SigV4 covers, exactly as they came off the wire.

    `raw_path` is still percent-encoded and `query_string` is the raw text after `?`; header
    names are lower case and repeated headers stay repeated.
    """

    method: str
    raw_path: str
    query_string: str
    headers: tuple[tuple[str, str], ...]

    @classmethod
    def from_scope(cls, scope: Mapping[str, Any]) -> RequestParts:
        """Build from an ASGI HTTP scope (Starlette: `request.scope`)."""
        raw_path = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else urllib.parse.quote(scope["path"])
        path = path.split("?", 1)[0]
        return cls(
            method=str(scope["method"]).upper(),
            raw_path=path,
            query_string=bytes(scope.get("query_string", b"")).decode("latin-1"),
            headers=tuple(
                (name.decode("latin-1").lower(), value.decode("latin-1"))
                for name, value in scope.get("headers", ())
            ),
        )

    def header(self, name: str) -> str | None:
        """All values of a header joined by ',' (RFC 9110), or None when absent."""
        values = [v for k, v in self.headers if k == name]
        return ",".join(values) if values else None

    def query(self) -> list[tuple[str, str]]:
        """Decoded query pairs in order (form decoding: '+' is a space)."""
        return list(query_pairs(self.query_string))


@dataclass(frozen=True, slots=True)
class Credential:
    access_key_id: str
    date: str
    """YYYYMMDD, as in the credential scope."""
    region: str
    service: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


@dataclass(frozen=True, slots=True)
class ParsedAuth:
    """A syntactically valid SigV4 authorization, not yet checked against a secret."""

    presigned: bool
    credential: Credential
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    """Request time in ISO 8601 basic format (20261123T092126Z), as it enters the string to sign."""
    request_time: datetime
    expires: int | None
    """Seconds a presigned URL stays valid; None for header auth."""
    content_sha256: str
    """Payload hash that enters the canonical request (a hex digest or a mode keyword)."""

    @property
    def payload(self) -> PayloadMode:
        return payload_mode(self.content_sha256)


@dataclass(frozen=True, slots=True)
class VerifiedAuth:
    """A request whose signature matched: who sent it and how its body is to be read."""

    credential: Credential
    presigned: bool
    amz_date: str
    request_time: datetime
    seed_signature: str
    signing_key: bytes = field(repr=False)
    payload: PayloadMode
    content_sha256: str | None
    """Expected hex SHA-256 of the body in `PayloadMode.SHA256`, else None."""

    @property
    def access_key_id(self) -> str:
        return self.credential.access_key_id


# --- helpers --------------------------------------------------------------------------------


def hmac_sha256(key: bytes, message: str | bytes) -> bytes:
    data = message.encode("utf-8") if isinstance(message, str) else message
    return hmac.new(key, data, hashlib.sha256).digest()


@lru_cache(maxsize=1024)
def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """kSigning, derived once per (secret, day, region, service) and cached."""
    k = hmac_sha256(f"AWS4{secret_key}".encode(), date)
    k = hmac_sha256(k, region)
    k = hmac_sha256(k, service)
    return hmac_sha256(k, "aws4_request")


_UNRESERVED = re.compile(r"[A-Za-z0-9\-_.~]*")


def _encode(value: str) -> str:
    # Most query values (dates, hex signatures, numbers) need no escaping: skip `quote`.
    if _UNRESERVED.fullmatch(value):
        return value
    return urllib.parse.quote(value, safe="-_.~")


@lru_cache(maxsize=32)
def query_pairs(query_string: str) -> tuple[tuple[str, str], ...]:
    """Decoded query pairs in order, as `urllib.parse.parse_qsl(..., keep_blank_values=True)`
    gives them (form decoding: '+' is a space); cached because routing, parsing and verifying
    a request all need them."""
    pairs: list[tuple[str, str]] = []
    for piece in query_string.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        pairs.append((urllib.parse.unquote_plus(name), urllib.parse.unquote_plus(value)))
    return tuple(pairs)


def canonical_query_string(pairs: Iterable[tuple[str, str]]) -> str:
    encoded = sorted((_encode(k), _encode(v)) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_uris(raw_path: str) -> list[str]:
    """The path as sent, and re-encoded from its decoded form (clients differ on `!*'()`).

    Both forms name the same decoded key, so accepting either cannot widen what a signature
    authorises.
    """
    raw = raw_path or "/"
    key_bytes = urllib.parse.unquote_to_bytes(raw.encode("latin-1", "replace"))
    normalized = urllib.parse.quote(key_bytes, safe="/-_.~")
    return [raw] if normalized == raw else [raw, normalized]


_ASCII_SPACE = re.compile(r"[ \t]+")


def _fold(value: str) -> str:
    """Trim and collapse whitespace the way botocore does (any Unicode whitespace)."""
    return " ".join(value.split())


def _fold_ascii(value: str) -> str:
    """Trim and collapse ASCII blanks only: SDKs that sign raw UTF-8 bytes (Go, Java) do this.

    Header values arrive latin-1 decoded, so UTF-8 `à` (C3 A0) contains U+00A0, which
    `str.split` would treat as a space.
    """
    return _ASCII_SPACE.sub(" ", value.strip(" \t"))


# How clients canonicalise non-ASCII header values: botocore folds Unicode whitespace and hashes
# the UTF-8 of its (latin-1) strings; SDKs that send raw UTF-8 fold ASCII blanks and hash the
# bytes as they are on the wire (our latin-1 reading, encoded back).
_VARIANTS: tuple[tuple[Callable[[str], str], str], ...] = (
    (_fold, "utf-8"),
    (_fold_ascii, "latin-1"),
)


def canonical_request(
    req: RequestParts,
    signed_headers: Sequence[str],
    payload_hash: str,
    *,
    canonical_uri: str | None = None,
    exclude_query: Sequence[str] = (),
    fold: Callable[[str], str] = _fold,
) -> str:
    uri = canonical_uri if canonical_uri is not None else canonical_uris(req.raw_path)[0]
    query = canonical_query_string(
        (k, v) for k, v in query_pairs(req.query_string) if k not in exclude_query
    )
    headers = "".join(f"{name}:{fold(req.header(name) or '')}\n" for name in signed_headers)
    return "\n".join([req.method, uri, query, headers, ";".join(signed_headers), payload_hash])


def string_to_sign(amz_date: str, scope: str, canonical: str, encoding: str = "utf-8") -> str:
    digest = hashlib.sha256(canonical.encode(encoding, "replace")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def payload_mode(content_sha256: str) -> PayloadMode:
    """Classify an `x-amz-content-sha256` value; anything else is InvalidArgument."""
    value = content_sha256.strip()
    if _HEX64.fullmatch(value.lower()):
        return PayloadMode.SHA256
    try:
        mode = PayloadMode(value)
    except ValueError:
        mode = PayloadMode.SHA256  # sentinel: rejected below
    if mode is PayloadMode.SHA256:
        raise errors.invalid_argument(
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, "
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or "
            "a valid sha256 value.",
            name="x-amz-content-sha256",
            value=content_sha256,
        )
    return mode


# --- parsing --------------------------------------------------------------------------------


def _parse_credential(value: str, malformed: Callable[[str], errors.S3Error]) -> Credential:
    parts = value.rsplit("/", 4)
    if len(parts) != 5 or not parts[0] or parts[4] != "aws4_request":
        raise malformed(
            f"the Credential is mal-formed; expecting "
            f'"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request", got "{value}".'
        )
    access_key_id, date, region, service, _ = parts
    if not _CREDENTIAL_DATE.fullmatch(date):
        raise malformed(f'Invalid credential date "{date}". This date is not the expected format.')
    if not region:
        raise malformed("the Credential has an empty region.")
    return Credential(access_key_id, date, region, service)


def _format_amz_date(moment: datetime) -> str:
    """`YYYYMMDDTHHMMSSZ`, as `strftime("%Y%m%dT%H%M%SZ")` gives it at a fraction of the
    cost (and with the year always four digits)."""
    return (
        f"{moment.year:04d}{moment.month:02d}{moment.day:02d}"
        f"T{moment.hour:02d}{moment.minute:02d}{moment.second:02d}Z"
    )


_AMZ_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z", re.ASCII)


@lru_cache(maxsize=256)
def parse_amz_date(value: str) -> datetime | None:
    """`YYYYMMDDTHHMMSSZ` as an aware UTC datetime; None if malformed (cached: a client's
    requests share a handful of timestamps, and `strptime` costs more than the rest of parsing)."""
    match = _AMZ_DATE.fullmatch(value.strip())
    if match is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None


def _signed_headers(value: str, malformed: Callable[[str], errors.S3Error]) -> tuple[str, ...]:
    names = tuple(h.strip().lower() for h in value.split(";"))
    if not value.strip() or any(not h for h in names):
        raise malformed("SignedHeaders is empty or contains an empty header name.")
    if "host" not in names:
        raise malformed("SignedHeaders must include the host header.")
    return names


_MUST_BE_SIGNED = ("x-amz-", "x-residency-")


def _refuse_unsigned_amz_headers(req: RequestParts, signed: Sequence[str]) -> None:
    """Every `x-amz-*` and `x-residency-*` header present must be signed (header and
    presigned auth alike).

    Otherwise whoever holds a presigned URL could add `x-amz-copy-source` (turning a PUT into
    a copy run as the signer), classification metadata, a bucket's default class or policy,
    or the purpose a read is judged by (`x-residency-purpose`), none of which the signer
    agreed to.
    """
    unsigned = sorted(
        {name for name, _ in req.headers if name.startswith(_MUST_BE_SIGNED)}
        - set(signed)
        - _UNSIGNED_OK
    )
    if unsigned:
        raise errors.access_denied(
            "There were headers present in the request which were not signed",
            headers_not_signed=", ".join(unsigned),
        )


def _auth_header_fields(value: str) -> dict[str, str]:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise errors.invalid_request(
            "The authorization mechanism you have provided is not supported. "
            "Please use AWS4-HMAC-SHA256."
        )
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, field_value = item.strip().partition("=")
        if not sep:
            raise errors.authorization_header_malformed(
                f"The authorization header is malformed; the authorization component "
                f'"{item.strip()}" is malformed.'
            )
        fields[name.strip()] = field_value.strip()
    missing = [n for n in ("Credential", "SignedHeaders", "Signature") if n not in fields]
    if missing:
        raise errors.authorization_header_malformed(
            f"The authorization header is malformed; missing {', '.join(missing)}."
        )
    return fields


def parse(req: RequestParts) -> ParsedAuth | None:
    """Read the SigV4 authorization of a request; None when it carries none (anonymous).

    Raises AuthorizationHeaderMalformed / AuthorizationQueryParametersError on bad syntax,
    InvalidRequest for other signature versions, InvalidArgument when both forms are present.
    """
    header = req.header("authorization")
    query = dict(req.query())
    has_query_auth = "X-Amz-Algorithm" in query or "X-Amz-Signature" in query
    if header is not None and has_query_auth:
        raise errors.invalid_argument(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified",
            name="Authorization",
            value=header,
        )
    if header is not None:
        return _parse_header_auth(req, header)
    if has_query_auth:
        return _parse_query_auth(req, query)
    if "Signature" in query and "AWSAccessKeyId" in query:
        raise errors.invalid_request(
            "The authorization mechanism you have provided is not supported. "
            "Please use AWS4-HMAC-SHA256."
        )
    return None


def _parse_header_auth(req: RequestParts, header: str) -> ParsedAuth:
    fields = _auth_header_fields(header)

    def malformed(message: str) -> errors.S3Error:
        return errors.authorization_header_malformed(
            f"The authorization header is malformed; {message}"
        )

    credential = _parse_credential(fields["Credential"], malformed)
    signed = _signed_headers(fields["SignedHeaders"], malformed)
    signature = fields["Signature"].lower()
    if not _HEX64.fullmatch(signature):
        raise malformed("the Signature is not 64 hexadecimal characters.")

    amz_date_header = req.header("x-amz-date")
    if amz_date_header is not None:
        request_time = parse_amz_date(amz_date_header)
    else:
        request_time = parse_http_date(req.header("date"))
    if request_time is None:
        raise errors.access_denied("AWS authentication requires a valid Date or x-amz-date header")
    amz_date = _format_amz_date(request_time)
    if credential.date != amz_date[:8]:
        raise malformed(
            f"Invalid credential date. Date is not the same as X-Amz-Date: "
            f'"{credential.date}" vs "{amz_date[:8]}".'
        )

    content_sha256 = req.header("x-amz-content-sha256")
    if content_sha256 is None:
        raise errors.invalid_request(
            "Missing required header for this request: x-amz-content-sha256"
        )
    payload_mode(content_sha256)  # reject unknown values early

    _refuse_unsigned_amz_headers(req, signed)
    return ParsedAuth(
        presigned=False,
        credential=credential,
        signed_headers=signed,
        signature=signature,
        amz_date=amz_date,
        request_time=request_time,
        expires=None,
        content_sha256=content_sha256.strip(),
    )


def _parse_query_auth(req: RequestParts, query: Mapping[str, str]) -> ParsedAuth:
    def malformed(message: str) -> errors.S3Error:
        return errors.authorization_query_parameters_error(message)

    required = (
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    )
    missing = [name for name in required if name not in query]
    if missing:
        raise malformed(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
            f"X-Amz-Expires parameters; missing {', '.join(missing)}."
        )
    if query["X-Amz-Algorithm"] != ALGORITHM:
        raise malformed('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
    credential = _parse_credential(
        query["X-Amz-Credential"], lambda m: malformed(f"Error parsing the X-Amz-Credential: {m}")
    )
    request_time = parse_amz_date(query["X-Amz-Date"])
    if request_time is None:
        raise malformed("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    amz_date = _format_amz_date(request_time)
    if credential.date != amz_date[:8]:
        raise malformed(
            f'Invalid credential date "{credential.date}": it must match X-Amz-Date '
            f'"{amz_date[:8]}".'
        )
    expires_text = query["X-Amz-Expires"].strip()
    if not _EXPIRES.fullmatch(expires_text):
        raise malformed("X-Amz-Expires should be a number")
    expires = int(expires_text)
    if expires < 0:
        raise malformed("X-Amz-Expires must be non-negative")
    if expires > MAX_PRESIGN_EXPIRES:
        raise malformed(
            f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGN_EXPIRES}"
        )
    signed = _signed_headers(query["X-Amz-SignedHeaders"], malformed)
    signature = query["X-Amz-Signature"].strip().lower()
    if not _HEX64.fullmatch(signature):
        raise malformed("X-Amz-Signature is not 64 hexadecimal characters.")
    content_sha256 = (
        query.get("X-Amz-Content-Sha256")
        or req.header("x-amz-content-sha256")
        or PayloadMode.UNSIGNED.value
    ).strip()
    if payload_mode(content_sha256).is_aws_chunked:
        raise errors.invalid_request(
            "A presigned request cannot carry an aws-chunked body "
            f"(x-amz-content-sha256: {content_sha256})."
        )
    _refuse_unsigned_amz_headers(req, signed)
    return ParsedAuth(
        presigned=True,
        credential=credential,
        signed_headers=signed,
        signature=signature,
        amz_date=amz_date,
        request_time=request_time,
        expires=expires,
        content_sha256=content_sha256,
    )


def parse_http_date(value: str | None) -> datetime | None:
    """The `Date` header in UTC; None when it is not a date we can represent (a year-9999
    date with a negative offset overflows on conversion: that is no date, not a crash)."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


# --- verification ---------------------------------------------------------------------------


def _check_time(auth: ParsedAuth, now: datetime) -> None:
    def fmt(moment: datetime) -> str:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    if auth.presigned:
        assert auth.expires is not None
        if auth.request_time - now > MAX_SKEW:
            raise errors.access_denied("Request is not valid yet")
        expiry = auth.request_time + timedelta(seconds=auth.expires)
        if now > expiry:
            raise errors.request_expired(
                expires=fmt(expiry), server_time=fmt(now), x_amz_expires=auth.expires
            )
    elif abs(now - auth.request_time) > MAX_SKEW:
        raise errors.request_time_too_skewed(
            request_time=auth.amz_date,
            server_time=fmt(now),
            max_allowed_skew_milliseconds=int(MAX_SKEW.total_seconds() * 1000),
        )


def verify(
    auth: ParsedAuth,
    req: RequestParts,
    secret_key: str,
    *,
    region: str | None = None,
    now: datetime | None = None,
) -> VerifiedAuth:
    """Check scope, time and signature; raise the S3 error a client expects on any mismatch.

    `region`: when given, the credential scope must name it (AuthorizationHeaderMalformed
    otherwise, as S3 answers); None accepts any region, as most S3-compatible servers do.
    """
    credential = auth.credential
    malformed = (
        errors.authorization_query_parameters_error
        if auth.presigned
        else errors.authorization_header_malformed
    )
    if credential.service != "s3":
        raise malformed(
            f'The authorization is malformed; incorrect service "{credential.service}". '
            'This endpoint belongs to "s3".'
        )
    if region is not None and credential.region != region:
        err = malformed(
            f"The authorization is malformed; the region '{credential.region}' is wrong; "
            f"expecting '{region}'"
        )
        raise err.with_fields(region=region)
    _check_time(auth, now if now is not None else datetime.now(UTC))

    key = signing_key(secret_key, credential.date, credential.region, credential.service)
    exclude = ("X-Amz-Signature",) if auth.presigned else ()
    first_canonical = ""
    first_string = ""
    non_ascii = any(
        not value.isascii() for name, value in req.headers if name in auth.signed_headers
    )
    variants = _VARIANTS if non_ascii else _VARIANTS[:1]
    for uri, (fold, encoding) in itertools.product(canonical_uris(req.raw_path), variants):
        canonical = canonical_request(
            req,
            auth.signed_headers,
            auth.content_sha256,
            canonical_uri=uri,
            exclude_query=exclude,
            fold=fold,
        )
        to_sign = string_to_sign(auth.amz_date, credential.scope, canonical, encoding)
        expected = hmac_sha256(key, to_sign).hex()
        if hmac.compare_digest(expected, auth.signature):
            mode = auth.payload
            return VerifiedAuth(
                credential=credential,
                presigned=auth.presigned,
                amz_date=auth.amz_date,
                request_time=auth.request_time,
                seed_signature=auth.signature,
                signing_key=key,
                payload=mode,
                content_sha256=auth.content_sha256.lower() if mode is PayloadMode.SHA256 else None,
            )
        if not first_canonical:
            first_canonical, first_string = canonical, to_sign
    raise errors.signature_does_not_match(
        access_key_id=credential.access_key_id,
        string_to_sign=first_string,
        signature_provided=auth.signature,
        canonical_request=first_canonical,
    )


SecretLookup = Callable[[str], Awaitable[str | None]]


async def authenticate(
    req: RequestParts,
    lookup_secret: SecretLookup,
    *,
    region: str | None = None,
    now: datetime | None = None,
) -> VerifiedAuth | None:
    """`parse` + secret lookup + `verify`; None for anonymous requests.

    `lookup_secret(access_key_id)` returns the secret, or None for an unknown or disabled key
    (InvalidAccessKeyId).
    """
    auth = parse(req)
    if auth is None:
        return None
    secret = await lookup_secret(auth.credential.access_key_id)
    if secret is None:
        raise errors.invalid_access_key_id(auth.credential.access_key_id)
    return verify(auth, req, secret, region=region, now=now)
