"""Read entries out, for people (`tail`) and for SIEMs (JSON Lines), streaming in batches.

Every record carries prev_hash and hash, so whoever receives an export can re-check the chain
(see `canonical` for the exact bytes hashed) without access to the database.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, String, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from residency.audit.canonical import as_utc, format_ts, read_ts
from residency.audit.kinds import AuditKind, parse_kind
from residency.audit.log import load_detail
from residency.meta.models import AuditEntry

DEFAULT_BATCH = 1000
RECORD_FIELDS = (
    "seq",
    "ts",
    "kind",
    "actor",
    "tenant",
    "target",
    "detail",
    "prev_hash",
    "hash",
)
# ts raw, as in `verify`: an export of a tampered log still runs (and shows what is stored).
_COLUMNS = tuple(
    type_coerce(AuditEntry.ts, String).label("ts") if name == "ts" else getattr(AuditEntry, name)
    for name in RECORD_FIELDS
)
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 instant (naive: UTC) or a duration back from now: 90s, 15m, 24h, 7d, 1h30m."""
    spec = text.strip()
    parts = _DURATION.findall(spec)
    if parts and "".join(n + u for n, u in parts) == spec:
        delta = timedelta()
        for number, unit in parts:
            delta += timedelta(**{_UNITS[unit]: int(number)})
        return (now or datetime.now(UTC)) - delta
    try:
        return as_utc(datetime.fromisoformat(spec))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO 8601 time (2026-11-23T09:00:00Z) "
            "nor a duration (90s, 15m, 24h, 7d, 1h30m)"
        ) from None


def _ts_text(raw: object) -> str:
    try:
        return format_ts(read_ts(raw))
    except ValueError:
        return str(raw)


def _detail(raw: object) -> Any:
    try:
        return load_detail(raw)
    except ValueError:
        return raw  # not JSON (tampered): export what is stored


def record(row: Any) -> dict[str, Any]:
    """One entry as a JSON-ready dict with the fields in `RECORD_FIELDS` order."""
    return {
        "seq": int(row.seq),
        "ts": _ts_text(row.ts),
        "kind": row.kind,
        "actor": row.actor,
        "tenant": row.tenant,
        "target": row.target,
        "detail": _detail(row.detail),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


async def iter_entries(
    session: AsyncSession,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    kind: AuditKind | str | None = None,
    after_seq: int = 0,
    batch_size: int = DEFAULT_BATCH,
) -> AsyncIterator[dict[str, Any]]:
    """Entries in seq order with `since <= ts < until` and the given kind, fetched in batches."""
    conditions: list[ColumnElement[bool]] = []
    if since is not None:
        conditions.append(AuditEntry.ts >= as_utc(since))
    if until is not None:
        conditions.append(AuditEntry.ts < as_utc(until))
    if kind is not None:
        conditions.append(AuditEntry.kind == parse_kind(kind).value)
    last = after_seq
    while True:
        rows = (
            await session.execute(
                select(*_COLUMNS)
                .where(AuditEntry.seq > last, *conditions)
                .order_by(AuditEntry.seq)
                .limit(batch_size)
            )
        ).all()
        for row in rows:
            yield record(row)
        if len(rows) < batch_size:
            return
        last = int(rows[-1].seq)


async def last_entries(session: AsyncSession, count: int) -> list[dict[str, Any]]:
    """The newest `count` entries, oldest first."""
    rows = (
        await session.execute(select(*_COLUMNS).order_by(AuditEntry.seq.desc()).limit(count))
    ).all()
    return [record(row) for row in reversed(rows)]
