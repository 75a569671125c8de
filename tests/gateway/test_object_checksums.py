"""Object checksums as S3 keeps them, through real clients against a real server.

PutObject keeps the client's checksum (or S3's CRC64NVME default) and HEAD/GET with
ChecksumMode show exactly that; multipart uploads get COMPOSITE or FULL_OBJECT checksums
(CRC32, CRC32C, CRC64NVME, SHA1, SHA256), and CompleteMultipartUpload's `x-amz-checksum-*`
header is checked against the object, not against the XML body. pyarrow (CRC64NVME on every
UploadPart) writes and reads Parquet through the gateway.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
import zlib
from typing import Any

import awscrt.checksums
import botocore.exceptions
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from gwserver import Gateway

MIB = 1024 * 1024


def new_bucket(s3: Any) -> str:
    name = f"c-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def error_of(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[str, str]:
    error = exc.value.response["Error"]
    return str(error["Code"]), str(error.get("Message", ""))


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def crc64nvme(data: bytes) -> str:
    return b64(awscrt.checksums.crc64nvme(data).to_bytes(8, "big"))


def crc32(data: bytes) -> str:
    return b64(zlib.crc32(data).to_bytes(4, "big"))


def sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


@pytest.fixture(scope="module")
def parts() -> list[bytes]:
    return [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(1000)]


@pytest.fixture(scope="module")
def s3(gateway: Gateway) -> Any:
    return gateway.s3()


@pytest.fixture(scope="module")
def bare(gateway: Gateway) -> Any:
    """A client that sends a checksum only when an operation requires one."""
    return gateway.s3(
        request_checksum_calculation="when_required", response_checksum_validation="when_required"
    )


# --- PutObject, HEAD and GET -----------------------------------------------------------------


def test_put_keeps_the_clients_algorithm_and_head_shows_it(s3: Any) -> None:
    bucket = new_bucket(s3)
    body = os.urandom(70_000)
    put = s3.put_object(Bucket=bucket, Key="k", Body=body, ChecksumAlgorithm="SHA256")
    digest = b64(hashlib.sha256(body).digest())
    assert put["ChecksumSHA256"] == digest
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == digest
    assert head["ChecksumType"] == "FULL_OBJECT"
    assert "ChecksumCRC32" not in head  # not a server CRC32 in its place
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got["ChecksumSHA256"] == digest
    assert got["Body"].read() == body


def test_put_without_a_checksum_gets_the_crc64nvme_default(bare: Any) -> None:
    bucket = new_bucket(bare)
    body = os.urandom(3000)
    put = bare.put_object(Bucket=bucket, Key="k", Body=body)
    assert put["ChecksumCRC64NVME"] == crc64nvme(body)
    head = bare.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head["ChecksumCRC64NVME"] == crc64nvme(body)
    assert head["ChecksumType"] == "FULL_OBJECT"
    assert "ChecksumCRC64NVME" not in bare.head_object(Bucket=bucket, Key="k")


def test_range_reads_carry_no_whole_object_checksum(s3: Any) -> None:
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"0123456789", ChecksumAlgorithm="CRC32C")
    got = s3.get_object(Bucket=bucket, Key="k", Range="bytes=2-4", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"234"
    assert "ChecksumCRC32C" not in got
    # A range that is the whole object sends what the checksum describes: S3 shows it.
    whole = s3.get_object(Bucket=bucket, Key="k", Range="bytes=0-", ChecksumMode="ENABLED")
    assert whole["Body"].read() == b"0123456789"
    assert (
        whole["ChecksumCRC32C"]
        == s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")["ChecksumCRC32C"]
    )


def test_copy_keeps_the_sources_algorithm(s3: Any) -> None:
    bucket = new_bucket(s3)
    body = os.urandom(10_000)
    s3.put_object(Bucket=bucket, Key="src", Body=body, ChecksumAlgorithm="SHA1")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    head = s3.head_object(Bucket=bucket, Key="dst", ChecksumMode="ENABLED")
    assert head["ChecksumSHA1"] == b64(sha1(body))


# --- multipart: COMPOSITE ----------------------------------------------------------------------


def _upload_parts(
    s3: Any, bucket: str, key: str, upload_id: str, parts: list[bytes], algorithm: str | None
) -> list[dict[str, Any]]:
    done = []
    for number, data in enumerate(parts, 1):
        extra = {"ChecksumAlgorithm": algorithm} if algorithm else {}
        response = s3.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data, **extra
        )
        entry = {"PartNumber": number, "ETag": response["ETag"]}
        if algorithm:
            field = f"Checksum{algorithm}"
            entry[field] = response[field]
        done.append(entry)
    return done


def test_composite_sha1_upload(s3: Any, parts: list[bytes]) -> None:
    bucket = new_bucket(s3)
    created = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="SHA1")
    assert created["ChecksumAlgorithm"] == "SHA1"
    assert created["ChecksumType"] == "COMPOSITE"
    upload_id = created["UploadId"]
    done = _upload_parts(s3, bucket, "mp", upload_id, parts, "SHA1")
    assert [p["ChecksumSHA1"] for p in done] == [b64(sha1(p)) for p in parts]
    expected = f"{b64(hashlib.sha1(b''.join(sha1(p) for p in parts)).digest())}-3"

    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)
    assert listed["ChecksumAlgorithm"] == "SHA1"
    assert [p["ChecksumSHA1"] for p in listed["Parts"]] == [b64(sha1(p)) for p in parts]

    # The whole object's checksum goes in the header: before, it was checked against the
    # XML body and always failed with BadDigest.
    result = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload_id,
        MultipartUpload={"Parts": done},
        ChecksumSHA1=expected,
    )
    assert result["ChecksumSHA1"] == expected
    assert result["ChecksumType"] == "COMPOSITE"
    head = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert head["ChecksumSHA1"] == expected
    assert head["ChecksumType"] == "COMPOSITE"
    got = s3.get_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"".join(parts)


def test_composite_completion_errors(s3: Any, parts: list[bytes]) -> None:
    bucket = new_bucket(s3)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="SHA256")[
        "UploadId"
    ]
    small = [parts[0], b"tail"]
    done = _upload_parts(s3, bucket, "mp", upload_id, small, "SHA256")

    def complete(part_list: list[dict[str, Any]], **extra: Any) -> tuple[str, str]:
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            s3.complete_multipart_upload(
                Bucket=bucket,
                Key="mp",
                UploadId=upload_id,
                MultipartUpload={"Parts": part_list},
                **extra,
            )
        return error_of(exc)

    missing = [dict(done[0]), {"PartNumber": 2, "ETag": done[1]["ETag"]}]
    code, message = complete(missing)
    assert code == "InvalidRequest"
    assert "missing for part 2" in message
    wrong = [dict(done[0]), {**done[1], "ChecksumSHA256": b64(hashlib.sha256(b"x").digest())}]
    assert complete(wrong)[0] == "InvalidPart"
    assert complete(done, ChecksumSHA256=b64(hashlib.sha256(b"x").digest()) + "-2") == (
        "BadDigest",
        "The SHA256 you specified did not match the calculated checksum.",
    )
    assert complete(done, ChecksumSHA256="not-base64")[0] == "InvalidRequest"
    assert complete(done, ChecksumType="FULL_OBJECT")[0] == "InvalidRequest"
    # Nothing was created, and the upload still completes.
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": done}
    )


def test_upload_part_must_use_the_uploads_algorithm(s3: Any, bare: Any) -> None:
    bucket = new_bucket(s3)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="SHA1")[
        "UploadId"
    ]
    for client, extra in ((s3, {"ChecksumAlgorithm": "CRC32"}), (bare, {})):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            client.upload_part(
                Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1, Body=b"x", **extra
            )
        code, message = error_of(exc)
        assert code == "InvalidRequest"
        assert "expected checksum Type: sha1" in message


@pytest.mark.parametrize(
    ("algorithm", "kind"),
    [("SHA256", "FULL_OBJECT"), ("CRC64NVME", "COMPOSITE"), ("MD5", None), (None, "COMPOSITE")],
)
def test_create_refuses_what_s3_refuses(s3: Any, algorithm: str | None, kind: str | None) -> None:
    bucket = new_bucket(s3)
    extra = {"ChecksumAlgorithm": algorithm} if algorithm else {}
    if kind:
        extra["ChecksumType"] = kind
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.create_multipart_upload(Bucket=bucket, Key="mp", **extra)
    assert error_of(exc)[0] == "InvalidRequest"


# --- multipart: FULL_OBJECT --------------------------------------------------------------------


@pytest.mark.parametrize(("algorithm", "whole"), [("CRC64NVME", crc64nvme), ("CRC32", crc32)])
def test_full_object_upload(s3: Any, parts: list[bytes], algorithm: str, whole: Any) -> None:
    bucket = new_bucket(s3)
    created = s3.create_multipart_upload(
        Bucket=bucket, Key="mp", ChecksumAlgorithm=algorithm, ChecksumType="FULL_OBJECT"
    )
    assert created["ChecksumType"] == "FULL_OBJECT"
    upload_id = created["UploadId"]
    done = _upload_parts(s3, bucket, "mp", upload_id, parts, algorithm)
    field = f"Checksum{algorithm}"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mp",
            UploadId=upload_id,
            MultipartUpload={"Parts": done},
            ChecksumType="FULL_OBJECT",
            **{field: whole(b"not the object")},
        )
    assert error_of(exc) == (
        "BadDigest",
        f"The {algorithm} you specified did not match the calculated checksum.",
    )
    result = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload_id,
        MultipartUpload={"Parts": done},
        ChecksumType="FULL_OBJECT",
        **{field: whole(b"".join(parts))},
    )
    assert result[field] == whole(b"".join(parts))
    assert result["ChecksumType"] == "FULL_OBJECT"
    # botocore validates the full-object checksum of what it reads (CRC64NVME via awscrt).
    got = s3.get_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert got[field] == whole(b"".join(parts))
    assert got["Body"].read() == b"".join(parts)


def test_default_upload_is_crc64nvme_of_the_whole_object(bare: Any, parts: list[bytes]) -> None:
    """An upload that names no algorithm gets S3's default; a checksum header on its Complete
    is ignored, as S3 does, and parts sent without a checksum get one computed."""
    bucket = new_bucket(bare)
    upload_id = bare.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    done = _upload_parts(bare, bucket, "mp", upload_id, parts, None)
    result = bare.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload_id,
        MultipartUpload={"Parts": done},
        ChecksumCRC64NVME=crc64nvme(b"ignored"),
    )
    assert result["ChecksumCRC64NVME"] == crc64nvme(b"".join(parts))
    head = bare.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert head["ChecksumCRC64NVME"] == crc64nvme(b"".join(parts))
    assert head["ChecksumType"] == "FULL_OBJECT"


# --- partNumber reads ------------------------------------------------------------------------


def test_part_reads_of_a_composite_object_carry_the_parts_checksum(
    s3: Any, parts: list[bytes]
) -> None:
    """GET/HEAD `?partNumber=N` of a COMPOSITE object show part N's checksum, as S3 does;
    botocore checks what it reads against it (before, part reads carried no checksum)."""
    bucket = new_bucket(s3)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="SHA1")[
        "UploadId"
    ]
    done = _upload_parts(s3, bucket, "mp", upload_id, parts, "SHA1")
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    for number, data in enumerate(parts, 1):
        got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=number, ChecksumMode="ENABLED")
        assert got["ChecksumSHA1"] == b64(sha1(data))
        assert got["ChecksumType"] == "COMPOSITE"
        assert got["ResponseMetadata"]["HTTPHeaders"]["x-amz-checksum-sha1"] == b64(sha1(data))
        assert got["Body"].read() == data
        head = s3.head_object(Bucket=bucket, Key="mp", PartNumber=number, ChecksumMode="ENABLED")
        assert head["ChecksumSHA1"] == b64(sha1(data))
        assert head["ChecksumType"] == "COMPOSITE"
    # Without checksum mode nothing is shown; the whole object still shows its own.
    assert "ChecksumSHA1" not in s3.head_object(Bucket=bucket, Key="mp", PartNumber=1)
    whole = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")["ChecksumSHA1"]
    assert whole.endswith("-3")


def test_a_one_part_composite_object_shows_the_part_not_the_composite(s3: Any) -> None:
    bucket = new_bucket(s3)
    body = os.urandom(1000)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="CRC32")[
        "UploadId"
    ]
    done = _upload_parts(s3, bucket, "mp", upload_id, [body], "CRC32")
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=1, ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == crc32(body)
    assert got["ChecksumType"] == "COMPOSITE"
    assert got["Body"].read() == body


def test_part_reads_of_a_full_object_checksum(s3: Any, bare: Any, parts: list[bytes]) -> None:
    """A FULL_OBJECT checksum describes the whole object: a part read shows it only when the
    part is the whole object (a one-part upload, a one-blob object's part 1), else nothing,
    as S3 does; never the whole object's CRC against a part's bytes."""
    bucket = new_bucket(s3)
    upload_id = s3.create_multipart_upload(
        Bucket=bucket, Key="mp", ChecksumAlgorithm="CRC64NVME", ChecksumType="FULL_OBJECT"
    )["UploadId"]
    done = _upload_parts(s3, bucket, "mp", upload_id, parts, "CRC64NVME")
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    for number, data in enumerate(parts, 1):
        got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=number, ChecksumMode="ENABLED")
        assert got["Body"].read() == data
        assert "ChecksumCRC64NVME" not in got
        assert "ChecksumType" not in got
    # One part (the default CRC64NVME upload, no algorithm named): the part is the object.
    body = os.urandom(2000)
    upload_id = bare.create_multipart_upload(Bucket=bucket, Key="one")["UploadId"]
    done = _upload_parts(bare, bucket, "one", upload_id, [body], None)
    bare.complete_multipart_upload(
        Bucket=bucket, Key="one", UploadId=upload_id, MultipartUpload={"Parts": done}
    )
    got = s3.get_object(Bucket=bucket, Key="one", PartNumber=1, ChecksumMode="ENABLED")
    assert got["ChecksumCRC64NVME"] == crc64nvme(body)
    assert got["ChecksumType"] == "FULL_OBJECT"
    assert got["Body"].read() == body
    s3.put_object(Bucket=bucket, Key="simple", Body=b"whole", ChecksumAlgorithm="SHA256")
    got = s3.get_object(Bucket=bucket, Key="simple", PartNumber=1, ChecksumMode="ENABLED")
    assert got["ChecksumSHA256"] == b64(hashlib.sha256(b"whole").digest())
    assert got["Body"].read() == b"whole"


# --- pyarrow -----------------------------------------------------------------------------------


def test_pyarrow_writes_and_reads_parquet(gateway: Gateway, s3: Any) -> None:
    """pyarrow's S3FileSystem (AWS SDK for C++) sends CRC64NVME on every UploadPart; a file
    larger than its part size goes up as a multipart upload."""
    bucket = new_bucket(s3)
    host = gateway.endpoint.split("://", 1)[1]
    fs = pafs.S3FileSystem(
        access_key=gateway.access_key,
        secret_key=gateway.secret_key,
        region=gateway.region,
        endpoint_override=host,
        scheme="http",
        allow_bucket_creation=False,
    )
    rows = 400_000
    table = pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "noise": pa.array([os.urandom(16) for _ in range(rows)], pa.binary()),
        }
    )
    pq.write_table(table, f"{bucket}/data/table.parquet", filesystem=fs, compression="none")
    head = s3.head_object(Bucket=bucket, Key="data/table.parquet", ChecksumMode="ENABLED")
    assert head["ContentLength"] > 10 * MIB
    assert head["PartsCount"] >= 2
    # The upload named no algorithm: the object's checksum is S3's default, combined from
    # the parts' CRC64NVMEs without reading the object again.
    stored = s3.get_object(Bucket=bucket, Key="data/table.parquet")["Body"].read()
    assert head["ChecksumCRC64NVME"] == crc64nvme(stored)
    assert head["ChecksumType"] == "FULL_OBJECT"
    assert pq.read_table(f"{bucket}/data/table.parquet", filesystem=fs).equals(table)
    small = pa.table({"x": [1, 2, 3]})
    pq.write_table(small, f"{bucket}/small.parquet", filesystem=fs)
    assert pq.read_table(f"{bucket}/small.parquet", filesystem=fs).equals(small)
