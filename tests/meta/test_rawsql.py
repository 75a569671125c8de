"""The request-path lookups straight on the SQLite driver give exactly what Core gives.

`Database.read_driver` on an SQLite file runs `lookup_object` / `lookup_bucket` on the read
connection itself; `load_object` / `load_bucket` are the Core path (every other database).
Both must produce the same objects, column for column (dates aware, JSON decoded).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC
from typing import Any

import pytest
from meta_support import put_object
from sqlalchemy.orm import class_mapper

from residency.meta import Database
from residency.meta.models import Bucket
from residency.meta.repo import buckets, objects, tenants
from residency.meta.specs import Checksums, SegmentSpec, VersionAttrs
from residency.meta.writes import delete_object, install_version


def _columns(obj: Any) -> dict[str, Any]:
    return {a.key: getattr(obj, a.key) for a in class_mapper(type(obj)).column_attrs}


def _flat(found: objects.ObjectLookup | None) -> Any:
    if found is None:
        return None
    return (
        _columns(found.bucket),
        None if found.version is None else _columns(found.version),
        [_columns(s) for s in found.segments],
        [_columns(p) for p in found.placements],
    )


async def _both_ways(db: Database, bucket_name: str, key: str) -> tuple[Any, Any]:
    raw = await db.read_driver(objects.lookup_object, objects.load_object, bucket_name, key)
    core = await db.read(objects.load_object, bucket_name, key)
    return _flat(raw), _flat(core)


def _never(*_args: Any) -> Any:
    raise AssertionError("an SQLite file must take the driver path")


async def test_read_driver_hands_out_the_idle_read_only_connection(db: Database) -> None:
    def probe(raw: sqlite3.Connection, dialect: Any) -> tuple[bool, str, int]:
        return raw.in_transaction, dialect.name, raw.execute("PRAGMA query_only").fetchone()[0]

    assert await db.read_driver(probe, _never) == (False, "sqlite", 1)


async def test_other_databases_take_the_core_fallback() -> None:
    memory = Database("sqlite+aiosqlite://")  # no file: no driver connection of its own
    try:
        await memory.migrate()
        async with memory.session() as s:
            owner = await tenants.create_tenant(s, "acme")
            bucket = await buckets.create_bucket(s, owner, "photos")
        await put_object(memory, bucket, "k", b"hello")
        found = await memory.read_driver(_never, objects.load_object, "photos", "k")
        assert found is not None
        assert found.version is not None
        assert found.version.size == 5
        assert await memory.read_driver(_never, buckets.load_bucket, "nope") is None
    finally:
        await memory.dispose()


async def test_object_lookup_matches_core_column_for_column(db: Database, bucket: Bucket) -> None:
    attrs = VersionAttrs(
        data_class="health",
        subject="de",
        subject_count=3,
        rule="eu-only",
        content_type="text/plain; charset=utf-8",
        user_metadata={"owner": "Zoë", "n": "1"},
        tags={"team": "a b", "x": ""},
    )
    await put_object(db, bucket, "dir/é k.txt", b"hello", locations=("us", "eu"), attrs=attrs)
    raw, core = await _both_ways(db, bucket.name, "dir/é k.txt")
    assert raw == core
    _, version, segments, placements = raw
    assert version["user_metadata"] == {"owner": "Zoë", "n": "1"}
    assert version["tags"] == {"team": "a b", "x": ""}
    assert version["created"].tzinfo is UTC
    assert version["is_latest"] is True
    assert version["is_delete_marker"] is False
    assert [p["location"] for p in placements] == ["us", "eu"]
    assert [(s["seq"], s["size"]) for s in segments] == [(0, 5)]


async def test_missing_key_deleted_key_and_missing_bucket_match_core(
    db: Database, bucket: Bucket
) -> None:
    raw, core = await _both_ways(db, bucket.name, "nope")
    assert raw == core
    assert raw[1] is None
    assert raw[2] == raw[3] == []
    await put_object(db, bucket, "gone")
    async with db.session() as s:
        await delete_object(s, bucket, "gone")
    raw, core = await _both_ways(db, bucket.name, "gone")
    assert raw == core
    assert raw[1] is None
    assert await _both_ways(db, "no-such-bucket", "k") == (None, None)


async def test_an_overwrite_is_seen_at_once(db: Database, bucket: Bucket) -> None:
    first, _ = await put_object(db, bucket, "k", b"one")
    second, _ = await put_object(db, bucket, "k", b"two!")
    assert second.replaced is not None
    assert second.replaced.version_id == first.version.version_id
    found = await db.read_driver(objects.lookup_object, _never, bucket.name, "k")
    assert found is not None
    assert found.version is not None
    assert _columns(found.version) == _columns(second.version)


async def test_bucket_lookup_matches_core(db: Database, bucket: Bucket) -> None:
    raw = await db.read_driver(buckets.lookup_bucket, _never, bucket.name)
    async with db.session(write=False) as s:
        core = await s.run_sync(buckets.load_bucket, bucket.name)
        orm = await buckets.find_bucket(s, bucket.name)
        row = await buckets.bucket_row(s, bucket.name)
    assert raw is not None
    assert core is not None
    assert orm is not None
    assert row is not None
    assert _columns(raw) == _columns(core) == _columns(orm) == _columns(row)
    assert await db.read_driver(buckets.lookup_bucket, _never, "no-such-bucket") is None


async def test_a_failed_lookup_leaves_no_transaction_open(db: Database, bucket: Bucket) -> None:
    def fails_midway(raw: sqlite3.Connection, _dialect: Any) -> None:
        raw.execute("SELECT no_such_column FROM buckets")

    with pytest.raises(sqlite3.OperationalError):
        await db.read_driver(fails_midway, _never)
    # The connection is usable and sees new commits (no snapshot left behind).
    await put_object(db, bucket, "after")
    found = await db.read_driver(objects.lookup_object, _never, bucket.name, "after")
    assert found is not None
    assert found.version is not None


async def test_segments_and_placements_come_back_in_order(db: Database, bucket: Bucket) -> None:
    """Several placements and several segments in one statement: no cross product, each in
    its own order (placements as inserted, segments by seq)."""
    segments = [SegmentSpec(f"blob-{i}", 3, f"etag{i}") for i in range(4)]
    async with db.session() as s:
        await install_version(
            s,
            bucket,
            "parts",
            VersionAttrs(data_class="public"),
            size=12,
            etag="x-4",
            checksums=Checksums(),
            segments=segments,
            locations=["us", "eu", "ap"],
            part_count=4,
        )
    raw, core = await _both_ways(db, bucket.name, "parts")
    assert raw == core
    assert [s["blob_key"] for s in raw[2]] == [f"blob-{i}" for i in range(4)]
    assert [p["location"] for p in raw[3]] == ["us", "eu", "ap"]
