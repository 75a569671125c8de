"""The schema comes from Alembic, and Alembic agrees with the models."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from residency.meta import Database
from residency.meta.db import alembic_config
from residency.meta.schema import full_metadata, model_modules

TABLES = {
    "tenants",
    "principals",
    "access_keys",
    "buckets",
    "object_versions",
    "segments",
    "placements",
    "multipart_uploads",
    "multipart_parts",
    "blob_intents",
    "garbage_blobs",
    "audit_entries",
}


def _sync_url(path: Path) -> str:
    return f"sqlite:///{path}"


async def test_migrate_creates_data_dir_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "residency.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    await db.migrate()  # idempotent
    await db.dispose()
    assert path.exists()
    engine = sa.create_engine(_sync_url(path))
    with engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
        head = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    assert names >= TABLES
    assert head == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_initial_revision_is_0001_and_the_root() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    first = script.get_revision("0001")
    assert first is not None
    assert first.down_revision is None
    assert [r.revision for r in script.walk_revisions() if r.down_revision is None] == ["0001"]


async def test_models_and_migrations_agree(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    await db.dispose()
    engine = sa.create_engine(_sync_url(path))
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, full_metadata())
    engine.dispose()
    assert diff == []


def test_model_modules_are_found() -> None:
    assert "residency.audit.models" in model_modules()
    assert "residency.meta.models" in model_modules()


async def test_partial_index_matches_the_model(tmp_path: Path) -> None:
    """Autogenerate does not compare index WHERE clauses; check the one listings rely on."""
    path = tmp_path / "r.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    await db.dispose()
    engine = sa.create_engine(_sync_url(path))
    with engine.connect() as conn:
        ddl = conn.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE name = 'uq_object_versions_latest'")
        ).scalar_one()
    engine.dispose()
    assert "UNIQUE INDEX" in ddl
    assert ddl.rstrip().endswith("WHERE is_latest = 1")


async def test_downgrade_to_base_and_up_again(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    await db.dispose()
    cfg = alembic_config()
    engine = sa.create_engine(_sync_url(path))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    with engine.connect() as conn:
        assert set(sa.inspect(conn).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    await db.dispose()
    engine = sa.create_engine(_sync_url(path))
    with engine.connect() as conn:
        assert set(sa.inspect(conn).get_table_names()) >= TABLES
    engine.dispose()


def test_postgresql_ddl(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PostgreSQL here: render the migrations offline and check what PG relies on."""
    monkeypatch.delenv("RESIDENCY_DATABASE_URL", raising=False)
    buf = io.StringIO()
    cfg = alembic_config()
    cfg.output_buffer = buf
    cfg.set_main_option("sqlalchemy.url", "postgresql://user@localhost/residency")
    command.upgrade(cfg, "head", sql=True)
    ddl = buf.getvalue()
    assert 'key VARCHAR(1024) COLLATE "C" NOT NULL' in ddl  # S3 lists in byte order
    assert (
        "CREATE UNIQUE INDEX uq_object_versions_latest ON object_versions (bucket_id, key) "
        "WHERE is_latest" in ddl
    )
    assert "created TIMESTAMP WITH TIME ZONE NOT NULL" in ddl
    assert "user_metadata JSONB NOT NULL" in ddl
    assert "id BIGSERIAL NOT NULL" in ddl
