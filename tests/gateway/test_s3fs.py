"""s3fs (fsspec over aiobotocore) against the real gateway: bucket, labelled writes through
`s3_additional_kwargs`, byte-exact reads and ranges, `ls`/`find`/`glob`, a file written in
blocks (multipart), `setxattr` (an in-place CopyObject that relabels), delete, and a refused
write that surfaces as s3fs's `OSError` carrying `ResidencyViolation`."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from gwserver import Gateway

# A missing client fails the test run loudly (it is in the `test` extra), never skips.
from s3fs import S3FileSystem  # type: ignore[import-untyped]

MIB = 1024 * 1024


def filesystem(gateway: Gateway, **metadata: str) -> Any:
    """A fresh S3FileSystem (no instance or listing cache) that labels every write."""
    return S3FileSystem(
        key=gateway.access_key,
        secret=gateway.secret_key,
        endpoint_url=gateway.endpoint,
        client_kwargs={"region_name": gateway.region},
        config_kwargs={"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 1}},
        s3_additional_kwargs={"Metadata": metadata} if metadata else {},
        skip_instance_cache=True,
        use_listings_cache=False,
    )


@pytest.fixture(scope="module")
def fs(gateway: Gateway) -> Any:
    return filesystem(gateway, **{"residency-class": "public"})


@pytest.fixture(scope="module")
def s3(gateway: Gateway) -> Any:
    return gateway.s3()


def new_bucket(fs: Any) -> str:
    name = f"fs-{uuid.uuid4().hex[:12]}"
    fs.mkdir(name)
    assert fs.exists(name)
    return name


def test_s3fs_put_get_list_delete_with_classification(fs: Any, s3: Any) -> None:
    bucket = new_bucket(fs)
    body = os.urandom(70_000)
    fs.pipe(f"{bucket}/dir/a.bin", body)
    with fs.open(f"{bucket}/dir/b.txt", "wb") as f:
        f.write(b"hello")
    fs.pipe(f"{bucket}/top.bin", b"")

    assert fs.cat(f"{bucket}/dir/a.bin") == body
    assert fs.cat_file(f"{bucket}/dir/a.bin", start=100, end=150) == body[100:150]
    with fs.open(f"{bucket}/dir/a.bin", "rb", block_size=4096) as f:
        f.seek(60_000)
        assert f.read(100) == body[60_000:60_100]
    assert fs.cat(f"{bucket}/top.bin") == b""
    assert fs.info(f"{bucket}/dir/a.bin")["size"] == 70_000
    for key in ("dir/a.bin", "dir/b.txt", "top.bin"):
        assert s3.head_object(Bucket=bucket, Key=key)["Metadata"]["residency-class"] == "public"
    assert fs.getxattr(f"{bucket}/dir/b.txt", "residency-class") == "public"

    assert fs.find(bucket) == [f"{bucket}/dir/a.bin", f"{bucket}/dir/b.txt", f"{bucket}/top.bin"]
    assert sorted(fs.ls(bucket)) == [f"{bucket}/dir", f"{bucket}/top.bin"]
    assert fs.isdir(f"{bucket}/dir")
    assert fs.glob(f"{bucket}/dir/*.bin") == [f"{bucket}/dir/a.bin"]

    # setxattr relabels in place: a CopyObject onto itself with MetadataDirective=REPLACE.
    fs.setxattr(f"{bucket}/dir/b.txt", **{"residency-class": "backup"})
    assert s3.head_object(Bucket=bucket, Key="dir/b.txt")["Metadata"]["residency-class"] == (
        "backup"
    )
    assert fs.cat(f"{bucket}/dir/b.txt") == b"hello"

    fs.rm(f"{bucket}/top.bin")
    fs.rm(f"{bucket}/dir", recursive=True)  # DeleteObjects
    assert fs.find(bucket) == []
    assert not fs.exists(f"{bucket}/dir/a.bin")
    fs.rmdir(bucket)
    assert not fs.exists(bucket)


def test_s3fs_writes_in_blocks_as_multipart(fs: Any, s3: Any, tmp_path: Path) -> None:
    bucket = new_bucket(fs)
    body = os.urandom(11 * MIB + 123)
    with fs.open(f"{bucket}/big.bin", "wb", block_size=5 * MIB) as f:
        for offset in range(0, len(body), 1 * MIB):
            f.write(body[offset : offset + MIB])
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ETag"].endswith('-3"'), head["ETag"]
    assert head["Metadata"]["residency-class"] == "public"
    assert fs.cat(f"{bucket}/big.bin") == body
    assert (
        fs.cat_file(f"{bucket}/big.bin", start=5 * MIB - 10, end=5 * MIB + 10)
        == (body[5 * MIB - 10 : 5 * MIB + 10])
    )
    # put_file uploads a local file in blocks too; get downloads it.
    local = tmp_path / "big.bin"
    local.write_bytes(body)
    fs.put_file(str(local), f"{bucket}/put.bin", chunksize=5 * MIB)
    put_head = s3.head_object(Bucket=bucket, Key="put.bin")
    assert put_head["ETag"].endswith('-3"'), put_head["ETag"]
    assert put_head["Metadata"]["residency-class"] == "public"
    fs.get(f"{bucket}/put.bin", str(tmp_path / "got.bin"))
    assert (tmp_path / "got.bin").read_bytes() == body


def test_s3fs_refused_write_is_residency_violation(gateway: Gateway, fs: Any) -> None:
    bucket = new_bucket(fs)
    refused = filesystem(
        gateway, **{"residency-class": "personal.health", "residency-subject": "CN"}
    )
    with pytest.raises(OSError, match="ResidencyViolation") as exc:
        refused.pipe(f"{bucket}/cn/records.csv", b"id\n1\n")
    cause = exc.value.__cause__
    assert isinstance(cause, botocore.exceptions.ClientError)
    assert cause.response["Error"]["Code"] == "ResidencyViolation"
    # A block-wise write is refused at CreateMultipartUpload, when the first block is full.
    with (
        pytest.raises(OSError, match="ResidencyViolation"),
        refused.open(f"{bucket}/cn/big.bin", "wb", block_size=5 * MIB) as f,
    ):
        f.write(os.urandom(6 * MIB))
    # Relabelling an existing object to a class the policy refuses is refused too.
    fs.pipe(f"{bucket}/ok.csv", b"id\n1\n")
    with pytest.raises(OSError, match="ResidencyViolation"):
        fs.setxattr(
            f"{bucket}/ok.csv", **{"residency-class": "personal.health", "residency-subject": "CN"}
        )
    assert fs.find(bucket) == [f"{bucket}/ok.csv"]
    assert fs.getxattr(f"{bucket}/ok.csv", "residency-class") == "public"
