"""A bucket's PublicAccessBlock configuration (PutPublicAccessBlock), as the client stored it.

Residency never serves anonymous reads, so the configuration changes nothing here; it is kept
so that tools which set and check it (Terraform, CDK, conformance suites) see what they set.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "buckets",
        sa.Column(
            "public_access_block",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=True,
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table("buckets") as batch:
        batch.drop_column("public_access_block")
