"""Multipart behaviours S3 clients and conformance suites check, through boto3 against a real
server: a retried Complete, repeated part numbers, UploadPartCopy past the source's end,
conditional Complete, `partNumber` reads and GetObjectAttributes."""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any

import botocore.exceptions
import pytest
from gwserver import Gateway

MIB = 1024 * 1024


def new_bucket(s3: Any) -> str:
    name = f"m-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def error_of(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, int]:
    response = exc.value.response
    return str(response["Error"]["Code"]), int(response["ResponseMetadata"]["HTTPStatusCode"])


@pytest.fixture(scope="module")
def s3(gateway: Gateway) -> Any:
    return gateway.s3()


@pytest.fixture(scope="module")
def parts() -> list[bytes]:
    return [os.urandom(5 * MIB), os.urandom(5 * MIB + 7), os.urandom(999)]


def _upload(
    s3: Any, bucket: str, key: str, parts: list[bytes], **create: Any
) -> tuple[str, list[dict[str, Any]]]:
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    algorithm = create.get("ChecksumAlgorithm")
    done = []
    for number, data in enumerate(parts, 1):
        extra = {"ChecksumAlgorithm": algorithm} if algorithm else {}
        response = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data, **extra
        )
        entry = {"PartNumber": number, "ETag": response["ETag"]}
        if algorithm:
            entry[f"Checksum{algorithm}"] = response[f"Checksum{algorithm}"]
        done.append(entry)
    return upload_id, done


def _complete(s3: Any, bucket: str, key: str, upload_id: str, done: list[Any], **extra: Any) -> Any:
    return s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}, **extra
    )


def test_retried_complete_answers_the_same(s3: Any, parts: list[bytes]) -> None:
    bucket = new_bucket(s3)
    upload_id, done = _upload(s3, bucket, "mp", parts[:2])
    first = _complete(s3, bucket, "mp", upload_id, done)
    again = _complete(s3, bucket, "mp", upload_id, done)  # the answer was lost: retry
    assert again["ETag"] == first["ETag"]
    assert again["ChecksumCRC64NVME"] == first["ChecksumCRC64NVME"]
    assert s3.head_object(Bucket=bucket, Key="mp")["ETag"] == first["ETag"]
    # Once the key holds something else, the upload id names nothing any more.
    s3.put_object(Bucket=bucket, Key="mp", Body=b"newer")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        _complete(s3, bucket, "mp", upload_id, done)
    assert error_of(exc) == ("NoSuchUpload", 404)
    # An upload id completed under another key is not this key's.
    other_id, other = _upload(s3, bucket, "other", parts[2:])
    _complete(s3, bucket, "other", other_id, other)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        _complete(s3, bucket, "mp", other_id, other)
    assert error_of(exc) == ("NoSuchUpload", 404)


def test_a_repeated_part_number_is_invalid_part_order(s3: Any, parts: list[bytes]) -> None:
    bucket = new_bucket(s3)
    upload_id, done = _upload(s3, bucket, "mp", parts[:1])
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        _complete(s3, bucket, "mp", upload_id, [done[0], done[0]])
    assert error_of(exc) == ("InvalidPartOrder", 400)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_upload_part_copy_past_the_source_end_is_invalid_range(s3: Any) -> None:
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="src", Body=b"0123456789")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.upload_part_copy(
            Bucket=bucket,
            Key="dst",
            UploadId=upload_id,
            PartNumber=1,
            CopySource={"Bucket": bucket, "Key": "src"},
            CopySourceRange="bytes=0-21",
        )
    assert error_of(exc) == ("InvalidRange", 416)
    ok = s3.upload_part_copy(
        Bucket=bucket,
        Key="dst",
        UploadId=upload_id,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange="bytes=2-9",
    )
    assert ok["CopyPartResult"]["ETag"] == f'"{hashlib.md5(b"23456789").hexdigest()}"'


def test_conditional_complete(s3: Any, parts: list[bytes]) -> None:
    bucket = new_bucket(s3)
    existing = s3.put_object(Bucket=bucket, Key="k", Body=b"first")["ETag"]

    def attempt(key: str, **conditions: Any) -> tuple[str, int] | None:
        upload_id, done = _upload(s3, bucket, key, parts[2:])
        try:
            _complete(s3, bucket, key, upload_id, done, **conditions)
        except botocore.exceptions.ClientError as exc:
            response = exc.response
            return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]
        return None

    # Before, Complete overwrote the object despite If-None-Match: *.
    assert attempt("k", IfNoneMatch="*") == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"
    assert attempt("k", IfMatch='"0123456789abcdef0123456789abcdef"') == (
        "PreconditionFailed",
        412,
    )
    assert attempt("missing", IfMatch=existing) == ("NoSuchKey", 404)
    assert attempt("k", IfMatch=existing, IfNoneMatch="*") == ("NotImplemented", 501)
    assert attempt("fresh", IfNoneMatch="*") is None
    assert attempt("k", IfMatch=existing) is None
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == parts[2]


