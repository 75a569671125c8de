"""minio-py against the real gateway: bucket, labelled PUT, byte-exact GET and ranges, listing,
multipart (a stream longer than `part_size`), single and batch delete, bucket versioning (version
ids, delete markers, reads and deletes by id), and a refused write that surfaces as minio's
`S3Error` with the code `ResidencyViolation`."""

from __future__ import annotations

import io
import os
import uuid
from typing import Any

import pytest
from gwserver import Gateway

# A missing client fails the test run loudly (it is in the `test` extra), never skips.
from minio import Minio
from minio.commonconfig import ENABLED, CopySource
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from minio.helpers import DictType
from minio.versioningconfig import VersioningConfig

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


def versions_of(mc: Minio, bucket: str, **kwargs: Any) -> list[tuple[str, str, str, bool]]:
    """(key, version id, IsLatest as minio gives it, is delete marker) of every listed entry;
    minio lists a page's versions before its delete markers."""
    return [
        (o.object_name or "", o.version_id or "", o.is_latest or "", o.is_delete_marker)
        for o in mc.list_objects(bucket, include_version=True, **kwargs)
    ]


def test_minio_versioning_versions_markers_and_restore(mc: Minio, s3: Any) -> None:
    """Versioning through minio-py: each write's version id (a multipart one too), listing
    with `include_version`, reads/stat/copy by id, a delete marker, and deletes by id."""
    bucket = new_bucket(mc)
    assert mc.get_bucket_versioning(bucket).status is None  # never configured
    mc.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
    assert mc.get_bucket_versioning(bucket).status == ENABLED

    key = "docs/a b+c ü.bin"  # what minio's url-encoded listing must decode
    bodies = [os.urandom(1000), os.urandom(2000), os.urandom(6 * MIB + 7)]
    written = [
        mc.put_object(bucket, key, io.BytesIO(b), len(b), part_size=5 * MIB, metadata=PUBLIC)
        for b in bodies
    ]
    ids = [w.version_id or "" for w in written]
    assert len(set(ids)) == 3
    assert "" not in ids
    assert "null" not in ids
    assert written[2].etag is not None
    assert written[2].etag.endswith("-2")  # the last write was multipart (Complete's version)
    put(mc, bucket, "other.txt", b"other", metadata=PUBLIC)

    listed = list(mc.list_objects(bucket, include_version=True, recursive=True))
    assert [(o.object_name, o.version_id, o.is_latest, o.size) for o in listed] == [
        (key, ids[2], "true", len(bodies[2])),
        (key, ids[1], "false", len(bodies[1])),
        (key, ids[0], "false", len(bodies[0])),
        ("other.txt", listed[3].version_id, "true", 5),
    ]
    assert [o.etag for o in listed[:3]] == [w.etag for w in reversed(written)]
    # Without `recursive` the key's folder is one prefix, as in a plain listing.
    assert [(o.object_name, o.is_dir) for o in mc.list_objects(bucket, include_version=True)] == [
        ("other.txt", False),
        ("docs/", True),
    ]

    for vid, body in zip(ids, bodies, strict=True):
        assert get(mc, bucket, key, version_id=vid) == body
        stat = mc.stat_object(bucket, key, version_id=vid)
        assert (stat.version_id, stat.size) == (vid, len(body))
    assert get(mc, bucket, key, version_id=ids[0], offset=10, length=20) == bodies[0][10:30]
    assert mc.stat_object(bucket, key).version_id == ids[2]

    # remove_object without an id: a delete marker becomes the latest version.
    mc.remove_object(bucket, key)
    entries = versions_of(mc, bucket, prefix="docs/", recursive=True)
    (marker,) = [e for e in entries if e[3]]
    assert marker[0] == key
    assert marker[2] == "true"
    assert marker[1] not in ids
    assert [e for e in entries if not e[3]] == [
        (key, ids[2], "false", False),
        (key, ids[1], "false", False),
        (key, ids[0], "false", False),
    ]
    with pytest.raises(S3Error) as exc:
        mc.stat_object(bucket, key)
    assert exc.value.code == "NoSuchKey"
    with pytest.raises(S3Error) as exc:
        mc.stat_object(bucket, key, version_id=marker[1])  # a marker has no object to show
    assert exc.value.response.status == 405
    assert [o.object_name for o in mc.list_objects(bucket, recursive=True)] == ["other.txt"]
    assert get(mc, bucket, key, version_id=ids[1]) == bodies[1]

    # Deleting the marker by id brings the newest version back.
    mc.remove_object(bucket, key, version_id=marker[1])
    assert get(mc, bucket, key) == bodies[2]

    # A copy of an old version; then remove_objects deletes two versions by id.
    copied = mc.copy_object(bucket, "restored.bin", CopySource(bucket, key, version_id=ids[0]))
    assert copied.version_id not in (None, "null", *ids)
    assert get(mc, bucket, "restored.bin") == bodies[0]
    errors = list(mc.remove_objects(bucket, [DeleteObject(key, ids[2]), DeleteObject(key, ids[0])]))
    assert errors == []
    assert versions_of(mc, bucket, prefix="docs/", recursive=True) == [(key, ids[1], "true", False)]
    assert get(mc, bucket, key) == bodies[1]
    # boto3 sees the same single version.
    assert s3.head_object(Bucket=bucket, Key=key)["VersionId"] == ids[1]
