"""Walk the whole chain in bounded memory and name the first entry that is not what was appended.

What each check catches (the first failing one, in seq order, is reported):

* seq not previous + 1: an entry was deleted (or a seq rewritten).
* prev_hash not the previous entry's hash: an entry before it was removed, inserted, reordered
  or rewritten together with its own hash.
* hash not sha256(prev_hash || canonical(entry)): the entry (or its hash) was edited.
* hash differs from a signed checkpoint or from the chain head at that seq: the chain up to
  there was rewritten and re-hashed.
* checkpoint signature invalid (when a public key is given): a forged or altered checkpoint.
* hash differs from an anchor (a (seq, hash) the caller kept elsewhere): rewritten.
* the log ends before the newest checkpoint, an anchor or the chain head: the tail was cut.
* entries beyond the chain head: entries were added without going through `append`.

The head and the newest checkpoint are read before the walk and the head again after it, so
appends that commit while a verify runs are never mistaken for tampering.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import String, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from residency.audit.canonical import (
    GENESIS_HASH,
    CanonicalEncodingError,
    chain_hash,
    entry_document,
    is_hash,
    read_ts,
)
from residency.audit.log import load_detail
from residency.audit.models import HEAD_ID, AuditChainHead, AuditCheckpoint
from residency.audit.signing import checkpoint_message, key_id, signature_valid
from residency.audit.source import LogSource, open_session
from residency.meta.models import AuditEntry

DEFAULT_BATCH = 1000

# Timestamps are read raw (see `read_ts`): a tampered, unparseable value must become a finding
# about its entry, not an exception from the driver layer halfway through a batch.
_ENTRY_COLUMNS = (
    AuditEntry.seq,
    type_coerce(AuditEntry.ts, String).label("ts"),
    AuditEntry.kind,
    AuditEntry.actor,
    AuditEntry.tenant,
    AuditEntry.target,
    AuditEntry.detail,
    AuditEntry.prev_hash,
    AuditEntry.hash,
)
_CHECKPOINT_COLUMNS = (
    AuditCheckpoint.seq,
    AuditCheckpoint.hash,
    type_coerce(AuditCheckpoint.ts, String).label("ts"),
    AuditCheckpoint.key_id,
    AuditCheckpoint.signature,
)


@dataclass(frozen=True)
class Problem:
    """The first thing found wrong: at which seq (None: not tied to one entry) and what."""

    seq: int | None
    message: str

    def __str__(self) -> str:
        return self.message if self.seq is None else f"seq {self.seq}: {self.message}"


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    last_seq: int
    last_hash: str
    checkpoints: int
    signatures_checked: bool
    problem: Problem | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "checkpoints": self.checkpoints,
            "signatures_checked": self.signatures_checked,
            "first_bad_seq": self.problem.seq if self.problem else None,
            "problem": str(self.problem) if self.problem else None,
        }


async def _head(session: AsyncSession) -> tuple[int, str] | None:
    row = (
        await session.execute(
            select(AuditChainHead.seq, AuditChainHead.hash).where(AuditChainHead.id == HEAD_ID)
        )
    ).one_or_none()
    return None if row is None else (int(row[0]), str(row[1]))


def _entry_problem(row: Any, expected_seq: int, prev_hash: str) -> Problem | None:
    seq = int(row.seq)
    if seq != expected_seq:
        return Problem(
            expected_seq,
            f"missing: the chain jumps from seq {expected_seq - 1} to seq {seq} "
            "(entries were deleted)",
        )
    if row.prev_hash != prev_hash:
        return Problem(
            seq,
            f"prev_hash {str(row.prev_hash)[:12]}... is not the hash of seq {seq - 1} "
            f"({prev_hash[:12]}...): an entry before it was removed, inserted, reordered "
            "or rewritten",
        )
    try:
        document = entry_document(
            seq=seq,
            ts=read_ts(row.ts),
            kind=row.kind,
            actor=row.actor,
            tenant=row.tenant,
            target=row.target,
            detail=load_detail(row.detail),
        )
        expected = chain_hash(prev_hash, document)
    except (CanonicalEncodingError, ValueError) as exc:
        return Problem(seq, f"content cannot be hashed ({exc}): entry edited")
    if not is_hash(row.hash) or row.hash != expected:
        return Problem(seq, "content does not match its hash: the entry or its hash was edited")
    return None


def _checkpoint_problem(
    cp: Any, entry_hash: str, public_key: Ed25519PublicKey | None
) -> Problem | None:
    seq = int(cp.seq)
    if cp.hash != entry_hash:
        return Problem(
            seq,
            "hash differs from the signed checkpoint at this seq: "
            "the chain up to here was rewritten and re-hashed",
        )
    if public_key is None:
        return None
    expected_id = key_id(public_key)
    if cp.key_id != expected_id:
        return Problem(
            seq,
            f"checkpoint claims key {cp.key_id}, not the given public key {expected_id}",
        )
    try:
        message = checkpoint_message(seq, str(cp.hash), read_ts(cp.ts))
    except ValueError:
        message = b""  # an unreadable time cannot have been signed
    if not message or not signature_valid(public_key, str(cp.signature), message):
        return Problem(seq, "checkpoint signature is not valid: forged or altered checkpoint")
    return None


@dataclass(frozen=True)
class Anchor:
    """A (seq, hash) kept outside this database, e.g. from `residency audit checkpoint --json`.

    It protects against the one thing local checkpoints cannot: someone who can write the
    database deleting the tail *and* its checkpoints *and* winding the chain head back.
    """

    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Anchor:
        seq, sep, chain_hash = text.partition(":")
        if not sep or not seq.isdigit() or int(seq) < 1 or not is_hash(chain_hash.lower()):
            raise ValueError(f"{text!r} is not SEQ:HASH (a seq and 64 hex digits)")
        return cls(int(seq), chain_hash.lower())


async def _verify(
    session: AsyncSession,
    public_key: Ed25519PublicKey | None,
    anchors: dict[int, str],
    batch_size: int,
) -> VerifyReport:
    checked_cps = 0
    prev_seq, prev_hash = 0, GENESIS_HASH

    def report(problem: Problem | None) -> VerifyReport:
        return VerifyReport(
            entries=prev_seq,
            last_seq=prev_seq,
            last_hash=prev_hash,
            checkpoints=checked_cps,
            signatures_checked=public_key is not None,
            problem=problem,
        )

    head = await _head(session)
    if head is None:
        return report(Problem(None, "the chain head row (audit_chain_head) is missing"))
    newest_cp = int(await session.scalar(select(func.max(AuditCheckpoint.seq))) or 0)

    while True:
        rows = (
            await session.execute(
                select(*_ENTRY_COLUMNS)
                .where(AuditEntry.seq > prev_seq)
                .order_by(AuditEntry.seq)
                .limit(batch_size)
            )
        ).all()
        if not rows:
            break
        cps = {
            int(cp.seq): cp
            for cp in (
                await session.execute(
                    select(*_CHECKPOINT_COLUMNS).where(
                        AuditCheckpoint.seq > prev_seq, AuditCheckpoint.seq <= rows[-1].seq
                    )
                )
            ).all()
        }
        for row in rows:
            problem = _entry_problem(row, prev_seq + 1, prev_hash)
            if problem is None and row.seq == head[0] and row.hash != head[1]:
                problem = Problem(
                    int(row.seq),
                    "hash differs from the chain head's: the chain was rewritten and re-hashed",
                )
            anchored = anchors.get(int(row.seq))
            if problem is None and anchored is not None and anchored != row.hash:
                problem = Problem(
                    int(row.seq),
                    f"hash differs from the expected {anchored[:16]}...: "
                    "the chain up to here was rewritten",
                )
            cp = cps.get(int(row.seq))
            if problem is None and cp is not None:
                problem = _checkpoint_problem(cp, str(row.hash), public_key)
                checked_cps += 1
            if problem is not None:
                return report(problem)
            prev_seq, prev_hash = int(row.seq), str(row.hash)

    if anchors and prev_seq < max(anchors):
        return report(
            Problem(
                prev_seq + 1,
                f"missing: an expected hash was given for seq {max(anchors)} but the log ends "
                f"at seq {prev_seq} (the tail was deleted)",
            )
        )
    if prev_seq < newest_cp:
        return report(
            Problem(
                prev_seq + 1,
                f"missing: a signed checkpoint covers seq {newest_cp} but the log ends at seq "
                f"{prev_seq} (the tail was deleted)",
            )
        )
    if prev_seq < head[0]:
        return report(
            Problem(
                prev_seq + 1,
                f"missing: the chain head records seq {head[0]} but the log ends at seq "
                f"{prev_seq} (the tail was deleted)",
            )
        )
    head_after = await _head(session)
    if head_after is None:
        return report(Problem(None, "the chain head row (audit_chain_head) was deleted"))
    if prev_seq > head_after[0]:
        return report(
            Problem(
                head_after[0] + 1,
                f"not in the chain head (which ends at seq {head_after[0]}): "
                "entries were added behind the log's back",
            )
        )
    return report(None)


async def verify(
    source: LogSource,
    public_key: Ed25519PublicKey | None = None,
    *,
    anchors: Iterable[Anchor] = (),
    batch_size: int = DEFAULT_BATCH,
) -> VerifyReport:
    """Check the whole chain; with `public_key`, also every checkpoint's signature; with
    `anchors`, that the chain still holds each given (seq, hash).

    Memory stays bounded by `batch_size` whatever the log's length. Given a database, it runs
    in one read transaction (one snapshot on SQLite) that does not hold up appends.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    expected: dict[int, str] = {}
    for anchor in anchors:
        if expected.setdefault(anchor.seq, anchor.hash) != anchor.hash:
            raise ValueError(f"two different hashes expected for seq {anchor.seq}")
    async with open_session(source, write=False) as session:
        return await _verify(session, public_key, expected, batch_size)
