"""SQLite under concurrency: one-hop reads beside a writer, a per-process writer queue, and
busy/locked errors recognised as contention (the gateway's SlowDown), not as bugs."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from meta_support import put_object
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from residency.config import ConfigError, load_settings
from residency.meta import Database
from residency.meta.db import is_contention
from residency.meta.models import Bucket, Tenant
from residency.meta.repo import buckets, objects, tenants
from residency.meta.types import utcnow


def _db_file(db: Database) -> Path:
    assert db.url.database is not None
    return Path(db.url.database)


def _tenant_names(session: Session) -> list[str]:
    return list(session.scalars(select(Tenant.name).order_by(Tenant.name)))


async def test_read_runs_a_sync_unit_of_work_and_sees_committed_writes(
    db: Database, bucket: Bucket
) -> None:
    async with db.session() as s:
        await tenants.create_tenant(s, "zeta")
    assert "zeta" in await db.read(_tenant_names)
    found = await db.read(tenants.lookup_access_key, "AKIANOSUCHKEY00000000")
    assert found is None


async def test_read_target_in_one_hop_matches_the_async_one(db: Database, bucket: Bucket) -> None:
    await put_object(db, bucket, "dir/k.txt", locations=("us", "eu"))
    one_hop = await db.read(objects.load_read_target, bucket.name, "dir/k.txt")
    async with db.session(write=False) as s:
        awaited = await objects.get_read_target(s, bucket.name, "dir/k.txt")
    assert one_hop.version.version_id == awaited.version.version_id
    assert [p.location for p in one_hop.placements] == ["us", "eu"]
    assert [s.blob_key for s in one_hop.segments] == [s.blob_key for s in awaited.segments]
    with pytest.raises(Exception, match="does not exist") as missing_key:
        await db.read(objects.load_read_target, bucket.name, "nope")
    assert getattr(missing_key.value, "code", "") == "NoSuchKey"
    with pytest.raises(Exception, match="does not exist") as missing_bucket:
        await db.read(objects.load_read_target, "no-such-bucket", "k")
    assert getattr(missing_bucket.value, "code", "") == "NoSuchBucket"


async def test_reads_refuse_to_write(db: Database) -> None:
    def sneaky(session: Session) -> None:
        session.add(Tenant(name="sneaky", created=utcnow()))
        session.flush()

    with pytest.raises(DBAPIError, match=r"readonly|read-only|query_only"):
        await db.read(sneaky)


async def test_reads_go_on_while_another_process_holds_the_write_lock(db: Database) -> None:
    holder = sqlite3.connect(_db_file(db), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("INSERT INTO tenants (name, created) VALUES ('uncommitted', '2026-01-01')")
        assert "uncommitted" not in await db.read(_tenant_names)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_a_held_write_lock_is_contention_after_the_busy_timeout(db: Database) -> None:
    impatient = Database(str(db.url), busy_timeout_ms=50)
    holder = sqlite3.connect(_db_file(db), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(DBAPIError) as caught:
            async with impatient.session() as s:
                await tenants.create_tenant(s, "blocked")
        assert is_contention(caught.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await impatient.dispose()


async def test_other_database_errors_are_not_contention(db: Database, tenant: Tenant) -> None:
    async def duplicate() -> None:
        async with db.session() as s:
            s.add(Tenant(name=tenant.name, created=tenant.created))

    with pytest.raises(IntegrityError) as caught:
        await duplicate()
    assert not is_contention(caught.value)
    assert not is_contention(RuntimeError("database is locked"))


async def test_writers_in_one_process_queue_instead_of_timing_out(db: Database) -> None:
    """Forty write transactions that each yield to the event loop mid-transaction: without
    the per-process queue they would pile up in SQLite's busy handler and time out."""
    impatient = Database(str(db.url), busy_timeout_ms=20)
    async with impatient.session() as s:
        owner = await tenants.create_tenant(s, "queue")

    async def write(i: int) -> None:
        async with impatient.session() as s:
            await buckets.create_bucket(s, await tenants.get_tenant(s, owner.name), f"q-{i:02d}")
            await asyncio.sleep(0.005)

    try:
        await asyncio.gather(*(write(i) for i in range(40)))
        async with impatient.session(write=False) as s:
            names = [b.name for b in await buckets.list_buckets(s) if b.name.startswith("q-")]
        assert names == [f"q-{i:02d}" for i in range(40)]
    finally:
        await impatient.dispose()


def test_a_bad_busy_timeout_setting_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The variable is a setting like any other: validated with the rest, in one place."""
    monkeypatch.setenv("RESIDENCY_SQLITE_BUSY_TIMEOUT_MS", "soon")
    with pytest.raises(ConfigError, match="sqlite_busy_timeout_ms"):
        load_settings(data_dir=tmp_path)
    monkeypatch.setenv("RESIDENCY_SQLITE_BUSY_TIMEOUT_MS", "250")
    assert load_settings(data_dir=tmp_path).sqlite_busy_timeout_ms == 250


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "retryable"),
    [("40001", True), ("40P01", True), ("55P03", True), ("23505", False), ("42P01", False)],
)
def test_postgresql_serialization_and_deadlock_are_contention(
    sqlstate: str, retryable: bool
) -> None:
    wrapped = DBAPIError("UPDATE audit_chain_head ...", None, _PgError(sqlstate))
    assert is_contention(wrapped) is retryable


async def test_a_write_session_inside_another_fails_instead_of_hanging(db: Database) -> None:
    async def nested() -> None:
        async with db.session(), db.session():
            pass

    with pytest.raises(RuntimeError, match="inside another"):
        await nested()
    async with db.session() as s:  # the queue is free again
        await tenants.create_tenant(s, "after")
