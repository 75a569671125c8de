"""Listing at scale: 200k objects; a delimiter page seeks through the index instead of scanning.

Asserts on the query plan and the number of queries, never on time.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from residency.meta import Database
from residency.meta.models import Bucket
from residency.meta.repo import buckets, objects, tenants

DIRS, FILES = 400, 500  # 200,000 objects


@contextmanager
def captured(db: Database) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    event.listen(db.engine.sync_engine, "before_cursor_execute", grab)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", grab)


async def plan(db: Database, statement: str, params: Any) -> str:
    async with db.session(write=False) as s:
        conn = await s.connection()
        raw = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
        return "\n".join(str(row[-1]) for row in raw)


@pytest.fixture(scope="module")
def big_db(tmp_path_factory: pytest.TempPathFactory, migrated_template: Path) -> Path:
    """One 200k-object database for the module (the tests only read it)."""
    path = tmp_path_factory.mktemp("scale") / "residency.db"
    shutil.copyfile(migrated_template, path)

    async def make_bucket() -> int:
        db = Database(f"sqlite+aiosqlite:///{path}")
        async with db.session() as s:
            tenant = await tenants.create_tenant(s, "big")
            bucket_id = (await buckets.create_bucket(s, tenant, "big")).id
        await db.dispose()
        return bucket_id

    bucket_id = asyncio.run(make_bucket())
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    rows = (
        (bucket_id, f"dir-{d:03d}/file-{f:04d}.bin", f"v{d:03d}{f:04d}", now)
        for d in range(DIRS)
        for f in range(FILES)
    )
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("PRAGMA synchronous=OFF")  # a bulk load of a throwaway file
        conn.executemany(
            "INSERT INTO object_versions (bucket_id, key, version_id, is_latest, "
            "is_delete_marker, size, etag, user_metadata, tags, data_class, created) "
            "VALUES (?, ?, ?, 1, 0, 1, 'e', '{}', '{}', 'public', ?)",
            rows,
        )
        conn.execute("ANALYZE")
    return path


@pytest.fixture
async def db(big_db: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{big_db}")
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def big(db: Database) -> Bucket:
    async with db.session(write=False) as s:
        bucket = await buckets.get_bucket(s, "big")
        count = (await s.execute(text("SELECT count(*) FROM object_versions"))).scalar_one()
    assert count == DIRS * FILES
    return bucket


async def test_delimiter_page_seeks_past_each_prefix(db: Database, big: Bucket) -> None:
    with captured(db) as queries:
        async with db.session(write=False) as s:
            page = await objects.list_objects(s, big, delimiter="/", max_keys=100)
    assert page.common_prefixes == [f"dir-{d:03d}/" for d in range(100)]
    assert page.objects == []
    assert (page.is_truncated, page.next_marker) == (True, "dir-099/")
    # One index seek per common prefix (plus one to learn there is more), each a small LIMIT:
    # no query reads the 500 keys under a prefix.
    assert len(queries) == 101
    assert all(params[-1] <= 32 for _, params in queries)  # LIMIT is the last parameter
    for statement, params in queries[:3]:
        p = await plan(db, statement, params)
        assert "USING INDEX uq_object_versions_latest (bucket_id=? AND key>?" in p, p
        assert "TEMP B-TREE" not in p, p


async def test_prefix_listing_is_one_range_scan(db: Database, big: Bucket) -> None:
    with captured(db) as queries:
        async with db.session(write=False) as s:
            page = await objects.list_objects(s, big, prefix="dir-250/", max_keys=1000)
    assert len(page.objects) == FILES
    assert page.objects[0].key == "dir-250/file-0000.bin"
    assert not page.is_truncated
    [(statement, params)] = queries
    p = await plan(db, statement, params)
    assert "USING INDEX uq_object_versions_latest (bucket_id=? AND key>? AND key<?)" in p, p
    assert "TEMP B-TREE" not in p, p


async def test_deep_pagination_resumes_with_a_seek(db: Database, big: Bucket) -> None:
    with captured(db) as queries:
        async with db.session(write=False) as s:
            page = await objects.list_objects(
                s, big, start_after="dir-399/file-0490.bin", max_keys=1000
            )
    assert [o.key for o in page.objects] == [f"dir-399/file-{f:04d}.bin" for f in range(491, 500)]
    [(statement, params)] = queries
    p = await plan(db, statement, params)
    assert "USING INDEX uq_object_versions_latest (bucket_id=? AND key>?)" in p, p


async def test_get_uses_the_latest_index(db: Database, big: Bucket) -> None:
    with captured(db) as queries:
        async with db.session(write=False) as s:
            _, version = await objects.find_bucket_and_latest(s, big.name, "dir-123/file-0456.bin")
    assert version is not None
    [(statement, params)] = queries
    p = await plan(db, statement, params)
    assert "USING INDEX uq_object_versions_latest (bucket_id=? AND key=?)" in p, p