def test_put_if_match_on_a_missing_key_is_no_such_key(s3: Any) -> None:
    bucket = new_bucket(s3)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="nothing", Body=b"x", IfMatch='"abc"')
    assert error_of(exc) == ("NoSuchKey", 404)


def test_part_number_reads(s3: Any, parts: list[bytes]) -> None:
    bucket = new_bucket(s3)
    upload_id, done = _upload(s3, bucket, "mp", parts)
    etag = _complete(s3, bucket, "mp", upload_id, done)["ETag"]
    offsets = [0, len(parts[0]), len(parts[0]) + len(parts[1])]
    total = sum(len(p) for p in parts)
    for number, data in enumerate(parts, 1):
        head = s3.head_object(Bucket=bucket, Key="mp", PartNumber=number)
        assert head["ContentLength"] == len(data)
        assert head["PartsCount"] == 3
        assert head["ETag"] == etag
        start = offsets[number - 1]
        assert head["ContentRange"] == f"bytes {start}-{start + len(data) - 1}/{total}"
    got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=2)
    assert got["Body"].read() == parts[1]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="mp", PartNumber=4)
    assert error_of(exc) == ("InvalidPartNumber", 416)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="mp", PartNumber=1, Range="bytes=0-1")
    assert error_of(exc)[0] == "InvalidRequest"
    s3.put_object(Bucket=bucket, Key="simple", Body=b"whole")
    assert s3.get_object(Bucket=bucket, Key="simple", PartNumber=1)["Body"].read() == b"whole"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="simple", PartNumber=2)
    assert error_of(exc) == ("InvalidPartNumber", 416)


def test_an_empty_last_part_reads_as_no_bytes(s3: Any, parts: list[bytes]) -> None:
    """S3 takes a 0-byte last part; reading it is empty, never the whole object."""
    bucket = new_bucket(s3)
    upload_id, done = _upload(s3, bucket, "mp", [parts[0], b""])
    _complete(s3, bucket, "mp", upload_id, done)
    got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=2)
    assert got["Body"].read() == b""
    assert got["ContentLength"] == 0
    assert got["PartsCount"] == 2
    assert s3.head_object(Bucket=bucket, Key="mp", PartNumber=2)["ContentLength"] == 0
    assert s3.get_object(Bucket=bucket, Key="mp", PartNumber=1)["Body"].read() == parts[0]


def test_get_object_attributes(s3: Any, parts: list[bytes]) -> None:
    bucket = new_bucket(s3)
    upload_id, done = _upload(s3, bucket, "mp", parts, ChecksumAlgorithm="SHA256")
    result = _complete(s3, bucket, "mp", upload_id, done)
    everything = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]
    got = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=everything)
    assert got["ETag"] == result["ETag"].strip('"')
    assert got["Checksum"] == {
        "ChecksumSHA256": result["ChecksumSHA256"],
        "ChecksumType": "COMPOSITE",
    }
    assert got["StorageClass"] == "STANDARD"
    assert got["ObjectSize"] == sum(len(p) for p in parts)
    listed = got["ObjectParts"]
    assert listed["TotalPartsCount"] == 3
    assert listed["IsTruncated"] is False
    assert [(p["PartNumber"], p["Size"], p["ChecksumSHA256"]) for p in listed["Parts"]] == [
        (d["PartNumber"], len(data), d["ChecksumSHA256"])
        for d, data in zip(done, parts, strict=True)
    ]
    page = s3.get_object_attributes(
        Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"], MaxParts=2
    )["ObjectParts"]
    assert page["IsTruncated"] is True
    assert [p["PartNumber"] for p in page["Parts"]] == [1, 2]
    assert page["NextPartNumberMarker"] == 2
    rest = s3.get_object_attributes(
        Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"], PartNumberMarker=2
    )["ObjectParts"]
    assert [p["PartNumber"] for p in rest["Parts"]] == [3]

    s3.put_object(Bucket=bucket, Key="simple", Body=b"whole", ChecksumAlgorithm="CRC32C")
    simple = s3.get_object_attributes(
        Bucket=bucket, Key="simple", ObjectAttributes=["ETag", "ObjectSize", "Checksum"]
    )
    assert simple["ETag"] == hashlib.md5(b"whole").hexdigest()
    assert simple["ObjectSize"] == 5
    assert simple["Checksum"]["ChecksumType"] == "FULL_OBJECT"
    assert "ChecksumCRC32C" in simple["Checksum"]
    assert "ObjectParts" not in simple
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object_attributes(Bucket=bucket, Key="absent", ObjectAttributes=["ETag"])
    assert error_of(exc) == ("NoSuchKey", 404)
