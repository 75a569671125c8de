"""Buckets: S3 naming rules, global names, deleting only when empty."""

from __future__ import annotations

import pytest
from meta_support import Put
from sqlalchemy import func, select

from residency.meta import Database
from residency.meta.errors import (
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    InvalidBucketName,
    NoSuchBucket,
)
from residency.meta.models import Bucket, GarbageBlob, Tenant
from residency.meta.repo import buckets, multipart, tenants
from residency.meta.specs import Checksums, VersionAttrs
from residency.meta.writes import register_intents


@pytest.mark.parametrize(
    "name",
    ["abc", "my-bucket", "my.bucket.v2", "a" * 63, "0bucket9", "192.168.5.com"],
)
def test_valid_bucket_names(name: str) -> None:
    assert buckets.bucket_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("ab", "between 3 and 63"),
        ("a" * 64, "between 3 and 63"),
        ("MyBucket", "lowercase"),
        ("my_bucket", "lowercase"),
        ("my bucket", "lowercase"),
        ("-bucket", "begin and end"),
        ("bucket-", "begin and end"),
        (".bucket", "begin and end"),
        ("my..bucket", "two adjacent periods"),
        ("my.-bucket", "period next to a hyphen"),
        ("192.168.5.4", "IP address"),
        ("xn--bucket", "reserved prefix"),
        ("sthree-bucket", "reserved prefix"),
        ("bucket-s3alias", "reserved suffix"),
        ("bucket--ol-s3", "reserved suffix"),
        ("bücket", "lowercase"),
    ],
)
def test_invalid_bucket_names(name: str, why: str) -> None:
    with pytest.raises(InvalidBucketName, match=why) as info:
        buckets.check_bucket_name(name)
    assert info.value.code == "InvalidBucketName"


async def test_create_refuses_an_invalid_name(db: Database, tenant: Tenant) -> None:
    async with db.session() as s:
        with pytest.raises(InvalidBucketName, match="'My_Bucket' is not valid"):
            await buckets.create_bucket(s, tenant, "My_Bucket")
        assert await buckets.list_buckets(s, tenant) == []


async def test_names_are_global_and_lists_are_per_tenant(db: Database, tenant: Tenant) -> None:
    async with db.session() as s:
        other = await tenants.create_tenant(s, "other")
        await buckets.create_bucket(s, tenant, "zeta", default_class="personal", policy="eu")
        await buckets.create_bucket(s, tenant, "alpha", default_subject="US")
        await buckets.create_bucket(s, other, "theirs")
        with pytest.raises(BucketAlreadyOwnedByYou):
            await buckets.create_bucket(s, tenant, "zeta")
        with pytest.raises(BucketAlreadyExists):
            await buckets.create_bucket(s, other, "zeta")
    async with db.session(write=False) as s:
        assert [b.name for b in await buckets.list_buckets(s, tenant)] == ["alpha", "zeta"]
        assert [b.name for b in await buckets.list_buckets(s)] == ["alpha", "theirs", "zeta"]
        zeta = await buckets.get_bucket(s, "zeta")
        assert (zeta.default_class, zeta.default_subject, zeta.policy) == ("personal", None, "eu")
        with pytest.raises(NoSuchBucket):
            await buckets.get_bucket(s, "nope")


async def test_update_bucket_defaults(db: Database, bucket: Bucket) -> None:
    async with db.session() as s:
        b = await buckets.get_bucket(s, bucket.name)
        await buckets.update_bucket(
            s, b, default_class="personal.health", default_subject="EU", policy=None
        )
    async with db.session(write=False) as s:
        b = await buckets.get_bucket(s, bucket.name)
    assert (b.default_class, b.default_subject, b.policy) == ("personal.health", "EU", None)


async def test_delete_only_when_empty(db: Database, bucket: Bucket, put: Put) -> None:
    await put(bucket, "a/file")
    async with db.session() as s:
        with pytest.raises(BucketNotEmpty):
            await buckets.delete_bucket(s, bucket)
    async with db.session() as s:
        from residency.meta.writes import delete_object

        await delete_object(s, bucket, "a/file")
    async with db.session() as s:
        await buckets.delete_bucket(s, bucket)
    async with db.session(write=False) as s:
        assert await buckets.find_bucket(s, bucket.name) is None


async def test_delete_aborts_open_uploads(db: Database, tenant: Tenant, bucket: Bucket) -> None:
    async with db.session() as s:
        up = await multipart.create_upload(
            s,
            bucket,
            "big",
            VersionAttrs("public"),
            tenant=tenant,
            principal=None,
            locations=["loc-a", "loc-b"],
        )
        await register_intents(s, [("loc-a", "blobs/p1"), ("loc-b", "blobs/p1")])
    async with db.session() as s:
        await multipart.put_part(
            s, up, 1, blob_key="blobs/p1", size=3, etag="0" * 32, checksums=Checksums()
        )
    async with db.session() as s:
        await buckets.delete_bucket(s, bucket)
    async with db.session(write=False) as s:
        garbage = (await s.execute(select(GarbageBlob.location, GarbageBlob.blob_key))).all()
        assert sorted(garbage) == [("loc-a", "blobs/p1"), ("loc-b", "blobs/p1")]
        assert await s.scalar(select(func.count()).select_from(Bucket)) == 0
