"""The Database wrapper: SQLite settings, transactions, concurrent readers and writers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select, text

from residency.meta import Database
from residency.meta.db import BUSY_TIMEOUT_MS
from residency.meta.errors import DatabaseConfigError, NoSuchTenant
from residency.meta.models import Tenant
from residency.meta.repo import tenants


async def test_sqlite_pragmas(db: Database) -> None:
    async with db.session() as s:
        assert (await s.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
        assert (await s.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
        assert (await s.execute(text("PRAGMA synchronous"))).scalar_one() == 1  # NORMAL
        assert (await s.execute(text("PRAGMA busy_timeout"))).scalar_one() == BUSY_TIMEOUT_MS


async def test_session_commits_on_exit_and_rolls_back_on_error(db: Database) -> None:
    async with db.session() as s:
        await tenants.create_tenant(s, "kept")

    async def fail_midway() -> None:
        async with db.session() as s:
            await tenants.create_tenant(s, "dropped")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await fail_midway()
    async with db.session(write=False) as s:
        assert (await tenants.get_tenant(s, "kept")).name == "kept"
        with pytest.raises(NoSuchTenant):
            await tenants.get_tenant(s, "dropped")


async def test_foreign_keys_are_enforced(db: Database) -> None:
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        async with db.session() as s:
            await s.execute(
                text(
                    "INSERT INTO buckets (name, tenant_id, created) VALUES ('b', 999, '2026-01-01')"
                )
            )


async def test_reader_runs_beside_a_writer(db: Database) -> None:
    """WAL: a read transaction sees the last commit while a write transaction is open."""
    async with db.session() as s:
        await tenants.create_tenant(s, "before")
    writer_open = asyncio.Event()
    reader_done = asyncio.Event()

    async def writer() -> None:
        async with db.session() as s:
            await tenants.create_tenant(s, "during")
            writer_open.set()
            await asyncio.wait_for(reader_done.wait(), 10)

    async def reader() -> list[str]:
        await writer_open.wait()
        async with db.session(write=False) as s:
            names = list((await s.scalars(select(Tenant.name).order_by(Tenant.name))).all())
        reader_done.set()
        return names

    _, seen = await asyncio.gather(writer(), reader())
    assert seen == ["before"]
    async with db.session(write=False) as s:
        assert (await tenants.get_tenant(s, "during")).name == "during"


async def test_concurrent_writers_queue_instead_of_failing(db: Database) -> None:
    """Each writer reads then writes; BEGIN IMMEDIATE makes them wait, not 'database is locked'."""

    async def bump(i: int) -> None:
        async with db.session() as s:
            await s.scalar(select(Tenant.id).limit(1))  # a read first, then the write
            await asyncio.sleep(0)
            await tenants.create_tenant(s, f"t{i}")

    await asyncio.gather(*(bump(i) for i in range(12)))
    async with db.session(write=False) as s:
        assert len(await tenants.list_tenants(s)) == 12


async def test_plain_sqlite_url_means_aiosqlite(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'plain.db'}")
    assert db.url.drivername == "sqlite+aiosqlite"
    await db.migrate()
    await db.dispose()
    assert (tmp_path / "plain.db").exists()


async def test_in_memory_database_shares_one_connection() -> None:
    db = Database("sqlite+aiosqlite://")
    await db.migrate()
    async with db.session() as s:
        await tenants.create_tenant(s, "mem")
    async with db.session(write=False) as s:
        assert (await tenants.get_tenant(s, "mem")).name == "mem"
    await db.dispose()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("not a url", "not a database URL"),
        ("postgresql+nosuchdriver://u:pw@h/db", "nosuchdriver"),
        ("sqlite+pysqlite:///x.db", "synchronous driver"),
    ],
)
def test_bad_urls_give_one_clear_error(url: str, words: str) -> None:
    with pytest.raises(DatabaseConfigError) as info:
        Database(url)
    assert words in str(info.value)
    assert "pw" not in str(info.value)


def test_unwritable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DatabaseConfigError, match="cannot create the directory"):
        Database(f"sqlite+aiosqlite:///{blocker / 'sub' / 'residency.db'}")
