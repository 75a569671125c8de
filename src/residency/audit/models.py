"""Tables the audit chain adds beside `audit_entries` (revision 0002).

`audit_chain_head` is one row, (seq, hash) of the newest entry. Every append locks it by
updating it first, which is what keeps concurrent writers from forking the chain (see
`residency.audit.log`), and it hands out gap-free sequence numbers, which a database sequence
would not (a rolled-back transaction burns its value).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from residency.meta.models import Base
from residency.meta.types import UTCDateTime

HEAD_ID = 1


class AuditChainHead(Base):
    """The newest entry's seq and hash; the lock every append takes (exactly one row)."""

    __tablename__ = "audit_chain_head"
    __table_args__ = (CheckConstraint(f"id = {HEAD_ID}", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """An Ed25519 signature over (seq, hash, ts): proof of the chain up to `seq` at time `ts`."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))  # hex of the 64-byte signature
