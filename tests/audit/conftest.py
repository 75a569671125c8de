"""Audit fixtures: a real, migrated SQLite database in a temp data dir, and raw access to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from residency import audit
from residency.meta import Database


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "residency-data"
    path.mkdir()
    return path


@pytest.fixture
def db_file(data_dir: Path) -> Path:
    return data_dir / "residency.db"


@pytest.fixture
def db_url(db_file: Path) -> str:
    return f"sqlite+aiosqlite:///{db_file}"


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    await database.migrate()
    try:
        yield database
    finally:
        audit.disable_checkpoints(db_url)
        await database.dispose()
