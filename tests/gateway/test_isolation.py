"""Tenants never see or touch each other's buckets."""

from __future__ import annotations

import uuid
from typing import Any

import botocore.exceptions
import pytest
from gwserver import Gateway


def status_and_code(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[int, str]:
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], str(response["Error"]["Code"])


@pytest.fixture
def acme_bucket(gateway: Gateway) -> str:
    s3 = gateway.s3()
    name = f"acme-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="secret.txt", Body=b"acme only")
    return name


def test_other_tenant_cannot_list_see_or_read(gateway: Gateway, acme_bucket: str) -> None:
    other = gateway.other_s3()
    assert acme_bucket not in [b["Name"] for b in other.list_buckets()["Buckets"]]
    calls: list[tuple[str, Any]] = [
        ("get_object", lambda: other.get_object(Bucket=acme_bucket, Key="secret.txt")),
        ("list_objects_v2", lambda: other.list_objects_v2(Bucket=acme_bucket)),
        ("list_objects", lambda: other.list_objects(Bucket=acme_bucket)),
        (
            "get_object_tagging",
            lambda: other.get_object_tagging(Bucket=acme_bucket, Key="secret.txt"),
        ),
        ("list_multipart_uploads", lambda: other.list_multipart_uploads(Bucket=acme_bucket)),
        ("get_bucket_location", lambda: other.get_bucket_location(Bucket=acme_bucket)),
    ]
    for name, call in calls:
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            call()
        assert status_and_code(exc) == (403, "AccessDenied"), name
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        other.head_object(Bucket=acme_bucket, Key="secret.txt")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        other.head_bucket(Bucket=acme_bucket)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_other_tenant_cannot_write_copy_or_delete(gateway: Gateway, acme_bucket: str) -> None:
    other = gateway.other_s3()
    own = f"globex-{uuid.uuid4().hex[:10]}"
    other.create_bucket(Bucket=own)
    calls: list[tuple[str, Any]] = [
        ("put_object", lambda: other.put_object(Bucket=acme_bucket, Key="x", Body=b"x")),
        ("delete_object", lambda: other.delete_object(Bucket=acme_bucket, Key="secret.txt")),
        (
            "delete_objects",
            lambda: other.delete_objects(
                Bucket=acme_bucket, Delete={"Objects": [{"Key": "secret.txt"}]}
            ),
        ),
        ("delete_bucket", lambda: other.delete_bucket(Bucket=acme_bucket)),
        (
            "copy out",
            lambda: other.copy_object(
                Bucket=own, Key="stolen", CopySource=f"{acme_bucket}/secret.txt"
            ),
        ),
        (
            "copy in",
            lambda: other.copy_object(Bucket=acme_bucket, Key="planted", CopySource=f"{own}/x"),
        ),
        (
            "create_multipart_upload",
            lambda: other.create_multipart_upload(Bucket=acme_bucket, Key="mp"),
        ),
        (
            "put_object_tagging",
            lambda: other.put_object_tagging(
                Bucket=acme_bucket, Key="secret.txt", Tagging={"TagSet": []}
            ),
        ),
    ]
    for name, call in calls:
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            call()
        assert status_and_code(exc) == (403, "AccessDenied"), name
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        other.create_bucket(Bucket=acme_bucket)
    assert status_and_code(exc) == (409, "BucketAlreadyExists")
    s3 = gateway.s3()
    assert s3.get_object(Bucket=acme_bucket, Key="secret.txt")["Body"].read() == b"acme only"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=acme_bucket)["Contents"]] == ["secret.txt"]


def test_upload_ids_do_not_cross_tenants(gateway: Gateway, acme_bucket: str) -> None:
    s3 = gateway.s3()
    upload = s3.create_multipart_upload(Bucket=acme_bucket, Key="mp")["UploadId"]
    other = gateway.other_s3()
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        other.upload_part(Bucket=acme_bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"x")
    assert status_and_code(exc) == (403, "AccessDenied")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        other.abort_multipart_upload(Bucket=acme_bucket, Key="mp", UploadId=upload)
    assert status_and_code(exc) == (403, "AccessDenied")
    s3.abort_multipart_upload(Bucket=acme_bucket, Key="mp", UploadId=upload)


def test_denials_are_audited(gateway: Gateway, acme_bucket: str) -> None:
    import asyncio
    import json

    from sqlalchemy import select

    from residency.config import load_settings
    from residency.meta import Database
    from residency.meta.models import AuditEntry

    with pytest.raises(botocore.exceptions.ClientError):
        gateway.other_s3().get_object(Bucket=acme_bucket, Key="secret.txt")

    async def denials() -> list[tuple[str, str, str]]:
        db = Database(load_settings(gateway.config).db_url)
        try:
            async with db.session(write=False) as session:
                rows = await session.execute(
                    select(AuditEntry.tenant, AuditEntry.target, AuditEntry.detail).where(
                        AuditEntry.kind == "access_denied"
                    )
                )
                return [
                    (t or "", g, d if isinstance(d, str) else json.dumps(d)) for t, g, d in rows
                ]
        finally:
            await db.dispose()

    found = asyncio.run(denials())
    assert ("globex", f"s3://{acme_bucket}/secret.txt") in [(t, g) for t, g, _ in found]
