"""S3 bucket versioning: the bucket's state, and which versions are S3's `null` version.

Every version written before this revision was written with versioning off, so it is the
`null` version of its key (`is_null_version` defaults to true for existing rows).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("buckets", sa.Column("versioning", sa.String(16), nullable=True))
    op.add_column(
        "object_versions",
        sa.Column("is_null_version", sa.Boolean(), nullable=False, server_default=sa.true()),
    )


def downgrade() -> None:
    with op.batch_alter_table("object_versions") as batch:
        batch.drop_column("is_null_version")
    with op.batch_alter_table("buckets") as batch:
        batch.drop_column("versioning")
