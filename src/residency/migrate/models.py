"""The migration journal: one row per planned action, advanced and committed step by step.

A run is identified by its plan's id, so running the same plan again resumes it. An action
moves from `pending` to `done` (a move), or through `verified` (a copy whose sources are
released afterwards), or to `skipped` when the object changed since planning; `copied` only
appears in journals written before the engine batched its commits. `attempts` and `error`
record failures. Each transition commits together with the placement change it records
(many actions share one transaction), which is what makes `kill -9` at any moment safe to
resume from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from residency.meta.models import Base
from residency.meta.types import BigIntPK, JSONDoc, ObjectKey, UTCDateTime, utcnow

__all__ = ["ACTION_STATES", "MigrationAction", "MigrationRun"]

ACTION_STATES = ("pending", "copied", "verified", "done", "skipped")


class MigrationRun(Base):
    """One plan being executed; `header` is the plan's summary as written by the planner."""

    __tablename__ = "migration_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    policy: Mapped[str] = mapped_column(String(255))
    header: Mapped[dict[str, Any]] = mapped_column(JSONDoc)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MigrationAction(Base):
    """One object's move: copy from `src` to each of `copy_to`, then drop `delete_from`."""

    __tablename__ = "migration_actions"
    __table_args__ = (
        Index("uq_migration_actions_run_seq", "run_id", "seq", unique=True),
        Index(None, "run_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("migration_runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    bucket: Mapped[str] = mapped_column(String(63))
    key: Mapped[str] = mapped_column(ObjectKey)
    version_id: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    src: Mapped[str | None] = mapped_column(String(63))
    copy_to: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    delete_from: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)
    digests: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONDoc)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
