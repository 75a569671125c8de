"""S3 bucket versioning through boto3: version ids, delete markers, ListObjectVersions, reads,
copies, tags and deletes of one version; and residency per version (each version is placed
by its own classification, and what a version's copy may do is decided again)."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from typing import Any

import botocore.exceptions
import httpx
import pytest
from gwserver import Gateway

NO_SUCH = "0" * 32  # well-formed, names nothing
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def _bucket(s3: Any, status: str | None = "Enabled") -> str:
    name = f"ver-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    if status:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": status})
    return name


def _error(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[int, str]:
    response = exc.value.response
    return int(response["ResponseMetadata"]["HTTPStatusCode"]), str(response["Error"]["Code"])


def _headers(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> dict[str, str]:
    return dict(exc.value.response["ResponseMetadata"]["HTTPHeaders"])


def _versions(s3: Any, bucket: str, **params: Any) -> list[tuple[str, str, bool, bool]]:
    """(key, version id, is latest, is delete marker) of every entry in the order the server
    lists them (boto3 would split versions from markers), paging by its next markers."""
    out: list[tuple[str, str, bool, bool]] = []
    while True:
        url = s3.generate_presigned_url("list_object_versions", Params={"Bucket": bucket, **params})
        root = ET.fromstring(httpx.get(url).content)
        for entry in root:
            kind = entry.tag.removeprefix(NS)
            if kind in ("Version", "DeleteMarker"):
                out.append(
                    (
                        entry.findtext(f"{NS}Key") or "",
                        entry.findtext(f"{NS}VersionId") or "",
                        entry.findtext(f"{NS}IsLatest") == "true",
                        kind == "DeleteMarker",
                    )
                )
        if root.findtext(f"{NS}IsTruncated") != "true":
            return out
        params["KeyMarker"] = root.findtext(f"{NS}NextKeyMarker")
        params["VersionIdMarker"] = root.findtext(f"{NS}NextVersionIdMarker") or ""


def test_versioning_configuration_round_trips(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = _bucket(s3, None)
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    for status in ("Enabled", "Suspended", "Enabled"):
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == status
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Off"})
    assert _error(exc) == (400, "MalformedXML")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.put_bucket_versioning(
            Bucket=bucket,
            VersioningConfiguration={"Status": "Enabled", "MFADelete": "Enabled"},
            MFA="serial 123456",
        )
    assert _error(exc) == (501, "NotImplemented")
    # Another tenant may neither read nor change it.
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        gateway.other_s3().put_bucket_versioning(
            Bucket=bucket, VersioningConfiguration={"Status": "Suspended"}
        )
    assert _error(exc)[1] == "AccessDenied"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


def test_every_put_is_a_version_readable_by_its_id(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = _bucket(s3)
    ids = [
        s3.put_object(Bucket=bucket, Key="k", Body=f"v{i}".encode())["VersionId"] for i in range(3)
    ]
    assert len(set(ids)) == 3
    assert "null" not in ids
    for i, vid in enumerate(ids):
        got = s3.get_object(Bucket=bucket, Key="k", VersionId=vid)
        assert got["Body"].read() == f"v{i}".encode()
        assert got["VersionId"] == vid
        assert s3.head_object(Bucket=bucket, Key="k", VersionId=vid)["ContentLength"] == 2
    current = s3.get_object(Bucket=bucket, Key="k")
    assert current["Body"].read() == b"v2"
    assert current["VersionId"] == ids[-1]
    assert _versions(s3, bucket) == [
        ("k", ids[2], True, False),
        ("k", ids[1], False, False),
        ("k", ids[0], False, False),
    ]
    # Only the current version is listed as an object.
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    attributes = s3.get_object_attributes(
        Bucket=bucket, Key="k", VersionId=ids[0], ObjectAttributes=["ObjectSize"]
    )
    assert attributes["ObjectSize"] == 2
    assert attributes["VersionId"] == ids[0]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", VersionId=NO_SUCH)
    assert _error(exc) == (404, "NoSuchVersion")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", VersionId="not-a-version")
    assert _error(exc) == (400, "InvalidArgument")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="other", VersionId=ids[0])  # another key's id
    assert _error(exc) == (404, "NoSuchVersion")


def test_delete_adds_a_marker_and_deleting_the_marker_restores(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = _bucket(s3)
    first = s3.put_object(Bucket=bucket, Key="k", Body=b"keep")["VersionId"]
    gone = s3.delete_object(Bucket=bucket, Key="k")
    assert gone["DeleteMarker"] is True
    marker = gone["VersionId"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k")
    assert _error(exc) == (404, "NoSuchKey")
    assert _headers(exc)["x-amz-delete-marker"] == "true"
    assert _headers(exc)["x-amz-version-id"] == marker
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", VersionId=marker)
    assert _error(exc) == (405, "MethodNotAllowed")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="k", VersionId=marker)
    assert _error(exc)[0] == 405
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert _versions(s3, bucket) == [("k", marker, True, True), ("k", first, False, False)]
    # The old bytes are still readable by id, and deleting the marker makes them current.
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=first)["Body"].read() == b"keep"
    undone = s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    assert undone["DeleteMarker"] is True
    assert undone["VersionId"] == marker
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"keep"
    # A bucket holding only noncurrent versions or markers is not empty.
    s3.delete_object(Bucket=bucket, Key="k")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.delete_bucket(Bucket=bucket)
    assert _error(exc) == (409, "BucketNotEmpty")


def test_deleting_one_version_removes_only_it(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = _bucket(s3)
    ids = [
        s3.put_object(Bucket=bucket, Key="k", Body=f"v{i}".encode())["VersionId"] for i in range(3)
    ]
    assert s3.delete_object(Bucket=bucket, Key="k", VersionId=ids[1])["VersionId"] == ids[1]
    assert [v[1] for v in _versions(s3, bucket)] == [ids[2], ids[0]]
    # Deleting the current version makes the newest remaining one current.
    s3.delete_object(Bucket=bucket, Key="k", VersionId=ids[2])
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v0"
    # An unknown but well-formed id deletes nothing and answers 204, as S3; a malformed one
    # is InvalidArgument. Neither touches the object.
    assert s3.delete_object(Bucket=bucket, Key="k", VersionId=NO_SUCH)["VersionId"] == NO_SUCH
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.delete_object(Bucket=bucket, Key="k", VersionId="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
    assert _error(exc) == (400, "InvalidArgument")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v0"
    s3.delete_object(Bucket=bucket, Key="k", VersionId=ids[0])
    assert _versions(s3, bucket) == []
    s3.delete_bucket(Bucket=bucket)


def test_suspended_writes_replace_the_null_version_only(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = _bucket(s3, None)
    s3.put_object(Bucket=bucket, Key="k", Body=b"before")  # versioning off: the null version
    assert "VersionId" not in s3.head_object(Bucket=bucket, Key="k")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    kept = s3.put_object(Bucket=bucket, Key="k", Body=b"versioned")["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"before"
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.put_object(Bucket=bucket, Key="k", Body=b"n1")["VersionId"] == "null"
    assert s3.put_object(Bucket=bucket, Key="k", Body=b"n2")["VersionId"] == "null"
    assert _versions(s3, bucket) == [("k", "null", True, False), ("k", kept, False, False)]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"n2"
    gone = s3.delete_object(Bucket=bucket, Key="k")
    assert gone["DeleteMarker"] is True
    assert gone["VersionId"] == "null"
    assert _versions(s3, bucket) == [("k", "null", True, True), ("k", kept, False, False)]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=kept)["Body"].read() == b"versioned"


def test_unversioned_bucket_lists_its_objects_as_null_versions(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = _bucket(s3, None)
    put = s3.put_object(Bucket=bucket, Key="a", Body=b"x")
    assert "VersionId" not in put
    s3.put_object(Bucket=bucket, Key="a", Body=b"y")
    assert _versions(s3, bucket) == [("a", "null", True, False)]
    s3.delete_object(Bucket=bucket, Key="a")
    assert _versions(s3, bucket) == []


def test_list_object_versions_pages_and_rolls_up(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = _bucket(s3)
    made = []
    for key in ("a", "d/1", "d/2", "z"):
        for i in range(2):
            made.append((key, s3.put_object(Bucket=bucket, Key=key, Body=b"%d" % i)["VersionId"]))
    listed = _versions(s3, bucket, MaxKeys=3)
    assert [(k, v) for k, v, _, _ in listed] == [
        made[i + j] for i in range(0, 8, 2) for j in (1, 0)
    ]  # key order, newest first within a key
    pages = s3.get_paginator("list_object_versions").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": 3}
    )
    assert sorted((v["Key"], v["VersionId"]) for p in pages for v in p["Versions"]) == sorted(made)
    page = s3.list_object_versions(Bucket=bucket, Delimiter="/", MaxKeys=3)
    assert [v["Key"] for v in page["Versions"]] == ["a", "a"]
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["d/"]
    assert page["IsTruncated"] is True
    assert page["NextKeyMarker"] == "d/"
    rest = s3.list_object_versions(Bucket=bucket, Delimiter="/", KeyMarker="d/")
    assert {v["Key"] for v in rest["Versions"]} == {"z"}
    under = s3.list_object_versions(Bucket=bucket, Prefix="d/", EncodingType="url")
    assert sorted({v["Key"] for v in under["Versions"]}) == ["d/1", "d/2"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.list_object_versions(Bucket=bucket, VersionIdMarker="null")
    assert _error(exc) == (400, "InvalidArgument")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        gateway.other_s3().list_object_versions(Bucket=bucket)
    assert _error(exc)[1] == "AccessDenied"


def test_copy_and_tags_address_one_version(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = _bucket(s3)
    old = s3.put_object(Bucket=bucket, Key="k", Body=b"old")["VersionId"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"new")
    copied = s3.copy_object(
        Bucket=bucket, Key="restored", CopySource={"Bucket": bucket, "Key": "k", "VersionId": old}
    )
    assert copied["CopySourceVersionId"] == old
    assert copied["VersionId"] not in (old, "null")
    assert s3.get_object(Bucket=bucket, Key="restored")["Body"].read() == b"old"
    # Copying a version onto its own key restores it as the newest version.
    s3.copy_object(
        Bucket=bucket,
        Key="k",
        CopySource={"Bucket": bucket, "Key": "k", "VersionId": old},
        MetadataDirective="REPLACE",
    )
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"old"
    marker = s3.delete_object(Bucket=bucket, Key="restored")["VersionId"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.copy_object(
            Bucket=bucket,
            Key="x",
            CopySource={"Bucket": bucket, "Key": "restored", "VersionId": marker},
        )
    assert _error(exc) == (400, "InvalidRequest")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "restored"})
    assert _error(exc) == (404, "NoSuchKey")
    # Tags belong to each version.
    s3.put_object_tagging(
        Bucket=bucket, Key="k", VersionId=old, Tagging={"TagSet": [{"Key": "t", "Value": "old"}]}
    )
    assert s3.get_object_tagging(Bucket=bucket, Key="k", VersionId=old)["TagSet"] == [
        {"Key": "t", "Value": "old"}
    ]
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    s3.delete_object_tagging(Bucket=bucket, Key="k", VersionId=old)
    assert s3.get_object_tagging(Bucket=bucket, Key="k", VersionId=old)["TagSet"] == []


def test_delete_objects_with_versions_and_markers(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = _bucket(s3)
    a1 = s3.put_object(Bucket=bucket, Key="a", Body=b"1")["VersionId"]
    a2 = s3.put_object(Bucket=bucket, Key="a", Body=b"2")["VersionId"]
    s3.put_object(Bucket=bucket, Key="b", Body=b"b")
    result = s3.delete_objects(
        Bucket=bucket,
        Delete={
            "Objects": [
                {"Key": "a", "VersionId": a1},
                {"Key": "b"},
                {"Key": "c", "VersionId": "bad"},
                {"Key": "a", "VersionId": NO_SUCH},
            ]
        },
    )
    deleted = {(d["Key"], d.get("VersionId")): d for d in result["Deleted"]}
    assert set(deleted) == {("a", a1), ("b", None), ("a", NO_SUCH)}
    assert deleted["b", None]["DeleteMarker"] is True
    b_marker = deleted["b", None]["DeleteMarkerVersionId"]
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("c", "NoSuchVersion")]
    assert [v[1] for v in _versions(s3, bucket, Prefix="a")] == [a2]
    again = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "b", "VersionId": b_marker}]}
    )
    assert again["Deleted"][0]["DeleteMarker"] is True
    assert s3.get_object(Bucket=bucket, Key="b")["Body"].read() == b"b"


def test_each_version_is_placed_by_its_own_classification(gateway: Gateway) -> None:
    """Residency per version: a version labelled for Germany lands in Germany, the next one
    (public) where public data goes, and each keeps its placement as a noncurrent version."""
    s3 = gateway.s3()
    bucket = _bucket(s3)
    eu = s3.put_object(
        Bucket=bucket, Key="doc", Body=b"de", Metadata={"residency-class": "eudata"}
    )["VersionId"]
    public = s3.put_object(Bucket=bucket, Key="doc", Body=b"pub")["VersionId"]
    eu_head = s3.head_object(Bucket=bucket, Key="doc", VersionId=eu)["ResponseMetadata"]
    public_head = s3.head_object(Bucket=bucket, Key="doc", VersionId=public)["ResponseMetadata"]
    assert eu_head["HTTPHeaders"]["x-residency-locations"] == "de"
    assert eu_head["HTTPHeaders"]["x-residency-class"] == "eudata"
    assert public_head["HTTPHeaders"]["x-residency-class"] == "public"
    # The noncurrent version's bytes are still in Germany, and only there.
    blobs = gateway.blob_files()
    assert blobs["de"]
    # A copy of the old version is decided again, as that version's class: Germany only.
    copied = s3.copy_object(
        Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "doc", "VersionId": eu}
    )
    assert copied["ResponseMetadata"]["HTTPHeaders"]["x-residency-locations"] == "de"


def test_version_id_on_raw_requests(gateway: Gateway) -> None:
    """An empty `versionId` is InvalidArgument before anything is looked up."""
    s3 = gateway.s3()
    bucket = _bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "k", "VersionId": ""}
    )
    response = httpx.get(url)
    assert response.status_code == 400, response.text
    assert b"<Code>InvalidArgument</Code>" in response.content


def test_multipart_upload_adds_a_version(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = _bucket(s3)
    first = s3.put_object(Bucket=bucket, Key="big", Body=b"small")["VersionId"]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="big", UploadId=upload, PartNumber=1, Body=b"p" * 10)
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="big",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert done["VersionId"] not in (first, "null")
    assert [v[1] for v in _versions(s3, bucket)] == [done["VersionId"], first]
    assert s3.get_object(Bucket=bucket, Key="big", VersionId=first)["Body"].read() == b"small"
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == b"p" * 10


def test_another_tenant_cannot_reach_a_version(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = _bucket(s3)
    old = s3.put_object(Bucket=bucket, Key="k", Body=b"secret")["VersionId"]
    s3.put_object(Bucket=bucket, Key="k", Body=b"newer")
    other = gateway.other_s3()
    for call in (other.get_object, other.head_object, other.delete_object):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            call(Bucket=bucket, Key="k", VersionId=old)
        assert _error(exc)[0] == 403
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=old)["Body"].read() == b"secret"


def test_a_versioned_batch_delete_is_one_audit_entry(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = _bucket(s3)
    ids = {k: s3.put_object(Bucket=bucket, Key=k, Body=b"x")["VersionId"] for k in ("a", "b")}
    s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "a"}, {"Key": "b", "VersionId": ids["b"]}]},
    )
    entries = gateway.audit_entries("delete", f"s3://{bucket}")
    assert len(entries) == 1
    detail = entries[0]["detail"]
    assert detail["action"] == "delete_objects"
    by_key = {d["key"]: d for d in detail["deleted"]}
    assert "delete_marker" in by_key["a"]  # a marker was added, no bytes removed
    assert "version_id" not in by_key["a"]
    assert by_key["b"]["s3_version_id"] == ids["b"]
    assert by_key["b"]["version_id"] == ids["b"]  # that version's bytes were removed
