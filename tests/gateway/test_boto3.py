"""boto3 against the real gateway: today's default checksums (over TLS: aws-chunked with a
trailing CRC32), multipart, presigned URLs, ranges, conditionals, copy, listing, tagging,
metadata, batch delete."""

from __future__ import annotations

import datetime
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import httpx
import pytest
from botocore.config import Config
from gwserver import REGION, Gateway, create_key, start_server, write_config

from testkit import self_signed_cert

MIB = 1024 * 1024


def new_bucket(s3: Any) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def error_code(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def capture_payload_modes(s3: Any, operation: str) -> list[str]:
    modes: list[str] = []

    def capture(request: Any, **_: Any) -> None:
        value = request.headers.get("x-amz-content-sha256", b"")
        modes.append(value.decode() if isinstance(value, bytes) else value)

    s3.meta.events.register(f"before-send.s3.{operation}", capture)
    return modes


# --- TLS: what boto3 really sends by default -------------------------------------------------


@pytest.fixture(scope="module")
def tls_gateway(tmp_path_factory: pytest.TempPathFactory, moto_server: Any) -> Iterator[Gateway]:
    """A second server, over HTTPS, with its own data directory (one server per data dir)."""
    root = tmp_path_factory.mktemp("tls")
    cert, key = self_signed_cert(root)
    bucket = moto_server.new_bucket()
    config, dirs = write_config(root, moto_server, bucket)
    access, secret = create_key(config, root, "acme")
    server = start_server(
        ["--config", str(config), "--tls-cert", str(cert), "--tls-key", str(key)],
        root,
        scheme="https",
    )
    try:
        yield Gateway(
            endpoint=server.endpoint,
            access_key=access,
            secret_key=secret,
            region=REGION,
            data_dir=root / "data",
            config=config,
            server=server,
            moto_bucket=bucket,
            _locations=dirs,
        )
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tls_client(tls_gateway: Gateway) -> Any:
    """A boto3 client that trusts the HTTPS server's certificate."""
    return boto3.client(
        "s3",
        endpoint_url=tls_gateway.endpoint,
        aws_access_key_id=tls_gateway.access_key,
        aws_secret_access_key=tls_gateway.secret_key,
        region_name=tls_gateway.region,
        verify=str(tls_gateway.server.root / "cert.pem"),
        config=Config(s3={"addressing_style": "path"}),
    )


def test_default_put_over_tls_is_unsigned_payload_with_crc32_trailer(tls_client: Any) -> None:
    s3 = tls_client
    bucket = new_bucket(s3)
    modes = capture_payload_modes(s3, "PutObject")
    body = os.urandom(300_000)
    put = s3.put_object(Bucket=bucket, Key="dir/blob.bin", Body=body)
    assert modes == ["STREAMING-UNSIGNED-PAYLOAD-TRAILER"]
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert "ChecksumCRC32" in put
    got = s3.get_object(Bucket=bucket, Key="dir/blob.bin", ChecksumMode="ENABLED")
    assert got["Body"].read() == body


def test_trailer_checksum_mismatch_is_bad_digest_and_stores_nothing(
    tls_client: Any, tls_gateway: Gateway
) -> None:
    s3 = tls_client
    bucket = new_bucket(s3)

    def corrupt(request: Any, **_: Any) -> None:
        # Flip the trailer value after botocore computed it: the body no longer matches.
        body = request.body
        original_read = body.read

        def read(*args: Any) -> bytes:
            data: bytes = original_read(*args)
            marker = b"x-amz-checksum-crc32:"
            at = data.find(marker)
            if at >= 0:  # same length, valid base64, wrong value
                start = at + len(marker)
                fake = b"AAAAAA==" if data[start : start + 8] != b"AAAAAA==" else b"AAAAAQ=="
                data = data[:start] + fake + data[start + 8 :]
            return data

        body.read = read

    before = tls_gateway.blob_files()
    s3.meta.events.register("before-send.s3.PutObject", corrupt)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"x" * 1000)
    assert error_code(exc) == "BadDigest"
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        s3.head_object(Bucket=bucket, Key="bad")
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert tls_gateway.blob_files() == before


