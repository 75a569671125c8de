"""Room for the cumulative policy model: several rules and several subjects per version.

A decision now names every rule that applied (comma-separated) and an object may have several
subjects (`DE,US`), so `rule` and `subject` outgrow 128 and 64 characters. SQLite does not
enforce VARCHAR lengths, so only other databases are altered (no table copy on SQLite).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (("rule", 128, 1024), ("subject", 64, 512))
_TABLES = ("object_versions", "multipart_uploads")


def _alter(up: bool) -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table in _TABLES:
        for name, before, after in _COLUMNS:
            lengths = (before, after) if up else (after, before)
            op.alter_column(
                table,
                name,
                type_=sa.String(length=lengths[1]),
                existing_type=sa.String(length=lengths[0]),
            )


def upgrade() -> None:
    _alter(up=True)


def downgrade() -> None:
    _alter(up=False)
