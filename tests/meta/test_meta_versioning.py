"""Versioning in the metadata store: which version a write keeps, retires or demotes, delete
markers, deleting one version, and ListObjectVersions paging."""

from __future__ import annotations

import pytest
from meta_support import Put
from sqlalchemy import select

from residency.meta import Database
from residency.meta.errors import InvalidArgument
from residency.meta.models import Bucket, GarbageBlob, ObjectVersion
from residency.meta.repo import objects
from residency.meta.repo.versions import find_version, is_version_id, list_versions
from residency.meta.writes import delete_object, delete_version


async def _set(db: Database, bucket: Bucket, state: str) -> Bucket:
    async with db.session() as s:
        row = await s.get(Bucket, bucket.id)
        assert row is not None
        row.versioning = state
    bucket.versioning = state
    return bucket


async def _rows(db: Database, key: str) -> list[tuple[str, bool, bool, bool]]:
    """(s3 version id, latest, delete marker, null) newest first."""
    async with db.session(write=False) as s:
        rows = (
            await s.scalars(
                select(ObjectVersion)
                .where(ObjectVersion.key == key)
                .order_by(ObjectVersion.id.desc())
            )
        ).all()
        return [(r.s3_version_id, r.is_latest, r.is_delete_marker, r.is_null_version) for r in rows]


async def _garbage(db: Database) -> list[str]:
    async with db.session(write=False) as s:
        return list((await s.scalars(select(GarbageBlob.blob_key))).all())


async def test_enabled_keeps_every_version_and_delete_adds_a_marker(
    db: Database, bucket: Bucket, put: Put
) -> None:
    first, blob1 = await put(bucket, "k", b"one")  # written before versioning: the null version
    await _set(db, bucket, "Enabled")
    second, blob2 = await put(bucket, "k", b"two")
    assert first.version.s3_version_id == "null"
    assert second.version.s3_version_id == second.version.version_id != "null"
    assert second.replaced is None
    assert await _garbage(db) == []  # nothing retired
    async with db.session() as s:
        deletion = await delete_object(s, bucket, "k")
    assert deletion.removed is None
    assert deletion.marker is not None
    assert deletion.marker.is_delete_marker
    rows = await _rows(db, "k")
    assert [r[1:] for r in rows] == [
        (True, True, False),
        (False, False, False),
        (False, False, True),
    ]
    async with db.session(write=False) as s:
        assert await objects.find_latest(s, bucket, "k") is not None  # the marker
        assert (await objects.list_objects(s, bucket)).objects == []
        old = await find_version(s, bucket, "k", "null")
        assert old is not None
        assert old.size == 3
    # Deleting the marker makes the newest remaining version current again.
    async with db.session() as s:
        gone = await delete_version(s, bucket, "k", deletion.marker.version_id)
    assert gone is not None
    assert gone.is_delete_marker
    async with db.session(write=False) as s:
        current = await objects.get_latest(s, bucket, "k")
    assert current.version_id == second.version.version_id
    # Deleting a version with bytes retires exactly its blobs.
    async with db.session() as s:
        assert await delete_version(s, bucket, "k", "null") is not None
        assert await delete_version(s, bucket, "k", "null") is None
    assert await _garbage(db) == [blob1]
    assert blob2 not in await _garbage(db)


async def test_suspended_replaces_only_the_null_version(
    db: Database, bucket: Bucket, put: Put
) -> None:
    await _set(db, bucket, "Enabled")
    kept, kept_blob = await put(bucket, "k", b"kept")
    await _set(db, bucket, "Suspended")
    null1, null1_blob = await put(bucket, "k", b"n1")
    assert null1.version.s3_version_id == "null"
    assert null1.replaced is None
    null2, _ = await put(bucket, "k", b"n2")
    assert null2.replaced is not None
    assert null2.replaced.version_id == null1.version.version_id
    assert await _garbage(db) == [null1_blob]
    async with db.session() as s:
        deletion = await delete_object(s, bucket, "k")
    assert deletion.removed is not None
    assert deletion.marker is not None
    assert deletion.marker.s3_version_id == "null"
    rows = await _rows(db, "k")
    assert [(r[0] == "null", r[1], r[2]) for r in rows] == [
        (True, True, True),
        (False, False, False),
    ]
    assert kept_blob not in await _garbage(db)
    assert kept.version.s3_version_id != "null"


async def test_delete_of_the_current_version_promotes_the_newest_remaining(
    db: Database, bucket: Bucket, put: Put
) -> None:
    await _set(db, bucket, "Enabled")
    v1, _ = await put(bucket, "k", b"1")
    v2, _ = await put(bucket, "k", b"2")
    v3, _ = await put(bucket, "k", b"3")
    async with db.session() as s:
        assert await delete_version(s, bucket, "k", v3.version.version_id) is not None
        assert (await objects.get_latest(s, bucket, "k")).version_id == v2.version.version_id
        # An unknown or another key's id changes nothing.
        assert await delete_version(s, bucket, "other", v1.version.version_id) is None
        assert await delete_version(s, bucket, "k", "0" * 32) is None


async def test_list_versions_pages_through_every_version(
    db: Database, bucket: Bucket, put: Put
) -> None:
    await _set(db, bucket, "Enabled")
    expected = []
    for key in ("a", "b/1", "b/2", "c"):
        made = [(await put(bucket, key, key.encode()))[0].version for _ in range(3)]
        expected += [(key, v.s3_version_id) for v in reversed(made)]
    async with db.session() as s:
        marker = (await delete_object(s, bucket, "c")).marker
    assert marker is not None
    expected.insert(expected.index(("c", expected[-3][1])), ("c", marker.s3_version_id))
    seen: list[tuple[str, str]] = []
    key_marker = version_marker = ""
    async with db.session(write=False) as s:
        while True:
            page = await list_versions(
                s, bucket, key_marker=key_marker, version_id_marker=version_marker, max_keys=2
            )
            seen += [(v.key, v.s3_version_id) for v in page.versions]
            if not page.is_truncated:
                break
            assert page.next_key_marker is not None
            assert page.next_version_id_marker
            key_marker, version_marker = page.next_key_marker, page.next_version_id_marker
        assert seen == expected
        rolled = await list_versions(s, bucket, delimiter="/", max_keys=4)
        assert [v.key for v in rolled.versions] == ["a", "a", "a"]
        assert rolled.common_prefixes == ["b/"]
        assert rolled.is_truncated
        assert rolled.next_key_marker == "b/"
        rest = await list_versions(s, bucket, delimiter="/", key_marker="b/")
        assert {v.key for v in rest.versions} == {"c"}
        assert len(rest.versions) == 4
        with pytest.raises(InvalidArgument):
            await list_versions(s, bucket, version_id_marker="null")
        with pytest.raises(InvalidArgument):
            await list_versions(s, bucket, key_marker="a", version_id_marker="nope")


def test_version_id_form() -> None:
    assert is_version_id("null")
    assert is_version_id("0123456789abcdef0123456789abcdef")
    assert not is_version_id("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
    assert not is_version_id("")
