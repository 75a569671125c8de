"""Initial schema: tenants, keys, buckets, object versions, multipart, blob bookkeeping, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from residency.meta.types import UTCDateTime

# Frozen copies of the column types as of this revision (models may move on; this may not).
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
OBJECT_KEY = sa.String(length=1024).with_variant(
    sa.String(length=1024, collation="C"), "postgresql"
)

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("seq", BIGINT_PK, autoincrement=True, nullable=False),
        sa.Column("ts", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("tenant", sa.String(length=63), nullable=True),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_entries")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_audit_entries_ts"), "audit_entries", ["ts"], unique=False)

    op.create_table(
        "blob_intents",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("location", sa.String(length=63), nullable=False),
        sa.Column("blob_key", sa.String(length=255), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blob_intents")),
        sa.UniqueConstraint("location", "blob_key", name=op.f("uq_blob_intents_location_blob_key")),
    )
    op.create_index(op.f("ix_blob_intents_created"), "blob_intents", ["created"], unique=False)

    op.create_table(
        "garbage_blobs",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("location", sa.String(length=63), nullable=False),
        sa.Column("blob_key", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("claimed", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_garbage_blobs")),
    )
    op.create_index(op.f("ix_garbage_blobs_created"), "garbage_blobs", ["created"], unique=False)
    op.create_index(op.f("ix_garbage_blobs_blob_key"), "garbage_blobs", ["blob_key"], unique=False)

    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("name", name=op.f("uq_tenants_name")),
    )
    op.create_table(
        "buckets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("default_class", sa.String(length=128), nullable=True),
        sa.Column("default_subject", sa.String(length=64), nullable=True),
        sa.Column("policy", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_buckets_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_buckets")),
        sa.UniqueConstraint("name", name=op.f("uq_buckets_name")),
    )
    op.create_index(op.f("ix_buckets_tenant_id"), "buckets", ["tenant_id"], unique=False)

    op.create_table(
        "principals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("attributes", JSON_DOC, nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_principals_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_principals")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_principals_tenant_id_name")),
    )
    op.create_table(
        "access_keys",
        sa.Column("access_key_id", sa.String(length=128), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("last_used", UTCDateTime(), nullable=True),
        sa.CheckConstraint("status IN ('active', 'revoked')", name=op.f("ck_access_keys_status")),
        sa.ForeignKeyConstraint(
            ["principal_id"], ["principals.id"], name=op.f("fk_access_keys_principal_id_principals")
        ),
        sa.PrimaryKeyConstraint("access_key_id", name=op.f("pk_access_keys")),
    )
    op.create_index(
        op.f("ix_access_keys_principal_id"), "access_keys", ["principal_id"], unique=False
    )

    op.create_table(
        "multipart_uploads",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("upload_id", sa.String(length=128), nullable=False),
        sa.Column("bucket_id", sa.Integer(), nullable=False),
        sa.Column("key", OBJECT_KEY, nullable=False),
        sa.Column("initiated", UTCDateTime(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("principal_id", sa.Integer(), nullable=True),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("user_metadata", JSON_DOC, nullable=False),
        sa.Column("tags", JSON_DOC, nullable=False),
        sa.Column("data_class", sa.String(length=128), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=True),
        sa.Column("subject_count", sa.BigInteger(), nullable=True),
        sa.Column("rule", sa.String(length=128), nullable=True),
        sa.Column("locations", JSON_DOC, nullable=False),
        sa.Column("checksum_algorithm", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["bucket_id"], ["buckets.id"], name=op.f("fk_multipart_uploads_bucket_id_buckets")
        ),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["principals.id"],
            name=op.f("fk_multipart_uploads_principal_id_principals"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_multipart_uploads_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_multipart_uploads")),
        sa.UniqueConstraint("upload_id", name=op.f("uq_multipart_uploads_upload_id")),
    )
    op.create_index(
        op.f("ix_multipart_uploads_bucket_id_key_initiated"),
        "multipart_uploads",
        ["bucket_id", "key", "initiated"],
        unique=False,
    )

    op.create_table(
        "object_versions",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("bucket_id", sa.Integer(), nullable=False),
        sa.Column("key", OBJECT_KEY, nullable=False),
        sa.Column("version_id", sa.String(length=64), nullable=False),
        sa.Column("is_latest", sa.Boolean(), nullable=False),
        sa.Column("is_delete_marker", sa.Boolean(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("etag", sa.String(length=64), nullable=False),
        sa.Column("md5", sa.String(length=64), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("crc32c", sa.String(length=64), nullable=True),
        sa.Column("crc32", sa.String(length=64), nullable=True),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("user_metadata", JSON_DOC, nullable=False),
        sa.Column("tags", JSON_DOC, nullable=False),
        sa.Column("data_class", sa.String(length=128), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=True),
        sa.Column("subject_count", sa.BigInteger(), nullable=True),
        sa.Column("rule", sa.String(length=128), nullable=True),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("part_count", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["bucket_id"], ["buckets.id"], name=op.f("fk_object_versions_bucket_id_buckets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_object_versions")),
        sa.UniqueConstraint("version_id", name=op.f("uq_object_versions_version_id")),
    )
    op.create_index(
        op.f("ix_object_versions_bucket_id_key"),
        "object_versions",
        ["bucket_id", "key"],
        unique=False,
    )
    op.create_index(
        "uq_object_versions_latest",
        "object_versions",
        ["bucket_id", "key"],
        unique=True,
        sqlite_where=sa.text("is_latest = 1"),
        postgresql_where=sa.text("is_latest"),
    )

    op.create_table(
        "multipart_parts",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("multipart_upload_id", BIGINT_PK, nullable=False),
        sa.Column("part_number", sa.Integer(), nullable=False),
        sa.Column("blob_key", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("etag", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("crc32c", sa.String(length=64), nullable=True),
        sa.Column("crc32", sa.String(length=64), nullable=True),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["multipart_upload_id"],
            ["multipart_uploads.id"],
            name=op.f("fk_multipart_parts_multipart_upload_id_multipart_uploads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_multipart_parts")),
        sa.UniqueConstraint(
            "multipart_upload_id",
            "part_number",
            name=op.f("uq_multipart_parts_multipart_upload_id_part_number"),
        ),
    )
    op.create_index(
        op.f("ix_multipart_parts_blob_key"), "multipart_parts", ["blob_key"], unique=False
    )

    op.create_table(
        "placements",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("object_version_id", BIGINT_PK, nullable=False),
        sa.Column("location", sa.String(length=63), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created", UTCDateTime(), nullable=False),
        sa.Column("verified_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "state IN ('ready', 'verified', 'deleting')", name=op.f("ck_placements_state")
        ),
        sa.ForeignKeyConstraint(
            ["object_version_id"],
            ["object_versions.id"],
            name=op.f("fk_placements_object_version_id_object_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_placements")),
        sa.UniqueConstraint(
            "object_version_id", "location", name=op.f("uq_placements_object_version_id_location")
        ),
    )
    op.create_index(op.f("ix_placements_location"), "placements", ["location"], unique=False)

    op.create_table(
        "segments",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("object_version_id", BIGINT_PK, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("blob_key", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("etag", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["object_version_id"],
            ["object_versions.id"],
            name=op.f("fk_segments_object_version_id_object_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint(
            "object_version_id", "seq", name=op.f("uq_segments_object_version_id_seq")
        ),
    )
    op.create_index(op.f("ix_segments_blob_key"), "segments", ["blob_key"], unique=False)


def downgrade() -> None:
    op.drop_table("segments")
    op.drop_table("placements")
    op.drop_table("multipart_parts")
    op.drop_table("object_versions")
    op.drop_table("multipart_uploads")
    op.drop_table("access_keys")
    op.drop_table("principals")
    op.drop_table("buckets")
    op.drop_table("tenants")
    op.drop_table("garbage_blobs")
    op.drop_table("blob_intents")
    op.drop_table("audit_entries")
