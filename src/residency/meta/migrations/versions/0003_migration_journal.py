"""Migration journal: runs (one per plan) and their actions, advanced step by step.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from residency.meta.types import BigIntPK, JSONDoc, ObjectKey, UTCDateTime

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "migration_runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("policy", sa.String(255), nullable=False),
        sa.Column("header", JSONDoc, nullable=False),
        sa.Column("created", UTCDateTime, nullable=False),
        sa.Column("finished", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_migration_runs")),
    )
    op.create_table(
        "migration_actions",
        sa.Column("id", BigIntPK, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("key", ObjectKey, nullable=False),
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("src", sa.String(63), nullable=True),
        sa.Column("copy_to", JSONDoc, nullable=False),
        sa.Column("delete_from", JSONDoc, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("digests", JSONDoc, nullable=True),
        sa.Column("updated", UTCDateTime, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["migration_runs.id"],
            name=op.f("fk_migration_actions_run_id_migration_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_migration_actions")),
    )
    op.create_index(
        "uq_migration_actions_run_seq", "migration_actions", ["run_id", "seq"], unique=True
    )
    op.create_index(
        op.f("ix_migration_actions_run_id_state"), "migration_actions", ["run_id", "state"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_migration_actions_run_id_state"), table_name="migration_actions")
    op.drop_index("uq_migration_actions_run_seq", table_name="migration_actions")
    op.drop_table("migration_actions")
    op.drop_table("migration_runs")
