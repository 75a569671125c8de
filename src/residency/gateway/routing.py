"""Turn an HTTP request into an S3 operation name plus bucket and key.

S3 encodes the operation in the method, the addressing (path-style `/bucket/key` or
virtual-host-style `bucket.base-domain/key`) and a handful of query parameters. Keeping that
mapping in one table makes "which operation is this?" answerable without reading handlers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote

from residency.gateway import errors

# Sub-resources S3 knows but this gateway does not implement: answered with NotImplemented
# instead of being mistaken for a plain GET/PUT on the bucket or object.
_UNSUPPORTED_SUBRESOURCES = frozenset(
    {
        "accelerate",
        "acl",
        "analytics",
        "cors",
        "encryption",
        "intelligent-tiering",
        "inventory",
        "legal-hold",
        "lifecycle",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "ownershipControls",
        "policy",
        "policyStatus",
        "publicAccessBlock",
        "replication",
        "requestPayment",
        "restore",
        "retention",
        "select",
        "torrent",
        "website",
    }
)


_PUBLIC_ACCESS_BLOCK = {
    "GET": "GetPublicAccessBlock",
    "PUT": "PutPublicAccessBlock",
    "DELETE": "DeletePublicAccessBlock",
}


@dataclass(frozen=True, slots=True)
class Route:
    """What a request asks for. `operation` uses the S3 API action names."""

    operation: str
    bucket: str | None
    key: str | None


class RoutingError(Exception):
    """The request does not name a valid bucket/key (e.g. an empty key segment)."""


def _host_without_port(host: str) -> str:
    if host.startswith("["):  # IPv6 literal
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


@lru_cache(maxsize=256)
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def virtual_bucket(host: str, base_domains: Sequence[str]) -> str | None:
    """The bucket a `<bucket>.<base domain>` Host names (virtual-host style), else None.

    IP literals, the bare base domain and unknown names are path-style.
    """
    hostname = _host_without_port(host).lower()
    if _is_ip(hostname):
        return None
    for domain in base_domains:
        domain = domain.lower().strip(".")
        if domain and hostname.endswith("." + domain):
            return hostname[: -len(domain) - 1]
    return None


def _decode(raw: str) -> str:
    """A %-encoded path segment as text; percent-encoded bytes that are not UTF-8 are
    InvalidURI, as S3 answers, never U+FFFD (two raw keys would name one object)."""
    if "%" not in raw:
        return raw
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise errors.invalid_uri(raw) from None


def split_address(host: str, raw_path: str, base_domains: Sequence[str]) -> tuple[str | None, str]:
    """Return (bucket, key-or-empty) from the Host header and the raw (still %-encoded) path.

    Virtual-host style applies when the host is `<bucket>.<base domain>` for a configured base
    domain; everything else (IP literals, the bare base domain, unknown names) is path-style.
    """
    path = raw_path.split("?", 1)[0]
    bucket = virtual_bucket(host, base_domains)
    if bucket is not None:
        return bucket, _decode(path[1:]) if path.startswith("/") else _decode(path)
    trimmed = path[1:] if path.startswith("/") else path
    if not trimmed:
        return None, ""
    bucket_part, _, key_part = trimmed.partition("/")
    return _decode(bucket_part) or None, _decode(key_part)


def _object_operation(method: str, query: Mapping[str, str], headers: Mapping[str, str]) -> str:
    copy = "x-amz-copy-source" in headers
    if method == "PUT":
        if "partNumber" in query and "uploadId" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        # Half an UploadPart must not become a PutObject that replaces the object.
        for present, missing in (("uploadId", "partNumber"), ("partNumber", "uploadId")):
            if present in query:
                raise errors.invalid_argument(
                    f"This operation does not accept {present} without {missing}",
                    name=present,
                    value=query[present],
                )
        if "tagging" in query:
            return "PutObjectTagging"
        return "CopyObject" if copy else "PutObject"
    if method in ("GET", "HEAD"):
        if method == "GET" and "uploadId" in query:
            return "ListParts"
        if method == "GET" and "tagging" in query:
            return "GetObjectTagging"
        if method == "GET" and "attributes" in query:
            return "GetObjectAttributes"
        return "GetObject" if method == "GET" else "HeadObject"
    if method == "DELETE":
        if "uploadId" in query:
            return "AbortMultipartUpload"
        if "tagging" in query:
            return "DeleteObjectTagging"
        return "DeleteObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
    return "NotImplemented"


_AUTH_PARAMS = frozenset({"awsaccesskeyid", "signature", "expires", "x-id"})
"""Query parameters of presigned auth (SigV2) and botocore's operation hint: never a
sub-resource (SigV4's are the `X-Amz-*` ones)."""


def _subresources(query: Mapping[str, str]) -> bool:
    """Whether the query names anything but presigned auth (a presigned CreateBucket or
    DeleteBucket carries only that)."""
    return any(
        not (name.lower().startswith("x-amz-") or name.lower() in _AUTH_PARAMS) for name in query
    )


def _bucket_operation(method: str, query: Mapping[str, str]) -> str:
    if method == "GET":
        if "location" in query:
            return "GetBucketLocation"
        if "uploads" in query:
            return "ListMultipartUploads"
        if "versioning" in query:
            return "GetBucketVersioning"
        if "versions" in query:
            return "ListObjectVersions"
        if query.get("list-type") == "2":
            return "ListObjectsV2"
        if "tagging" in query:
            return "NotImplemented"
        return "ListObjects"
    if method == "HEAD":
        return "HeadBucket"
    if method == "PUT":
        if "versioning" in query:
            return "PutBucketVersioning"
        return "NotImplemented" if _subresources(query) else "CreateBucket"
    if method == "DELETE":
        return "NotImplemented" if _subresources(query) else "DeleteBucket"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    return "NotImplemented"


def route(
    method: str,
    host: str,
    raw_path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    base_domains: Sequence[str] = (),
) -> Route:
    """Map a request to its S3 operation. `headers` must be case-insensitive (lowercase keys)."""
    bucket, key = split_address(host, raw_path, base_domains)
    if bucket is not None and not key and "publicAccessBlock" in query:
        return Route(_PUBLIC_ACCESS_BLOCK.get(method, "NotImplemented"), bucket, None)
    if any(name in query for name in _UNSUPPORTED_SUBRESOURCES):
        return Route("NotImplemented", bucket, key or None)
    if bucket is None:
        return Route("ListBuckets" if method == "GET" else "NotImplemented", None, None)
    if not key:
        return Route(_bucket_operation(method, query), bucket, None)
    return Route(_object_operation(method, query, headers), bucket, key)
