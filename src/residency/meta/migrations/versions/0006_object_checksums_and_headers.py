"""The checksum S3 shows for an object, its content headers, and the upload that made it.

`object_versions` gains `checksum_algorithm`, `checksum_type` and `checksum` (what HEAD/GET
with ChecksumMode and GetObjectAttributes answer: the client's checksum, or the CRC64NVME
default; FULL_OBJECT or COMPOSITE for multipart objects), `content_headers` (Cache-Control,
Content-Disposition, Content-Encoding, Content-Language, Expires) and `upload_id` (a retried
CompleteMultipartUpload answers from the version it made). Segments and multipart parts gain
the part checksum; multipart uploads the checksum type and content headers. Every new column
is nullable: versions written before simply have no checksum to show.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

_COLUMNS: dict[str, list[sa.Column[object]]] = {
    "object_versions": [
        sa.Column("checksum_algorithm", sa.String(length=16), nullable=True),
        sa.Column("checksum_type", sa.String(length=16), nullable=True),
        sa.Column("checksum", sa.String(length=64), nullable=True),
        sa.Column("content_headers", _JSON, nullable=True),
        sa.Column("upload_id", sa.String(length=128), nullable=True),
    ],
    "segments": [sa.Column("checksum", sa.String(length=64), nullable=True)],
    "multipart_uploads": [
        sa.Column("checksum_type", sa.String(length=16), nullable=True),
        sa.Column("content_headers", _JSON, nullable=True),
    ],
    "multipart_parts": [sa.Column("checksum", sa.String(length=64), nullable=True)],
}


def upgrade() -> None:
    # ADD COLUMN of a nullable column: no table copy on SQLite, no rewrite on PostgreSQL.
    for table, columns in _COLUMNS.items():
        for column in columns:
            op.add_column(table, column)


def downgrade() -> None:
    for table, columns in _COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in reversed(columns):
                batch.drop_column(column.name)
