"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, String
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeDecorator, TypeEngine


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python; naive UTC on SQLite, `timestamptz` on PostgreSQL.

    SQLite has no time zones, so a naive value read back would be ambiguous; this type makes
    every value that leaves the database aware and every value that enters it UTC.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(DateTime(timezone=True))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only makes `INTEGER PRIMARY KEY` an alias of the rowid (and autoincrementing);
# PostgreSQL gets 64-bit keys because versions, segments and placements reach billions.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")

# JSONB on PostgreSQL (indexable, compact); JSON text elsewhere.
JSONDoc = JSON().with_variant(postgresql.JSONB(), "postgresql")

# Object keys sort by UTF-8 bytes in S3. SQLite's BINARY collation does that already;
# PostgreSQL needs the "C" collation or listings follow the locale's order.
ObjectKey = String(1024).with_variant(String(1024, collation="C"), "postgresql")
