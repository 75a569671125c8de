"""Ledger tables (Alembic revision 0004): per-holder accounts and the charges against them.

An account is (tenant, holder, category): the US person that owns the data (the tenant), the
covered person or organisation that accessed it (the holder) and the 28 CFR 202.205
category. Every charge first locks its account row, which serialises concurrent charges to
the same account on PostgreSQL (SQLite write transactions are serial anyway), so the check
"would this exceed the threshold" and the insert that records the access cannot interleave.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from residency.meta.models import Base
from residency.meta.types import BigIntPK, UTCDateTime


class LedgerAccount(Base):
    """What one holder has accessed of one tenant's data of one category; the lock row."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (UniqueConstraint("tenant", "holder", "category"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(63))
    holder: Mapped[str] = mapped_column(String(255))  # "org:<name>" | "principal:<t>/<name>"
    category: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(UTCDateTime)


class LedgerCharge(Base):
    """One access that counted: `records` US persons' records of `target` at `ts`."""

    __tablename__ = "ledger_charges"
    __table_args__ = (
        Index(None, "account_id", "ts"),
        Index(None, "account_id", "target"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    principal: Mapped[str] = mapped_column(String(255))
    target: Mapped[str] = mapped_column(Text)  # "<bucket>/<key>"
    version_id: Mapped[str | None] = mapped_column(String(64))
    records: Mapped[int] = mapped_column(BigInteger)