# --- plain HTTP: signed payload + x-amz-checksum header ---------------------------------------


def test_put_get_over_http_signs_the_payload(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    modes = capture_payload_modes(s3, "PutObject")
    body = os.urandom(100_000)
    s3.put_object(Bucket=bucket, Key="k", Body=body)
    assert modes == [hashlib.sha256(body).hexdigest()]
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == body


def test_empty_object(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["Body"].read() == b""
    assert got["ETag"] == f'"{hashlib.md5(b"").hexdigest()}"'


def test_user_metadata_content_type_and_residency_headers(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    s3.put_object(
        Bucket=bucket,
        Key="m",
        Body=b"hello",
        ContentType="text/plain",
        Metadata={"Owner": "ana", "residency-class": "public"},
    )
    head = s3.head_object(Bucket=bucket, Key="m")
    assert head["Metadata"] == {"owner": "ana", "residency-class": "public"}
    assert head["ContentType"] == "text/plain"
    headers = head["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-residency-class"] == "public"
    assert headers["x-residency-locations"]
    assert "x-amz-request-id" in headers


def test_ranges(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    body = bytes(range(256)) * 40
    s3.put_object(Bucket=bucket, Key="r", Body=body)
    part = s3.get_object(Bucket=bucket, Key="r", Range="bytes=10-19")
    assert part["Body"].read() == body[10:20]
    assert part["ContentRange"] == f"bytes 10-19/{len(body)}"
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=-5")["Body"].read() == body[-5:]
    assert (
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=10200-")["Body"].read() == (body[10200:])
    )
    # Past the end is clamped, as S3 does.
    assert (
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=10230-99999")["Body"].read()
        == (body[10230:])
    )
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={len(body)}-")
    assert error_code(exc) == "InvalidRange"


def test_conditionals(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"v1")["ETag"]
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"v1"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0000"')
    assert error_code(exc) == "PreconditionFailed"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    future = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=future)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=past)
    assert error_code(exc) == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=past)["Body"].read() == b"v1"
    # Conditional create: If-None-Match: * refuses to overwrite.
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="c", Body=b"v2", IfNoneMatch="*")
    assert error_code(exc) == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="c")["Body"].read() == b"v1"


def test_overwrite_replaces_and_old_blob_becomes_garbage(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="o", Body=b"first")
    s3.put_object(Bucket=bucket, Key="o", Body=b"second")
    assert s3.get_object(Bucket=bucket, Key="o")["Body"].read() == b"second"
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("o", 6)]


def test_copy_object_metadata_directives(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    body = os.urandom(50_000)
    s3.put_object(
        Bucket=bucket,
        Key="src",
        Body=body,
        Metadata={"a": "1"},
        ContentType="image/png",
        Tagging="t=1",
    )
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert head["Metadata"] == {"a": "1"}
    assert head["ContentType"] == "image/png"
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == body
    assert s3.get_object_tagging(Bucket=bucket, Key="dst")["TagSet"] == [{"Key": "t", "Value": "1"}]
    s3.copy_object(
        Bucket=bucket,
        Key="dst2",
        CopySource=f"{bucket}/src",
        MetadataDirective="REPLACE",
        Metadata={"b": "2"},
        ContentType="text/plain",
    )
    head = s3.head_object(Bucket=bucket, Key="dst2")
    assert head["Metadata"] == {"b": "2"}
    assert head["ContentType"] == "text/plain"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="src", CopySource=f"{bucket}/src")
    assert error_code(exc) == "InvalidRequest"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="x", CopySource=f"{bucket}/missing")
    assert error_code(exc) == "NoSuchKey"


