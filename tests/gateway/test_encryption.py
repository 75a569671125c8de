"""Server-side encryption requests are refused (501 NotImplemented naming the header), never
stored in plaintext as if they had been honoured (issue #12, item 9).

Driven with boto3 and awscli as users would (`ServerSideEncryption='AES256'`, `--sse`), plus
headers added on the wire for the SSE-C forms boto3 only sends over HTTPS.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from gwserver import Gateway

PUBLIC = {"residency-class": "public"}
CUSTOMER_KEY = os.urandom(32)
SSE_C = {
    "x-amz-server-side-encryption-customer-algorithm": "AES256",
    "x-amz-server-side-encryption-customer-key": base64.b64encode(CUSTOMER_KEY).decode(),
    "x-amz-server-side-encryption-customer-key-MD5": base64.b64encode(
        hashlib.md5(CUSTOMER_KEY).digest()
    ).decode(),
}


def _bucket(s3: Any) -> str:
    name = f"sse-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def _refused(call: Callable[[], Any], header: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 501, response
    assert response["Error"]["Code"] == "NotImplemented"
    assert header.lower() in response["Error"]["Message"]
    assert response["Error"]["Header"] == header.lower()


def _with_headers(s3: Any, operation: str, headers: dict[str, str]) -> None:
    """Add raw headers to every `operation` request this client sends (signed with the rest)."""

    def add(request: Any, **_: Any) -> None:
        for name, value in headers.items():
            request.headers[name] = value

    s3.meta.events.register(f"before-sign.s3.{operation}", add)


def _missing(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError as exc:
        return int(exc.response["ResponseMetadata"]["HTTPStatusCode"]) == 404
    return False


@pytest.mark.parametrize(
    ("params", "header"),
    [
        ({"ServerSideEncryption": "AES256"}, "x-amz-server-side-encryption"),
        (
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/residency"},
            "x-amz-server-side-encryption",
        ),
        (
            {"ServerSideEncryption": "aws:kms", "BucketKeyEnabled": True},
            "x-amz-server-side-encryption",
        ),
    ],
    ids=["sse-s3", "sse-kms", "bucket-key"],
)
def test_put_object_with_sse_is_501_and_stores_nothing(
    gateway: Gateway, params: dict[str, Any], header: str
) -> None:
    s3 = gateway.s3()
    bucket = _bucket(s3)
    before = gateway.blob_files()
    _refused(lambda: s3.put_object(Bucket=bucket, Key="secret", Body=b"x" * 4096, **params), header)
    assert _missing(s3, bucket, "secret")
    assert gateway.blob_files() == before
    s3.put_object(Bucket=bucket, Key="plain", Body=b"ok", Metadata=PUBLIC)  # the same, without
    assert s3.get_object(Bucket=bucket, Key="plain")["Body"].read() == b"ok"


def test_put_object_with_sse_c_is_501(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = _bucket(s3)
    _with_headers(s3, "PutObject", SSE_C)
    before = gateway.blob_files()
    _refused(
        lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", Metadata=PUBLIC),
        "x-amz-server-side-encryption-customer-algorithm",
    )
    assert _missing(gateway.s3(), bucket, "k")
    assert gateway.blob_files() == before


def test_copy_with_sse_or_an_sse_c_source_is_501(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = _bucket(s3)
    s3.put_object(Bucket=bucket, Key="src", Body=b"source", Metadata=PUBLIC)
    source = {"Bucket": bucket, "Key": "src"}
    _refused(
        lambda: s3.copy_object(
            Bucket=bucket, Key="dst", CopySource=source, ServerSideEncryption="AES256"
        ),
        "x-amz-server-side-encryption",
    )
    assert _missing(s3, bucket, "dst")
    copier = gateway.s3()
    _with_headers(
        copier,
        "CopyObject",
        {
            "x-amz-copy-source-server-side-encryption-customer-algorithm": "AES256",
            "x-amz-copy-source-server-side-encryption-customer-key": SSE_C[
                "x-amz-server-side-encryption-customer-key"
            ],
        },
    )
    _refused(
        lambda: copier.copy_object(Bucket=bucket, Key="dst", CopySource=source),
        "x-amz-copy-source-server-side-encryption-customer-algorithm",
    )
    assert _missing(s3, bucket, "dst")


def test_multipart_with_sse_is_501_at_create_and_at_each_part(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = _bucket(s3)
    _refused(
        lambda: s3.create_multipart_upload(
            Bucket=bucket, Key="big", ServerSideEncryption="aws:kms", Metadata=PUBLIC
        ),
        "x-amz-server-side-encryption",
    )
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big", Metadata=PUBLIC)["UploadId"]
    parts = gateway.s3()
    _with_headers(parts, "UploadPart", SSE_C)
    before = gateway.blob_files()
    _refused(
        lambda: parts.upload_part(
            Bucket=bucket, Key="big", UploadId=upload, PartNumber=1, Body=b"p" * 1024
        ),
        "x-amz-server-side-encryption-customer-algorithm",
    )
    assert s3.list_parts(Bucket=bucket, Key="big", UploadId=upload).get("Parts", []) == []
    assert gateway.blob_files() == before
    s3.abort_multipart_upload(Bucket=bucket, Key="big", UploadId=upload)


@pytest.mark.parametrize(
    "sse", [["--sse", "AES256"], ["--sse", "aws:kms", "--sse-kms-key-id", "alias/residency"]]
)
def test_awscli_cp_with_sse_fails_and_stores_nothing(
    gateway: Gateway, tmp_path: Path, sse: list[str]
) -> None:
    s3 = gateway.s3()
    bucket = _bucket(s3)
    src = tmp_path / "report.pdf"
    src.write_bytes(os.urandom(10_000))
    before = gateway.blob_files()
    done = subprocess.run(
        ["aws", "s3", "cp", str(src), f"s3://{bucket}/report.pdf", *sse],
        env={**os.environ, **gateway.env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0, done.stdout
    assert "NotImplemented" in done.stderr, done.stderr
    assert "x-amz-server-side-encryption" in done.stderr
    assert _missing(s3, bucket, "report.pdf")
    assert gateway.blob_files() == before
