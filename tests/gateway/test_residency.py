"""The residency write path end to end: where bytes land, what is refused (and that a refusal
writes nothing anywhere), replicas, failover, the cross-cloud (moto) location, bucket defaults,
and the orphan sweep."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
from gwserver import MOTO_LOCATION, Gateway


def new_bucket(s3: Any, **headers: str) -> str:
    name = f"r-{uuid.uuid4().hex[:12]}"
    if headers:

        def add(request: Any, **_: Any) -> None:
            for k, v in headers.items():
                request.headers[k] = v

        s3.meta.events.register_first("before-sign.s3.CreateBucket", add)
    try:
        s3.create_bucket(Bucket=name)
    finally:
        if headers:
            s3.meta.events.unregister("before-sign.s3.CreateBucket", add)
    return name


def moto_keys(gateway: Gateway, moto_server: Any) -> set[str]:
    client = boto3.client(
        "s3",
        endpoint_url=moto_server.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=gateway.moto_bucket)
    return {o["Key"] for p in pages for o in p.get("Contents", [])}


def snapshot(gateway: Gateway, moto_server: Any) -> dict[str, set[str]]:
    files = {
        name: {str(p.relative_to(gateway.location_dir(name))) for p in paths}
        for name, paths in gateway.blob_files().items()
    }
    files[MOTO_LOCATION] = moto_keys(gateway, moto_server)
    return files


def new_blobs(before: dict[str, set[str]], after: dict[str, set[str]]) -> dict[str, set[str]]:
    return {
        name: after[name] - before.get(name, set())
        for name in after
        if after[name] - before.get(name, set())
    }


def run_sweep(gateway: Gateway) -> Any:
    from residency.catalog import load_catalog
    from residency.config import load_settings
    from residency.meta import Database
    from residency.migrate.sweep import sweep
    from residency.storage import open_locations

    settings = load_settings(gateway.config)

    async def main() -> Any:
        db = Database(settings.db_url)
        try:
            return await sweep(db, open_locations(settings, load_catalog()), grace=timedelta(0))
        finally:
            await db.dispose()

    return asyncio.run(main())


def put(s3: Any, bucket: str, key: str, body: bytes, **meta: str) -> dict[str, Any]:
    return s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,  # type: ignore[no-any-return]
        Metadata=meta,
    )


def residency_headers(response: dict[str, Any]) -> dict[str, str]:
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    return {k: v for k, v in headers.items() if k.startswith("x-residency-")}


def test_allowed_write_lands_only_in_the_allowed_location(
    gateway: Gateway, moto_server: Any
) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    before = snapshot(gateway, moto_server)
    response = put(
        s3, bucket, "eu/customer.json", b'{"name": "Anna"}', **{"residency-class": "eudata"}
    )
    assert residency_headers(response)["x-residency-locations"] == "de"
    assert residency_headers(response)["x-residency-rule"] == "germany-only"
    added = new_blobs(before, snapshot(gateway, moto_server))
    assert list(added) == ["de"]
    assert len(added["de"]) == 1
    stored = gateway.location_dir("de") / next(iter(added["de"]))
    assert stored.read_bytes() == b'{"name": "Anna"}'
    head = s3.head_object(Bucket=bucket, Key="eu/customer.json")
    assert residency_headers(head) == {
        "x-residency-class": "eudata",
        "x-residency-locations": "de",
        "x-residency-rule": "germany-only",
    }


def test_us_health_data_never_goes_to_a_vendor_from_a_country_of_concern(
    gateway: Gateway, moto_server: Any
) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    before = snapshot(gateway, moto_server)
    response = put(
        s3,
        bucket,
        "patients/1.json",
        b"{}",
        **{"residency-class": "personal.health", "residency-subject": "US"},
    )
    chosen = residency_headers(response)["x-residency-locations"].split(",")
    assert "sg" not in chosen  # Alibaba: vendor HQ CN
    added = new_blobs(before, snapshot(gateway, moto_server))
    assert set(added) == set(chosen)
    assert "sg" not in added
    head = s3.head_object(Bucket=bucket, Key="patients/1.json")
    assert residency_headers(head)["x-residency-subject"] == "US"


def test_refused_write_is_403_residency_violation_and_writes_nothing(
    gateway: Gateway, moto_server: Any
) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    before = snapshot(gateway, moto_server)
    body = b"x" * 2_000_000
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        put(
            s3,
            bucket,
            "cn/users.csv",
            body,
            **{"residency-class": "personal", "residency-subject": "CN"},
        )
    error = exc.value.response["Error"]
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Code"] == "ResidencyViolation"
    assert "pipl-mainland-only" in error["Message"]
    for location in ("us-east", "us-ashburn", "sg", "de", MOTO_LOCATION):
        assert location in error["Message"]
    assert snapshot(gateway, moto_server) == before
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket=bucket, Key="cn/users.csv")
    # The connection stays usable after a refusal that never read the body.
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_refused_multipart_upload_writes_nothing(gateway: Gateway, moto_server: Any) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    before = snapshot(gateway, moto_server)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.create_multipart_upload(
            Bucket=bucket,
            Key="cn.bin",
            Metadata={"residency-class": "personal", "residency-subject": "CN"},
        )
    assert exc.value.response["Error"]["Code"] == "ResidencyViolation"
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    assert snapshot(gateway, moto_server) == before


def test_refused_copy(gateway: Gateway, moto_server: Any) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    put(s3, bucket, "public.csv", b"id\n1\n", **{"residency-class": "public"})
    before = snapshot(gateway, moto_server)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.copy_object(
            Bucket=bucket,
            Key="cn.csv",
            CopySource=f"{bucket}/public.csv",
            MetadataDirective="REPLACE",
            Metadata={"residency-class": "personal", "residency-subject": "CN"},
        )
    assert exc.value.response["Error"]["Code"] == "ResidencyViolation"
    assert snapshot(gateway, moto_server) == before


def test_classification_by_tag(gateway: Gateway, moto_server: Any) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    response = s3.put_object(
        Bucket=bucket, Key="t.json", Body=b"{}", Tagging="residency-class=eudata"
    )
    assert residency_headers(response)["x-residency-locations"] == "de"


def test_replicas_in_two_locations_and_failover(gateway: Gateway, moto_server: Any) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    before = snapshot(gateway, moto_server)
    body = bytes(range(256)) * 4096
    response = put(s3, bucket, "backup.tar", body, **{"residency-class": "backup"})
    assert residency_headers(response)["x-residency-locations"] == "us-east,us-ashburn"
    added = new_blobs(before, snapshot(gateway, moto_server))
    assert set(added) == {"us-east", "us-ashburn"}
    for name, files in added.items():
        assert (gateway.location_dir(name) / next(iter(files))).read_bytes() == body

    primary = gateway.location_dir("us-east")
    hidden = primary.with_name("us-east.offline")
    shutil.move(primary, hidden)
    try:
        assert s3.get_object(Bucket=bucket, Key="backup.tar")["Body"].read() == body
        ranged = s3.get_object(Bucket=bucket, Key="backup.tar", Range="bytes=1000-1999")
        assert ranged["Body"].read() == body[1000:2000]
        assert "trying another replica" in gateway.server_log()
    finally:
        shutil.move(hidden, primary)


def test_all_replicas_down_is_503_not_a_cut_body(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    put(s3, bucket, "only-de", b"data", **{"residency-class": "eudata"})
    primary = gateway.location_dir("de")
    hidden = primary.with_name("de.offline")
    shutil.move(primary, hidden)
    try:
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            s3.get_object(Bucket=bucket, Key="only-de")
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert exc.value.response["Error"]["Code"] == "ServiceUnavailable"
    finally:
        shutil.move(hidden, primary)
    assert s3.get_object(Bucket=bucket, Key="only-de")["Body"].read() == b"data"


def test_cross_cloud_location_over_real_http(gateway: Gateway, moto_server: Any) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    before = moto_keys(gateway, moto_server)
    body = b"to the other cloud" * 1000
    response = put(s3, bucket, "cc.bin", body, **{"residency-class": "cloudcopy"})
    assert residency_headers(response)["x-residency-locations"] == MOTO_LOCATION
    assert len(moto_keys(gateway, moto_server) - before) == 1
    assert s3.get_object(Bucket=bucket, Key="cc.bin")["Body"].read() == body
    assert (
        s3.get_object(Bucket=bucket, Key="cc.bin", Range="bytes=5-9")["Body"].read() == (body[5:10])
    )


def test_bucket_default_class_and_subject(gateway: Gateway, moto_server: Any) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(
        s3, **{"x-residency-default-class": "personal", "x-residency-default-subject": "CN"}
    )
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="unlabelled", Body=b"x")
    assert exc.value.response["Error"]["Code"] == "ResidencyViolation"
    # An explicit header beats the bucket default.
    ok = put(s3, bucket, "labelled", b"x", **{"residency-class": "public"})
    assert residency_headers(ok)["x-residency-locations"]


def test_bucket_policy_header_only_accepts_presets(gateway: Gateway) -> None:
    s3 = gateway.s3()
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        new_bucket(s3, **{"x-residency-policy": "/etc/passwd"})
    assert exc.value.response["Error"]["Code"] == "InvalidArgument"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        new_bucket(s3, **{"x-residency-default-class": "Not A Class!"})
    assert exc.value.response["Error"]["Code"] == "InvalidArgument"
    bucket = new_bucket(s3, **{"x-residency-policy": "preset:eu-gdpr"})
    s3.head_bucket(Bucket=bucket)


def test_overwrite_and_delete_leave_garbage_that_the_sweep_removes(
    gateway: Gateway, moto_server: Any
) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    before = snapshot(gateway, moto_server)
    put(s3, bucket, "g", b"one", **{"residency-class": "eudata"})
    first = new_blobs(before, snapshot(gateway, moto_server))["de"]
    put(s3, bucket, "g", b"two", **{"residency-class": "eudata"})
    both = new_blobs(before, snapshot(gateway, moto_server))["de"]
    assert len(both) == 2
    run_sweep(gateway)
    after = new_blobs(before, snapshot(gateway, moto_server)).get("de", set())
    assert after == both - first  # the replaced blob is gone, the visible one stays
    assert s3.get_object(Bucket=bucket, Key="g")["Body"].read() == b"two"
    s3.delete_object(Bucket=bucket, Key="g")
    run_sweep(gateway)
    assert new_blobs(before, snapshot(gateway, moto_server)).get("de", set()) == set()


def test_refusals_and_placements_are_audited(gateway: Gateway, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "residency", "audit", "verify", "--config", str(gateway.config)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    from sqlalchemy import select

    from residency.config import load_settings
    from residency.meta import Database
    from residency.meta.models import AuditEntry

    async def kinds() -> list[tuple[str, str]]:
        db = Database(load_settings(gateway.config).db_url)
        try:
            async with db.session(write=False) as session:
                rows = (await session.execute(select(AuditEntry.kind, AuditEntry.detail))).all()
                return [(k, d if isinstance(d, str) else json.dumps(d)) for k, d in rows]
        finally:
            await db.dispose()

    entries = asyncio.run(kinds())
    assert any(k == "refusal" and "pipl-mainland-only" in d for k, d in entries)
    assert any(k == "placement" and "germany-only" in d for k, d in entries)
