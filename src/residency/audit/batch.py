"""Many audit entries in one append: the batch counterpart of `residency.audit.append`.

A migration batch commits hundreds of placement changes in one transaction, each needing its
own `migration_step` entry. `append` costs three statements per entry (take the head, insert,
move the head); here the head is taken once for all of them (`seq = seq + n`, the same
lock-first write `append` starts with), the entries are chained in memory with the audit
module's own canonical form and hash, inserted with one executemany, and the head moved once.
Checkpoints fall due exactly where `append` would sign them. Like `append`, call it last,
right before the commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from residency.audit.checkpoints import schedule_for, write_checkpoint
from residency.audit.kinds import AuditKind, parse_kind
from residency.audit.log import MAX_ACTOR, chained_row, missing_head, stored_detail
from residency.audit.models import HEAD_ID, AuditChainHead
from residency.meta.models import AuditEntry

__all__ = ["append_many"]

_ENTRIES = cast(Table, AuditEntry.__table__)
_HEAD = cast(Table, AuditChainHead.__table__)


async def append_many(
    session: AsyncSession,
    kind: AuditKind | str,
    entries: Sequence[tuple[str, Mapping[str, Any] | None]],
    *,
    actor: str,
    tenant: str | None = None,
) -> int:
    """Append one entry per (target, detail) in order, in the caller's transaction.

    Returns the seq of the last entry (0 if `entries` is empty, and nothing is written).
    """
    if not entries:
        return 0
    kind = parse_kind(kind)
    if not actor or len(actor) > MAX_ACTOR:
        raise ValueError(f"audit actor must be 1 to {MAX_ACTOR} characters, not {actor!r}")
    details = []
    for target, detail in entries:
        if not isinstance(target, str) or not target:
            raise ValueError(f"audit target must be a non-empty string, not {target!r}")
        details.append(stored_detail(detail))
    n = len(entries)
    # The first statement is the write that locks the head, as in `append`.
    head = (
        await session.execute(
            update(_HEAD)
            .where(_HEAD.c.id == HEAD_ID)
            .values(seq=_HEAD.c.seq + n)
            .returning(_HEAD.c.seq, _HEAD.c.hash)
        )
    ).one_or_none()
    if head is None:
        raise missing_head()
    last_seq, prev_hash = int(head[0]), str(head[1])
    ts = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for seq, (target, _), stored in zip(
        range(last_seq - n + 1, last_seq + 1), entries, details, strict=True
    ):
        row = chained_row(
            seq, ts, prev_hash, kind=kind, actor=actor, tenant=tenant, target=target, detail=stored
        )
        rows.append(row)
        prev_hash = row["hash"]
    await session.execute(insert(_ENTRIES), rows)
    await session.execute(update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(hash=prev_hash))
    schedule = schedule_for(session)
    if schedule is not None:
        for row in rows:
            if row["seq"] % schedule.every == 0:
                await write_checkpoint(session, schedule.key, row["seq"], row["hash"])
    return last_seq
