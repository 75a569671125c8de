"""Revision 0004 creates exactly the ledger tables the models describe, after the newest one."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import residency.access.models
import residency.audit.models
import residency.migrate.models  # every table on Base.metadata
import testkit
from residency.meta.db import alembic_config
from residency.meta.models import Base


def test_ledger_revision_is_chained_below_the_head() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    rev = script.get_revision("0004")
    assert rev is not None
    assert rev.down_revision == "0003"
    head = script.get_current_head()
    assert head is not None
    assert "0004" in {r.revision for r in script.walk_revisions("base", head)}


def test_ledger_models_and_migration_agree(db_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{db_path}")
    try:
        with engine.connect() as conn:
            names = set(sa.inspect(conn).get_table_names())
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": testkit.sqlite_compare_type}
            )
            diff = compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()
    assert {"ledger_accounts", "ledger_charges"} <= names
    assert diff == []
    assert residency.access.models.LedgerCharge.__table__.c.account_id.foreign_keys
