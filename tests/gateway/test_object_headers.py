"""What an object keeps besides its bytes, and listings' details, through real clients:
Cache-Control, Content-Disposition, Content-Encoding, Content-Language and Expires; non-ASCII
user metadata as S3 keeps it (RFC 2047 on the way out); ListBuckets paging and prefix;
ListObjects V1's Prefix as sent."""

from __future__ import annotations

import base64
import datetime
import os
import uuid
from typing import Any

import botocore.exceptions
import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from gwserver import Gateway

MIB = 1024 * 1024
HEADERS = {
    "CacheControl": "max-age=3600, public",
    "ContentDisposition": 'attachment; filename="report.csv"',
    "ContentEncoding": "gzip",
    "ContentLanguage": "de-CH",
    "Expires": datetime.datetime(2031, 5, 4, 3, 2, 1, tzinfo=datetime.UTC),
}


def new_bucket(s3: Any, prefix: str = "h") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def s3(gateway: Gateway) -> Any:
    return gateway.s3()


def _shown(response: dict[str, Any]) -> dict[str, Any]:
    return {name: response.get(name) for name in HEADERS}


def test_content_headers_are_kept_copied_and_replaced(s3: Any) -> None:
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", **HEADERS)
    assert _shown(s3.head_object(Bucket=bucket, Key="k")) == HEADERS
    got = s3.get_object(Bucket=bucket, Key="k")
    assert _shown(got) == HEADERS
    assert got["Body"].read() == b"data"

    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "k"})
    assert _shown(s3.head_object(Bucket=bucket, Key="copy")) == HEADERS
    s3.copy_object(
        Bucket=bucket,
        Key="replaced",
        CopySource={"Bucket": bucket, "Key": "k"},
        MetadataDirective="REPLACE",
        CacheControl="no-store",
    )
    head = s3.head_object(Bucket=bucket, Key="replaced")
    assert head["CacheControl"] == "no-store"
    assert "ContentDisposition" not in head
    assert "ContentLanguage" not in head


def test_multipart_objects_keep_content_headers(s3: Any) -> None:
    bucket = new_bucket(s3)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp", **HEADERS)["UploadId"]
    parts = []
    for number, data in enumerate([os.urandom(5 * MIB), b"tail"], 1):
        etag = s3.upload_part(
            Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=number, Body=data
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    assert _shown(s3.head_object(Bucket=bucket, Key="mp")) == HEADERS


def _signed(
    gateway: Gateway, method: str, url: str, headers: dict[str, str], body: bytes
) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, headers=headers, data=body)
    S3SigV4Auth(Credentials(gateway.access_key, gateway.secret_key), "s3", gateway.region).add_auth(
        request
    )
    return dict(request.headers.items())


def test_non_ascii_metadata_is_kept_as_unicode_and_sent_back_rfc2047(
    gateway: Gateway, s3: Any
) -> None:
    """A client that sends raw UTF-8 (Go, Java, curl) gets the value back RFC 2047-encoded,
    as S3 answers; one that sends RFC 2047 (boto3 only takes ASCII) gets its own bytes back."""
    bucket = new_bucket(s3)
    url = f"{gateway.endpoint}/{bucket}/raw"
    value = "Zürich 東京"
    headers = _signed(gateway, "PUT", url, {"x-amz-meta-city": value}, b"x")
    wire = {
        k: (v.encode("utf-8") if k.lower() == "x-amz-meta-city" else v) for k, v in headers.items()
    }
    put = httpx.put(url, headers=wire, content=b"x")
    assert put.status_code == 200, put.text
    encoded = f"=?UTF-8?B?{base64.b64encode(value.encode()).decode()}?="
    head = s3.head_object(Bucket=bucket, Key="raw")
    assert head["Metadata"] == {"city": encoded}

    s3.put_object(Bucket=bucket, Key="rfc2047", Body=b"x", Metadata={"city": encoded})
    assert s3.head_object(Bucket=bucket, Key="rfc2047")["Metadata"] == {"city": encoded}
    s3.put_object(Bucket=bucket, Key="ascii", Body=b"x", Metadata={"city": "Bern"})
    assert s3.head_object(Bucket=bucket, Key="ascii")["Metadata"] == {"city": "Bern"}


def test_list_buckets_pages_and_filters(s3: Any) -> None:
    prefix = f"lb{uuid.uuid4().hex[:6]}"
    names = sorted(new_bucket(s3, prefix) for _ in range(3))
    first = s3.list_buckets(Prefix=prefix, MaxBuckets=2)
    assert [b["Name"] for b in first["Buckets"]] == names[:2]
    assert first["Prefix"] == prefix
    token = first["ContinuationToken"]
    rest = s3.list_buckets(Prefix=prefix, MaxBuckets=2, ContinuationToken=token)
    assert [b["Name"] for b in rest["Buckets"]] == names[2:]
    assert "ContinuationToken" not in rest
    everything = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert set(names) <= set(everything)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.list_buckets(MaxBuckets=10_001)
    assert exc.value.response["Error"]["Code"] == "InvalidArgument"


def test_list_objects_v1_returns_prefix_as_sent(s3: Any) -> None:
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="a b/é.txt", Body=b"x")
    # botocore asks for encoding-type=url and decodes the keys, but not a V1 Prefix.
    listed = s3.list_objects(Bucket=bucket, Prefix="a b/é")
    assert listed["Prefix"] == "a b/é"
    assert [o["Key"] for o in listed["Contents"]] == ["a b/é.txt"]


def test_public_access_block_is_stored(gateway: Gateway, s3: Any) -> None:
    """Stored and shown as set; residency never serves an anonymous request either way."""
    bucket = new_bucket(s3)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_public_access_block(Bucket=bucket)
    assert exc.value.response["Error"]["Code"] == "NoSuchPublicAccessBlockConfiguration"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    config = {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": False,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=config)
    got = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert got == config
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        gateway.other_s3().put_public_access_block(
            Bucket=bucket, PublicAccessBlockConfiguration=config
        )
    assert exc.value.response["Error"]["Code"] == "AccessDenied"
    s3.delete_public_access_block(Bucket=bucket)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_public_access_block(Bucket=bucket)
    assert exc.value.response["Error"]["Code"] == "NoSuchPublicAccessBlockConfiguration"
    assert httpx.get(f"{gateway.endpoint}/{bucket}").status_code == 403  # anonymous: refused
