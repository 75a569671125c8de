"""Fixtures for the access tests: a migrated SQLite database per test (copied from a template)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from residency.meta import Database


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Alembic once per session; each test gets a copy of the migrated file."""
    path = tmp_path_factory.mktemp("access-template") / "residency.db"

    async def build() -> None:
        database = Database(f"sqlite+aiosqlite:///{path}")
        await database.migrate()
        await database.dispose()

    asyncio.run(build())
    return path


@pytest.fixture
def db_path(tmp_path: Path, migrated_template: Path) -> Path:
    path = tmp_path / "data" / "residency.db"
    path.parent.mkdir()
    shutil.copyfile(migrated_template, path)
    return path


@pytest.fixture
async def db(db_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{db_path}")
    await database.migrate()  # a no-op at head: proves the copy is current
    try:
        yield database
    finally:
        await database.dispose()
