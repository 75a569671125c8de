"""The metadata schema: who owns what, which object versions exist and where their bytes are.

Integer surrogate keys join the big tables (versions, segments, placements); the names clients
see (bucket name, S3 version id, upload id, access key id) are unique columns beside them.
Changing anything here needs a new Alembic revision in `meta/migrations/versions/`;
`tests/meta/test_migrations.py` fails when the two disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from residency.meta.types import BigIntPK, JSONDoc, ObjectKey, UTCDateTime, utcnow

# Deterministic constraint names: Alembic needs them to alter SQLite tables in batch mode.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

KEY_STATUSES = ("active", "revoked")
VERSIONING_STATES = ("Enabled", "Suspended")
PLACEMENT_STATES = ("ready", "verified", "deleting")
NULL_VERSION = "null"
"""S3's version id of an object written while its bucket's versioning was off or suspended."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Tenant(Base):
    """An organisation that owns buckets; one gateway serves many."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Principal(Base):
    """A user or service of a tenant; `attributes` feed access policies (country, ...)."""

    __tablename__ = "principals"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AccessKey(Base):
    """An S3 credential. SigV4 verification needs the secret itself, so it is stored."""

    __tablename__ = "access_keys"
    __table_args__ = (
        CheckConstraint(f"status IN {KEY_STATUSES!r}", name="status"),
        Index(None, "principal_id"),
    )

    access_key_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    secret: Mapped[str] = mapped_column(String(128))
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Bucket(Base):
    """A bucket; names are global across tenants, as in S3."""

    __tablename__ = "buckets"
    __table_args__ = (Index(None, "tenant_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    default_class: Mapped[str | None] = mapped_column(String(128))
    default_subject: Mapped[str | None] = mapped_column(String(64))
    policy: Mapped[str | None] = mapped_column(String(128))
    public_access_block: Mapped[dict[str, bool] | None] = mapped_column(JSONDoc)
    """PutPublicAccessBlock's four flags; informational (no request is ever anonymous)."""
    versioning: Mapped[str | None] = mapped_column(String(16))
    """S3 versioning: None (never enabled: a write replaces the object), `Enabled` (every
    write and delete adds a version) or `Suspended` (writes replace the `null` version)."""


