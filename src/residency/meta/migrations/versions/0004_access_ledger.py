"""Bulk-data ledger (28 CFR 202.205): accounts per (tenant, holder, category) and charges.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from residency.meta.types import BigIntPK, UTCDateTime

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_accounts")),
        sa.UniqueConstraint(
            "tenant", "holder", "category", name=op.f("uq_ledger_accounts_tenant_holder_category")
        ),
    )
    op.create_table(
        "ledger_charges",
        sa.Column("id", BigIntPK, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("ts", UTCDateTime(), nullable=False),
        sa.Column("principal", sa.String(length=255), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("version_id", sa.String(length=64), nullable=True),
        sa.Column("records", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["ledger_accounts.id"],
            name=op.f("fk_ledger_charges_account_id_ledger_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_charges")),
    )
    op.create_index(
        "ix_ledger_charges_account_id_ts", "ledger_charges", ["account_id", "ts"], unique=False
    )
    op.create_index(
        "ix_ledger_charges_account_id_target",
        "ledger_charges",
        ["account_id", "target"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_ledger_charges_account_id_target", table_name="ledger_charges")
    op.drop_index("ix_ledger_charges_account_id_ts", table_name="ledger_charges")
    op.drop_table("ledger_charges")
    op.drop_table("ledger_accounts")
