"""minio-py against the real gateway: bucket, labelled PUT, byte-exact GET and ranges, listing,
multipart (a stream longer than `part_size`), single and batch delete, and a refused write that
surfaces as minio's `S3Error` with the code `ResidencyViolation`."""

from __future__ import annotations

import io
import os
import uuid
from typing import Any

import pytest
from gwserver import Gateway

# A missing client fails the test run loudly (it is in the `test` extra), never skips.
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from minio.helpers import DictType

MIB = 1024 * 1024
PUBLIC: DictType = {"x-amz-meta-residency-class": "public"}


@pytest.fixture(scope="module")
def mc(gateway: Gateway) -> Minio:
    scheme, host = gateway.endpoint.split("://", 1)
    return Minio(
        host,
        access_key=gateway.access_key,
        secret_key=gateway.secret_key,
        region=gateway.region,
        secure=scheme == "https",
    )


@pytest.fixture(scope="module")
def s3(gateway: Gateway) -> Any:
    return gateway.s3()


def new_bucket(mc: Minio) -> str:
    name = f"mc-{uuid.uuid4().hex[:12]}"
    mc.make_bucket(name)
    assert mc.bucket_exists(name)
    return name


def put(mc: Minio, bucket: str, key: str, body: bytes, **kwargs: Any) -> None:
    mc.put_object(bucket, key, io.BytesIO(body), len(body), **kwargs)


def get(mc: Minio, bucket: str, key: str, **kwargs: Any) -> bytes:
    response = mc.get_object(bucket, key, **kwargs)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def test_minio_put_get_list_delete_with_classification(mc: Minio, s3: Any) -> None:
    bucket = new_bucket(mc)
    body = os.urandom(70_000)
    put(mc, bucket, "dir/a.bin", body, metadata=PUBLIC)
    put(mc, bucket, "dir/b.txt", b"hello", metadata=PUBLIC, content_type="text/plain")
    put(mc, bucket, "top.bin", b"", metadata=PUBLIC)

    assert get(mc, bucket, "dir/a.bin") == body
    assert get(mc, bucket, "dir/a.bin", offset=100, length=50) == body[100:150]
    assert get(mc, bucket, "top.bin") == b""
    stat = mc.stat_object(bucket, "dir/b.txt")
    assert stat.size == 5
    assert stat.content_type == "text/plain"
    assert stat.metadata is not None
    assert stat.metadata["x-amz-meta-residency-class"] == "public"
    # The gateway stored the label as the object's classification (seen by boto3 too).
    assert s3.head_object(Bucket=bucket, Key="dir/a.bin")["Metadata"]["residency-class"] == (
        "public"
    )

    assert sorted(o.object_name or "" for o in mc.list_objects(bucket, recursive=True)) == [
        "dir/a.bin",
        "dir/b.txt",
        "top.bin",
    ]
    top = list(mc.list_objects(bucket))
    assert sorted((o.object_name or "", o.is_dir) for o in top) == [
        ("dir/", True),
        ("top.bin", False),
    ]
    sizes = {o.object_name: o.size for o in mc.list_objects(bucket, prefix="dir/")}
    assert sizes == {"dir/a.bin": 70_000, "dir/b.txt": 5}

    mc.remove_object(bucket, "top.bin")
    # remove_objects is DeleteObjects (with the Content-MD5 the gateway requires).
    errors = list(mc.remove_objects(bucket, [DeleteObject("dir/a.bin"), DeleteObject("dir/b.txt")]))
    assert errors == []
    assert list(mc.list_objects(bucket, recursive=True)) == []
    with pytest.raises(S3Error) as exc:
        mc.stat_object(bucket, "dir/a.bin")
    assert exc.value.code == "NoSuchKey"
    mc.remove_bucket(bucket)
    assert not mc.bucket_exists(bucket)


def test_minio_multipart_put(mc: Minio, s3: Any) -> None:
    bucket = new_bucket(mc)
    body = os.urandom(11 * MIB + 123)
    # Known length above part_size: three parts, sent by minio's parallel uploader.
    mc.put_object(
        bucket, "big.bin", io.BytesIO(body), len(body), part_size=5 * MIB, metadata=PUBLIC
    )
    # Unknown length (-1): minio reads part_size chunks until the stream ends.
    mc.put_object(bucket, "stream.bin", io.BytesIO(body), -1, part_size=5 * MIB, metadata=PUBLIC)
    for key in ("big.bin", "stream.bin"):
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ETag"].endswith('-3"'), head["ETag"]
        assert head["Metadata"]["residency-class"] == "public"
        assert get(mc, bucket, key) == body
    assert (
        get(mc, bucket, "big.bin", offset=5 * MIB - 10, length=20)
        == body[5 * MIB - 10 : 5 * MIB + 10]
    )


def test_minio_refused_write_is_residency_violation(mc: Minio) -> None:
    bucket = new_bucket(mc)
    refused: DictType = {
        "x-amz-meta-residency-class": "personal.health",
        "x-amz-meta-residency-subject": "CN",
    }
    with pytest.raises(S3Error) as exc:
        put(mc, bucket, "cn/records.csv", b"id\n1\n", metadata=refused)
    assert exc.value.code == "ResidencyViolation"
    assert exc.value.response.status == 403
    # A multipart upload is refused at CreateMultipartUpload, before any part is sent.
    big = os.urandom(6 * MIB)
    with pytest.raises(S3Error) as exc:
        mc.put_object(
            bucket, "cn/big.bin", io.BytesIO(big), len(big), part_size=5 * MIB, metadata=refused
        )
    assert exc.value.code == "ResidencyViolation"
    assert list(mc.list_objects(bucket, recursive=True)) == []