def test_listing_v2_pagination_delimiter_and_url_encoding(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    keys = [f"logs/2026/{i:02d}.txt" for i in range(7)] + ["logs/top.txt", "a b+c.txt", "z/1"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    pages = list(
        s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, PaginationConfig={"PageSize": 3}
        )
    )
    assert len(pages) == 4
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == sorted(keys)
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["a b+c.txt"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["logs/", "z/"]
    nested = s3.list_objects_v2(Bucket=bucket, Prefix="logs/", Delimiter="/")
    assert [o["Key"] for o in nested["Contents"]] == ["logs/top.txt"]
    assert [p["Prefix"] for p in nested["CommonPrefixes"]] == ["logs/2026/"]
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="logs/2026/05.txt", MaxKeys=2)
    assert [o["Key"] for o in after["Contents"]] == ["logs/2026/06.txt", "logs/top.txt"]
    assert after["IsTruncated"] is True
    owner = s3.list_objects_v2(Bucket=bucket, FetchOwner=True, MaxKeys=1)["Contents"][0]
    assert owner["Owner"]["ID"]
    # boto3 asks for encoding-type=url and decodes the keys again.
    raw = s3.list_objects_v2(Bucket=bucket, Prefix="a ", EncodingType="url")
    assert [o["Key"] for o in raw["Contents"]] in (["a b+c.txt"], ["a%20b%2Bc.txt"])


def test_listing_v1_marker_pagination(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    keys = [f"k{i:03d}" for i in range(12)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    pages = list(
        s3.get_paginator("list_objects").paginate(Bucket=bucket, PaginationConfig={"PageSize": 5})
    )
    assert [len(p["Contents"]) for p in pages] == [5, 5, 2]
    assert [o["Key"] for p in pages for o in p["Contents"]] == keys
    first = s3.list_objects(Bucket=bucket, Marker="k009")
    assert [o["Key"] for o in first["Contents"]] == ["k010", "k011"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.list_objects(Bucket=bucket, MaxKeys=-1)
    assert error_code(exc) == "InvalidArgument"


def test_tagging(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="t", Body=b"x", Tagging="team=data&env=prod")
    tags = s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("env", "prod"), ("team", "data")]
    s3.put_object_tagging(
        Bucket=bucket, Key="t", Tagging={"TagSet": [{"Key": "only", "Value": "one"}]}
    )
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == [
        {"Key": "only", "Value": "one"}
    ]
    s3.delete_object_tagging(Bucket=bucket, Key="t")
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == []
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.put_object_tagging(
            Bucket=bucket,
            Key="t",
            Tagging={"TagSet": [{"Key": f"k{i}", "Value": "v"} for i in range(11)]},
        )
    assert error_code(exc) == "InvalidTag"
    # A tag may not reclassify an object after placement was decided.
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.put_object_tagging(
            Bucket=bucket,
            Key="t",
            Tagging={"TagSet": [{"Key": "residency-class", "Value": "personal"}]},
        )
    assert error_code(exc) == "InvalidRequest"


def test_delete_and_delete_objects(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    for key in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    s3.delete_object(Bucket=bucket, Key="a")
    s3.delete_object(Bucket=bucket, Key="never-existed")  # 204 like S3
    result = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "b"}, {"Key": "c"}, {"Key": "zzz"}]}
    )
    assert sorted(d["Key"] for d in result["Deleted"]) == ["b", "c", "zzz"]
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="b")
    assert error_code(exc) == "NoSuchKey"


def test_presigned_get_and_put(gateway: Gateway) -> None:
    s3 = gateway.s3(signature_version="s3v4")  # boto3 still presigns with SigV2 by default
    bucket = new_bucket(s3)
    put_url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=300
    )
    assert httpx.put(put_url, content=b"presigned body").status_code == 200
    get_url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=300
    )
    got = httpx.get(get_url)
    assert got.status_code == 200
    assert got.content == b"presigned body"
    tampered = httpx.get(get_url.replace(f"/{bucket}/p?", f"/{bucket}/q?"))
    assert tampered.status_code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in tampered.content


