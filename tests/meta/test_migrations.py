"""The schema comes from Alembic, and Alembic agrees with the models."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

import testkit
from residency.meta import Database
from residency.meta.db import SCHEMA_HEAD, alembic_config
from residency.meta.errors import DatabaseConfigError
from residency.meta.schema import full_metadata, model_modules
from testkit import CliResult

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
        ctx = MigrationContext.configure(conn, opts={"compare_type": testkit.sqlite_compare_type})
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


# --- the start-up check: one query at head, Alembic otherwise -------------------------------


def _stamp(path: Path, revision: str) -> None:
    engine = sa.create_engine(_sync_url(path))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    engine.dispose()


def _downgrade(path: Path, revision: str) -> None:
    cfg = alembic_config()
    engine = sa.create_engine(_sync_url(path))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
    engine.dispose()


def _stamped(path: Path) -> list[str]:
    engine = sa.create_engine(_sync_url(path))
    with engine.connect() as conn:
        rows = list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    engine.dispose()
    return rows


def test_schema_head_is_alembics_head() -> None:
    """The constant that lets a database at head skip Alembic must name Alembic's head."""
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_HEAD


def _migrate_in_child(path: Path) -> bool:
    """Run `Database.migrate()` in a fresh interpreter; True if it had to import Alembic."""
    code = textwrap.dedent(
        f"""
        import asyncio, sys
        from residency.meta import Database

        async def main():
            db = Database({f"sqlite+aiosqlite:///{path}"!r})
            await db.migrate()
            await db.dispose()

        asyncio.run(main())
        print("alembic" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return {"True": True, "False": False}[out.stdout.strip()]


def test_migrate_at_head_does_not_load_alembic(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    assert _migrate_in_child(path) is True  # fresh: Alembic creates the schema
    assert _stamped(path) == [SCHEMA_HEAD]
    assert _migrate_in_child(path) is False  # at head: one query
    _downgrade(path, "0002")
    assert _migrate_in_child(path) is True  # behind: Alembic upgrades
    assert _stamped(path) == [SCHEMA_HEAD]


async def test_an_older_revision_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    await db.dispose()
    _downgrade(path, "0002")
    engine = sa.create_engine(_sync_url(path))
    with engine.connect() as conn:
        before = set(sa.inspect(conn).get_table_names())
    engine.dispose()
    assert _stamped(path) == ["0002"]
    assert "ledger_accounts" not in before  # 0004's tables are really gone
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    await db.dispose()
    assert _stamped(path) == [SCHEMA_HEAD]
    engine = sa.create_engine(_sync_url(path))
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": testkit.sqlite_compare_type})
        diff = compare_metadata(ctx, full_metadata())
    engine.dispose()
    assert diff == []


async def test_an_unknown_revision_is_refused_with_alembics_message(tmp_path: Path) -> None:
    """A database from a newer residency: refused, untouched, with a message, no traceback."""
    path = tmp_path / "r.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.migrate()
    await db.dispose()
    _stamp(path, "0099")
    cfg = alembic_config()
    engine = sa.create_engine(_sync_url(path))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        with pytest.raises(CommandError) as alembic_says:
            command.upgrade(cfg, "head")
    engine.dispose()
    db = Database(f"sqlite+aiosqlite:///{path}")
    with pytest.raises(DatabaseConfigError) as refused:
        await db.migrate()
    await db.dispose()
    assert refused.value.message == str(alembic_says.value)
    assert "0099" in refused.value.message
    assert _stamped(path) == ["0099"]


@pytest.mark.parametrize(
    "command_line",
    [
        ("plan", "--policy", "preset:default"),
        ("report", "--json"),
        ("audit", "verify"),
        ("tenant", "list"),
    ],
    ids=lambda args: args[0],
)
def test_cli_refuses_an_unknown_revision_in_one_line(
    tmp_path: Path, cli: Callable[..., CliResult], command_line: tuple[str, ...]
) -> None:
    data = tmp_path / "data"
    created = cli("tenant", "create", "acme", "--data-dir", str(data))
    assert created.code == 0, created.stderr
    _stamp(data / "residency.db", "0099")
    result = cli(*command_line, env={"RESIDENCY_DATA_DIR": str(data)})
    assert result.code == 2, (result.stdout, result.stderr)
    assert result.stderr.strip().splitlines() == [
        "error: Can't locate revision identified by '0099'"
    ], result.stderr
    assert _stamped(data / "residency.db") == ["0099"]


@pytest.mark.parametrize("command_line", [("audit", "verify"), ("tenant", "list")], ids=" ".join)
def test_cli_names_an_unusable_database_url_in_one_line(
    cli: Callable[..., CliResult], command_line: tuple[str, ...]
) -> None:
    result = cli(*command_line, env={"RESIDENCY_DATABASE_URL": "not-a-url"})
    assert result.code == 2, (result.stdout, result.stderr)
    assert result.stderr.strip().splitlines() == [
        "error: not a database URL: 'not-a-url' (e.g. sqlite+aiosqlite:///path/residency.db)"
    ]
