"""Appending to the hash chain, inside the caller's transaction (invariant 4).

Why appends from many processes never fork the chain
----------------------------------------------------
The first statement of an append is a write: ``UPDATE audit_chain_head SET seq = seq + 1
RETURNING seq, hash``. Only after it returns do we read anything, and what we read is what that
statement returned. So whoever gets a (seq, prev_hash) holds the chain-head write lock until
its transaction ends, and the next writer sees the committed result:

* SQLite: the UPDATE takes the database's single write lock (write sessions of
  `residency.meta.Database` hold it from ``BEGIN IMMEDIATE``; otherwise the UPDATE waits for
  it up to ``busy_timeout``). In WAL mode a writer always works on the newest snapshot, so
  RETURNING gives the committed head. Reading the head *before* writing would be wrong: a
  deferred transaction's read may see a snapshot that another writer advances before this one
  gets the lock. (If the caller read in a deferred transaction first, SQLite refuses the
  UPDATE with SQLITE_BUSY rather than let it write on a stale snapshot: an error, never a fork.)
* PostgreSQL: the UPDATE takes the row lock on the single head row (the ``SELECT ... FOR
  UPDATE`` pattern, in one statement). Under READ COMMITTED a blocked UPDATE re-reads the row
  once the holder commits, so it increments the committed seq and returns the committed hash;
  under REPEATABLE READ or SERIALIZABLE it fails with a serialisation error instead. Either way
  no two entries get the same seq or prev_hash, and a rolled-back transaction takes its entry
  and its head change with it, leaving no gap.

The price is that audited transactions serialise from their append to their commit, so callers
should append as their last statement, right before commit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import JSON, Table, bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from residency.audit.canonical import canonical_json, chain_hash, entry_document
from residency.audit.checkpoints import schedule_for, write_checkpoint
from residency.audit.errors import AuditError
from residency.audit.kinds import AuditKind, parse_kind
from residency.audit.models import HEAD_ID, AuditChainHead
from residency.meta.models import AuditEntry

# Column widths of audit_entries: refuse clearly instead of letting PostgreSQL truncate-fail.
MAX_ACTOR = 255
MAX_TENANT = 63

_ENTRIES = cast(Table, AuditEntry.__table__)
_HEAD = cast(Table, AuditChainHead.__table__)
_DETAIL_IS_JSON = isinstance(_ENTRIES.c.detail.type, JSON)

# The first statement of every append is this write: it is the lock (see the module docstring).
_TAKE_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == HEAD_ID)
    .values(seq=_HEAD.c.seq + 1)
    .returning(_HEAD.c.seq, _HEAD.c.hash)
)
_INSERT_ENTRY = insert(_ENTRIES)
_MOVE_HEAD = update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(hash=bindparam("new_hash"))


def _check_text(name: str, value: object, limit: int | None, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value:
        raise ValueError(f"audit {name} must be a non-empty string, not {value!r}")
    if limit is not None and len(value) > limit:
        raise ValueError(f"audit {name} is longer than {limit} characters: {value[:40]!r}...")


def stored_detail(detail: Mapping[str, Any] | None) -> tuple[Any, Any]:
    """(value hashed, value stored) for `detail`: both exactly what a reader will get back."""
    if detail is not None and not isinstance(detail, Mapping):
        raise ValueError(f"audit detail must be a mapping or None, not {type(detail).__name__}")
    encoded = canonical_json(detail, path="detail")
    value = json.loads(encoded)
    return value, (value if _DETAIL_IS_JSON else encoded.decode("utf-8"))


def missing_head() -> AuditError:
    return AuditError(
        "the audit chain head row is missing, so nothing can be recorded; "
        "run `residency audit verify` to find out why"
    )


def chained_row(
    seq: int,
    ts: datetime,
    prev_hash: str,
    *,
    kind: AuditKind,
    actor: str,
    tenant: str | None,
    target: str,
    detail: tuple[Any, Any],
) -> dict[str, Any]:
    """The `audit_log` row for entry `seq` after `prev_hash`; `detail` is (hashed, stored)
    from `stored_detail`."""
    hashed, column = detail
    document = entry_document(
        seq=seq, ts=ts, kind=kind.value, actor=actor, tenant=tenant, target=target, detail=hashed
    )
    return {
        "seq": seq,
        "ts": ts,
        "kind": kind.value,
        "actor": actor,
        "tenant": tenant,
        "target": target,
        "detail": column,
        "prev_hash": prev_hash,
        "hash": chain_hash(prev_hash, document),
    }


def load_detail(raw: Any) -> Any:
    """A stored detail back as JSON values (text columns hold canonical JSON)."""
    return json.loads(raw) if isinstance(raw, str | bytes) else raw


async def append(
    session: AsyncSession,
    kind: AuditKind | str,
    *,
    actor: str,
    target: str,
    tenant: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Add one entry to the chain in the caller's transaction and return it.

    It becomes visible, with the change it records, when the caller commits; if the caller
    rolls back, neither happened. `detail` is JSON without floats (see `canonical`). The
    returned `AuditEntry` is a copy of the row written, not attached to the session.
    """
    kind = parse_kind(kind)
    _check_text("actor", actor, MAX_ACTOR)
    _check_text("target", target, None)
    _check_text("tenant", tenant, MAX_TENANT, optional=True)
    hashed_detail, detail_column = stored_detail(detail)

    head = (await session.execute(_TAKE_HEAD)).one_or_none()
    if head is None:
        raise missing_head()
    seq, prev_hash = int(head[0]), str(head[1])
    row = chained_row(
        seq,
        datetime.now(UTC),
        prev_hash,
        kind=kind,
        actor=actor,
        tenant=tenant,
        target=target,
        detail=(hashed_detail, detail_column),
    )
    new_hash = row["hash"]
    # Core statements, not the unit of work: an append is on every write's path, and the ORM's
    # flush machinery costs more than the three statements themselves.
    await session.execute(_INSERT_ENTRY, row)
    await session.execute(_MOVE_HEAD, {"new_hash": new_hash})
    schedule = schedule_for(session)
    if schedule is not None and seq % schedule.every == 0:
        await write_checkpoint(session, schedule.key, seq, new_hash)
    return AuditEntry(**row)