def test_multipart_upload_file_100_mib(gateway: Gateway, tmp_path: Path) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    source = tmp_path / "big.bin"
    digest = hashlib.md5()
    with source.open("wb") as f:
        for _ in range(100):
            chunk = os.urandom(MIB)
            digest.update(chunk)
            f.write(chunk)
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(
        multipart_threshold=8 * MIB, multipart_chunksize=16 * MIB, max_concurrency=4
    )
    s3.upload_file(str(source), bucket, "big.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == 100 * MIB
    assert head["ETag"].strip('"').endswith("-7")
    # A range spanning the first part boundary (16 MiB) comes from two segments.
    with source.open("rb") as f:
        f.seek(16 * MIB - 10)
        expected = f.read(20)
    spanning = s3.get_object(
        Bucket=bucket, Key="big.bin", Range=f"bytes={16 * MIB - 10}-{16 * MIB + 9}"
    )
    assert spanning["Body"].read() == expected
    target = tmp_path / "back.bin"
    s3.download_file(bucket, "big.bin", str(target))
    back = hashlib.md5()
    with target.open("rb") as f:
        while block := f.read(MIB):
            back.update(block)
    assert back.hexdigest() == digest.hexdigest()


def test_multipart_manual_list_abort_copy_part(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    src = os.urandom(6 * MIB)
    s3.put_object(Bucket=bucket, Key="source", Body=src)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    listed = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in listed] == [("mp", upload)]
    p1 = s3.upload_part_copy(
        Bucket=bucket,
        Key="mp",
        UploadId=upload,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "source"},
        CopySourceRange=f"bytes=0-{5 * MIB - 1}",
    )
    p2 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=2, Body=b"tail")
    parts = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, 5 * MIB), (2, 4)]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mp",
            UploadId=upload,
            MultipartUpload={
                "Parts": [
                    {"PartNumber": 2, "ETag": p2["ETag"]},
                    {"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]},
                ]
            },
        )
    assert error_code(exc) == "InvalidPartOrder"
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=upload,
        MultipartUpload={
            "Parts": [
                {"PartNumber": 1, "ETag": p1["CopyPartResult"]["ETag"]},
                {"PartNumber": 2, "ETag": p2["ETag"]},
            ]
        },
    )
    md5s = hashlib.md5(hashlib.md5(src[: 5 * MIB]).digest() + hashlib.md5(b"tail").digest())
    assert done["ETag"] == f'"{md5s.hexdigest()}-2"'
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == src[: 5 * MIB] + b"tail"
    aborted = s3.create_multipart_upload(Bucket=bucket, Key="gone")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="gone", UploadId=aborted, PartNumber=1, Body=b"x")
    s3.abort_multipart_upload(Bucket=bucket, Key="gone", UploadId=aborted)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key="gone", UploadId=aborted)
    assert error_code(exc) == "NoSuchUpload"
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.upload_part(Bucket=bucket, Key="gone", UploadId="nope", PartNumber=1, Body=b"x")
    assert error_code(exc) == "NoSuchUpload"


def test_buckets_lifecycle(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=bucket)
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] in (None, "")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.create_bucket(Bucket=bucket)
    assert error_code(exc) == "BucketAlreadyOwnedByYou"
    s3.put_object(Bucket=bucket, Key="x", Body=b"x")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.delete_bucket(Bucket=bucket)
    assert error_code(exc) == "BucketNotEmpty"
    s3.delete_object(Bucket=bucket, Key="x")
    s3.delete_bucket(Bucket=bucket)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.head_bucket(Bucket=bucket)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.create_bucket(Bucket="Not_Valid")
    assert error_code(exc) == "InvalidBucketName"


def test_virtual_host_addressing(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="v/h.txt", Body=b"virtual")
    vhost = boto3.client(
        "s3",
        endpoint_url=gateway.endpoint.replace("127.0.0.1", "localhost"),
        aws_access_key_id=gateway.access_key,
        aws_secret_access_key=gateway.secret_key,
        region_name=gateway.region,
        config=Config(s3={"addressing_style": "virtual"}, signature_version="s3v4"),
    )
    # <bucket>.localhost names loopback (RFC 6761); connect to 127.0.0.1 with that Host header.
    port = gateway.endpoint.rsplit(":", 1)[1]
    signed = vhost.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "v/h.txt"})
    assert signed.startswith(f"http://{bucket}.localhost:{port}/v/h.txt")
    path = signed.split(f":{port}", 1)[1]
    got = httpx.get(
        f"http://127.0.0.1:{port}{path}", headers={"Host": f"{bucket}.localhost:{port}"}
    )
    assert got.status_code == 200, got.text
    assert got.content == b"virtual"


def test_unknown_operation_is_not_implemented_xml(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_bucket_policy(Bucket=bucket)
    assert error_code(exc) == "NotImplemented"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
