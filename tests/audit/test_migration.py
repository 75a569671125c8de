"""Revision 0002 matches the audit models, starts the chain head right, and downgrades cleanly."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, MetaData, String, Table, create_engine, inspect, text

from residency import audit
from residency.audit.models import AuditChainHead, AuditCheckpoint
from residency.meta.db import Database, alembic_config
from residency.meta.models import Base

OURS = {AuditChainHead.__tablename__, AuditCheckpoint.__tablename__}


def _alembic(db_file: Path, action: str, revision: str) -> None:
    engine = create_engine(f"sqlite:///{db_file}")
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            getattr(command, action)(cfg, revision)
    finally:
        engine.dispose()


def _only_ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table in OURS


def _diff_for_our_tables(db_file: Path, metadata: MetaData = Base.metadata) -> list[Any]:
    engine = create_engine(f"sqlite:///{db_file}")
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"include_object": _only_ours, "compare_type": True}
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_models_and_revision_agree(db_file: Path) -> None:
    _alembic(db_file, "upgrade", "head")
    assert _diff_for_our_tables(db_file) == []
    # The comparison itself can fail: a model that drifted from the revision is reported.
    drifted = MetaData()
    for table in (AuditChainHead.__table__, AuditCheckpoint.__table__):
        copy = cast(Table, table).to_metadata(drifted)
        if copy.name == "audit_checkpoints":
            copy.append_column(Column("note", String(10)))
    assert [d[0] for d in _diff_for_our_tables(db_file, drifted)] == ["add_column"]


def test_downgrade_removes_only_our_tables(db_file: Path) -> None:
    _alembic(db_file, "upgrade", "0002")
    _alembic(db_file, "downgrade", "0001")
    engine = create_engine(f"sqlite:///{db_file}")
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert "audit_entries" in tables
    assert not OURS & tables


async def test_head_starts_at_entries_written_before_the_revision(
    db: Database, db_file: Path, db_url: str
) -> None:
    """Entries already in audit_entries when 0002 runs: the head picks up at the last one."""
    async with db.session() as session:
        for i in range(3):
            await audit.append(session, "admin", actor="root", target=f"t{i}")
    await db.dispose()
    _alembic(db_file, "downgrade", "0001")
    _alembic(db_file, "upgrade", "head")
    engine = create_engine(f"sqlite:///{db_file}")
    try:
        with engine.connect() as conn:
            head = conn.execute(text("SELECT seq, hash FROM audit_chain_head")).one()
            last = conn.execute(text("SELECT seq, hash FROM audit_entries WHERE seq = 3")).one()
    finally:
        engine.dispose()
    assert tuple(head) == tuple(last)
    async with db.session() as session:
        entry = await audit.append(session, "admin", actor="root", target="t3")
    assert (entry.seq, entry.prev_hash) == (4, last[1])
    assert (await audit.verify(db)).ok
