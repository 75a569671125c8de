"""Fixtures for the metadata tests: a migrated SQLite database per test, a tenant, a bucket."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from meta_support import Put, put_object

from residency.meta import Database
from residency.meta.models import Bucket, Tenant
from residency.meta.repo import buckets, tenants
from residency.meta.writes import Commit


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate once per session; each test gets a copy (Alembic per test is slow)."""
    path = tmp_path_factory.mktemp("template") / "residency.db"

    async def build() -> None:
        database = Database(f"sqlite+aiosqlite:///{path}")
        await database.migrate()
        await database.dispose()

    asyncio.run(build())
    return path


@pytest.fixture
async def db(tmp_path: Path, migrated_template: Path) -> AsyncIterator[Database]:
    path = tmp_path / "data" / "residency.db"
    path.parent.mkdir()
    shutil.copyfile(migrated_template, path)
    database = Database(f"sqlite+aiosqlite:///{path}")
    await database.migrate()  # a no-op at head: proves the copy is current
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def tenant(db: Database) -> Tenant:
    async with db.session() as s:
        return await tenants.create_tenant(s, "acme")


@pytest.fixture
async def bucket(db: Database, tenant: Tenant) -> Bucket:
    async with db.session() as s:
        return await buckets.create_bucket(s, tenant, "photos")


@pytest.fixture
def put(db: Database) -> Put:
    async def _put(bucket: Bucket, key: str, body: bytes = b"x", **kw: Any) -> tuple[Commit, str]:
        return await put_object(db, bucket, key, body, **kw)

    return _put