class ObjectVersion(Base):
    """One version of an object, or a delete marker (no bytes, no segments, no placements).

    `is_latest` marks the current version of a key (listings and plain GETs show it unless it
    is a delete marker); older versions exist only in a bucket whose versioning was enabled.
    `version_id` is unique and internal (plans and the audit log name versions by it); what
    S3 clients see is `s3_version_id`: `null` for a version written while versioning was off
    or suspended (S3's null version: at most one per key), the id itself otherwise.

    `md5` (hex), `sha256`, `crc32c` and `crc32` (base64) are the server's digests of a
    one-blob version's bytes (None for a multipart one); `checksum_*` is the checksum S3 shows
    (HEAD/GET with ChecksumMode, GetObjectAttributes), base64 with a `-N` suffix when COMPOSITE.
    """

    __tablename__ = "object_versions"
    __table_args__ = (
        # At most one latest version per key; the index listings and GETs range-scan.
        Index(
            "uq_object_versions_latest",
            "bucket_id",
            "key",
            unique=True,
            sqlite_where=text("is_latest = 1"),
            postgresql_where=text("is_latest"),
        ),
        # All versions of a key; also serves the foreign key from buckets.
        Index(None, "bucket_id", "key"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    bucket_id: Mapped[int] = mapped_column(ForeignKey("buckets.id"))
    key: Mapped[str] = mapped_column(ObjectKey)
    version_id: Mapped[str] = mapped_column(String(64), unique=True)
    is_latest: Mapped[bool] = mapped_column(Boolean, default=True)
    is_delete_marker: Mapped[bool] = mapped_column(Boolean, default=False)
    size: Mapped[int] = mapped_column(BigInteger)
    etag: Mapped[str] = mapped_column(String(64))
    md5: Mapped[str | None] = mapped_column(String(64))
    sha256: Mapped[str | None] = mapped_column(String(64))
    crc32c: Mapped[str | None] = mapped_column(String(64))
    crc32: Mapped[str | None] = mapped_column(String(64))
    content_type: Mapped[str | None] = mapped_column(String(255))
    user_metadata: Mapped[dict[str, str]] = mapped_column(JSONDoc, default=dict)
    tags: Mapped[dict[str, str]] = mapped_column(JSONDoc, default=dict)
    data_class: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str | None] = mapped_column(String(512))
    subject_count: Mapped[int | None] = mapped_column(BigInteger)
    rule: Mapped[str | None] = mapped_column(String(1024))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    part_count: Mapped[int | None] = mapped_column(Integer)
    checksum_algorithm: Mapped[str | None] = mapped_column(String(16))
    """The checksum S3 shows for the object (`CRC64NVME`, `SHA256`, ...): the one the client
    sent, or CRC64NVME computed when it sent none; None for versions written before."""
    checksum_type: Mapped[str | None] = mapped_column(String(16))
    """`FULL_OBJECT` or `COMPOSITE` (a multipart object's checksum of its part checksums)."""
    checksum: Mapped[str | None] = mapped_column(String(64))
    """Its base64 value, with `-N` for a COMPOSITE one."""
    content_headers: Mapped[dict[str, str] | None] = mapped_column(JSONDoc)
    """Cache-Control, Content-Disposition, Content-Encoding, Content-Language and Expires as
    the client sent them (canonical header name -> value)."""
    upload_id: Mapped[str | None] = mapped_column(String(128))
    """The multipart upload that made this version (a retried Complete answers from it)."""
    is_null_version: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    @property
    def s3_version_id(self) -> str:
        return NULL_VERSION if self.is_null_version else self.version_id


class Segment(Base):
    """A run of an object's bytes stored as one blob; a simple object has exactly one.

    A completed multipart object is the list of its part blobs in `seq` order (no copy).
    """

    __tablename__ = "segments"
    __table_args__ = (
        UniqueConstraint("object_version_id", "seq"),
        Index(None, "blob_key"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    object_version_id: Mapped[int] = mapped_column(
        ForeignKey("object_versions.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    blob_key: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    etag: Mapped[str] = mapped_column(String(64))
    checksum: Mapped[str | None] = mapped_column(String(64))
    """A multipart object's part checksum, in the version's `checksum_algorithm` (base64)."""


class Placement(Base):
    """A location that holds every segment blob of a version under the segments' keys."""

    __tablename__ = "placements"
    __table_args__ = (
        UniqueConstraint("object_version_id", "location"),
        CheckConstraint(f"state IN {PLACEMENT_STATES!r}", name="state"),
        Index(None, "location"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    object_version_id: Mapped[int] = mapped_column(
        ForeignKey("object_versions.id", ondelete="CASCADE")
    )
    location: Mapped[str] = mapped_column(String(63))
    state: Mapped[str] = mapped_column(String(16), default="ready")
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MultipartUpload(Base):
    """An upload in progress. Placement is decided at creation; every part goes to `locations`."""

    __tablename__ = "multipart_uploads"
    __table_args__ = (Index(None, "bucket_id", "key", "initiated"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    upload_id: Mapped[str] = mapped_column(String(128), unique=True)
    bucket_id: Mapped[int] = mapped_column(ForeignKey("buckets.id"))
    key: Mapped[str] = mapped_column(ObjectKey)
    initiated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    principal_id: Mapped[int | None] = mapped_column(ForeignKey("principals.id"))
    content_type: Mapped[str | None] = mapped_column(String(255))
    user_metadata: Mapped[dict[str, str]] = mapped_column(JSONDoc, default=dict)
    tags: Mapped[dict[str, str]] = mapped_column(JSONDoc, default=dict)
    data_class: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str | None] = mapped_column(String(512))
    subject_count: Mapped[int | None] = mapped_column(BigInteger)
    rule: Mapped[str | None] = mapped_column(String(1024))
    locations: Mapped[list[str]] = mapped_column(JSONDoc)
    checksum_algorithm: Mapped[str | None] = mapped_column(String(16))
    """As the client asked (None: S3's default, CRC64NVME of the whole object)."""
    checksum_type: Mapped[str | None] = mapped_column(String(16))
    content_headers: Mapped[dict[str, str] | None] = mapped_column(JSONDoc)


class MultipartPart(Base):
    """An uploaded part; its blob exists at every location of the upload."""

    __tablename__ = "multipart_parts"
    __table_args__ = (
        UniqueConstraint("multipart_upload_id", "part_number"),
        Index(None, "blob_key"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    multipart_upload_id: Mapped[int] = mapped_column(
        ForeignKey("multipart_uploads.id", ondelete="CASCADE")
    )
    part_number: Mapped[int] = mapped_column(Integer)
    blob_key: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    etag: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str | None] = mapped_column(String(64))
    crc32c: Mapped[str | None] = mapped_column(String(64))
    crc32: Mapped[str | None] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    checksum: Mapped[str | None] = mapped_column(String(64))
    """The part's checksum in the upload's algorithm (CRC64NVME when it named none), base64."""


class BlobIntent(Base):
    """A blob about to be written. Committed before the first byte, removed by the commit."""

    __tablename__ = "blob_intents"
    __table_args__ = (
        UniqueConstraint("location", "blob_key"),
        Index(None, "created"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    location: Mapped[str] = mapped_column(String(63))
    blob_key: Mapped[str] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GarbageBlob(Base):
    """A blob nothing should reference any more; the sweep deletes it after a grace period.

    `claimed` is set (and committed) by the sweep before it deletes the bytes. A writer about
    to write the same key at the same location again (a migration moving a version back)
    removes unclaimed rows when it registers its intents and is refused while one is claimed.
    """

    __tablename__ = "garbage_blobs"
    __table_args__ = (Index(None, "created"), Index(None, "blob_key"))

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    location: Mapped[str] = mapped_column(String(63))
    blob_key: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """One link of the hash-chained audit log (the chain itself lives in `residency.audit`)."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index(None, "ts"), {"sqlite_autoincrement": True})

    seq: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(255))
    tenant: Mapped[str | None] = mapped_column(String(63))
    target: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
