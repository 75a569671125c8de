"""Which S3 operation a request is: method + query + path-style or virtual-host addressing."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from starlette.datastructures import QueryParams

from residency.gateway.routing import route, split_address
from residency.gateway.sigv4 import query_pairs

BASE = ("localhost", "s3.example.com")


@pytest.mark.parametrize(
    ("host", "path", "expected"),
    [
        ("127.0.0.1:9000", "/", (None, "")),
        ("127.0.0.1:9000", "/bucket", ("bucket", "")),
        ("127.0.0.1:9000", "/bucket/", ("bucket", "")),
        ("127.0.0.1:9000", "/bucket/a/b%20c.txt", ("bucket", "a/b c.txt")),
        ("127.0.0.1:9000", "/bucket/a//b/", ("bucket", "a//b/")),
        ("photos.localhost:9000", "/a/b.txt", ("photos", "a/b.txt")),
        ("photos.s3.example.com", "/", ("photos", "")),
        ("my.dotted.bucket.s3.example.com", "/k", ("my.dotted.bucket", "k")),
        ("s3.example.com", "/photos/k", ("photos", "k")),
        ("localhost:9000", "/photos/k", ("photos", "k")),
        ("[::1]:9000", "/photos/k", ("photos", "k")),
        ("other.host:9000", "/photos/k", ("photos", "k")),
    ],
)
def test_addressing(host: str, path: str, expected: tuple[str | None, str]) -> None:
    assert split_address(host, path, BASE) == expected


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "operation"),
    [
        ("GET", "/", {}, {}, "ListBuckets"),
        ("PUT", "/b", {}, {}, "CreateBucket"),
        ("HEAD", "/b", {}, {}, "HeadBucket"),
        ("DELETE", "/b", {}, {}, "DeleteBucket"),
        ("GET", "/b", {"location": ""}, {}, "GetBucketLocation"),
        ("GET", "/b", {}, {}, "ListObjects"),
        ("GET", "/b", {"list-type": "2"}, {}, "ListObjectsV2"),
        ("GET", "/b", {"uploads": ""}, {}, "ListMultipartUploads"),
        ("POST", "/b", {"delete": ""}, {}, "DeleteObjects"),
        ("PUT", "/b/k", {}, {}, "PutObject"),
        ("PUT", "/b/k", {}, {"x-amz-copy-source": "/b/o"}, "CopyObject"),
        ("PUT", "/b/k", {"partNumber": "1", "uploadId": "u"}, {}, "UploadPart"),
        (
            "PUT",
            "/b/k",
            {"partNumber": "1", "uploadId": "u"},
            {"x-amz-copy-source": "b/o"},
            "UploadPartCopy",
        ),
        ("POST", "/b/k", {"uploads": ""}, {}, "CreateMultipartUpload"),
        ("POST", "/b/k", {"uploadId": "u"}, {}, "CompleteMultipartUpload"),
        ("DELETE", "/b/k", {"uploadId": "u"}, {}, "AbortMultipartUpload"),
        ("GET", "/b/k", {"uploadId": "u"}, {}, "ListParts"),
        ("GET", "/b/k", {"tagging": ""}, {}, "GetObjectTagging"),
        ("PUT", "/b/k", {"tagging": ""}, {}, "PutObjectTagging"),
        ("DELETE", "/b/k", {"tagging": ""}, {}, "DeleteObjectTagging"),
        ("GET", "/b/k", {}, {}, "GetObject"),
        ("HEAD", "/b/k", {}, {}, "HeadObject"),
        ("DELETE", "/b/k", {}, {}, "DeleteObject"),
        # Sub-resources we do not implement must not fall through to a plain GET/PUT.
        ("GET", "/b", {"policy": ""}, {}, "NotImplemented"),
        ("PUT", "/b", {"acl": ""}, {}, "NotImplemented"),
        ("PUT", "/b", {"X-Amz-Signature": "0", "X-Amz-Credential": "c"}, {}, "CreateBucket"),
        (
            "PUT",
            "/b",
            {"AWSAccessKeyId": "k", "Signature": "s", "Expires": "1"},
            {},
            "CreateBucket",
        ),
        ("DELETE", "/b", {"X-Amz-Signature": "0", "x-id": "DeleteBucket"}, {}, "DeleteBucket"),
        ("DELETE", "/b", {"cors": ""}, {}, "NotImplemented"),
        ("PUT", "/b/k", {"acl": ""}, {}, "NotImplemented"),
        ("GET", "/b", {"versions": ""}, {}, "ListObjectVersions"),
        ("PUT", "/b", {"versioning": ""}, {}, "PutBucketVersioning"),
        ("GET", "/b", {"versioning": ""}, {}, "GetBucketVersioning"),
        ("POST", "/b/k", {}, {}, "NotImplemented"),
        ("PUT", "/", {}, {}, "NotImplemented"),
    ],
)
def test_operations(
    method: str, path: str, query: dict[str, str], headers: dict[str, str], operation: str
) -> None:
    assert route(method, "127.0.0.1:9000", path, query, headers, BASE).operation == operation


@pytest.mark.parametrize(
    "query",
    [
        "",
        "uploads",
        "uploadId=abc&partNumber=3",
        "prefix=a%2Fb+c&delimiter=%2F&max-keys=10",
        "tagging=&versionId=null",
        "a=1&a=2&&b",
        "key=%C3%A9t%C3%A9&bad=%ZZ&plus=%2B+",
        "X-Amz-Credential=AK%2F20261123%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Expires=60",
    ],
)
def test_query_is_parsed_as_parse_qsl_does(query: str) -> None:
    """Routing, SigV4 and handlers share one parse of the query (`sigv4.query_pairs`): it
    must read exactly what Starlette's `request.query_params` (parse_qsl) read before."""
    expected = parse_qsl(query, keep_blank_values=True)
    assert list(query_pairs(query)) == expected
    assert dict(query_pairs(query)) == dict(QueryParams(query.encode("latin-1")))
