"""Signed checkpoints: every N entries (inside the appending transaction) or on demand.

A checkpoint is the Ed25519 signature of (seq, hash, ts) for the chain head at that moment.
It turns "the chain is internally consistent" into "the chain still contains what was signed":
a rewritten prefix no longer matches the signed hash, and a cut-off tail no longer reaches the
signed seq. Against someone who can also delete checkpoints and wind the chain head back, keep
copies elsewhere (`residency audit checkpoint --json`) and check them with
`residency audit verify --expect SEQ:HASH`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from residency.audit.errors import AuditError
from residency.audit.models import HEAD_ID, AuditChainHead, AuditCheckpoint
from residency.audit.signing import checkpoint_message, key_id, load_or_create_signing_key
from residency.config import Settings
from residency.meta.db import Database

DEFAULT_CHECKPOINT_EVERY = 1000


@dataclass(frozen=True)
class CheckpointSchedule:
    """Sign a checkpoint whenever an appended entry's seq is a multiple of `every`."""

    key: Ed25519PrivateKey
    every: int = DEFAULT_CHECKPOINT_EVERY

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"checkpoint interval must be at least 1, not {self.every}")


# Keyed by database URL: appends find the schedule from their session's engine, so the
# `append(session, ...)` signature stays the same for every caller.
_schedules: dict[str, CheckpointSchedule] = {}


def _url_key(url: str) -> str:
    return make_url(url).render_as_string(hide_password=False)


def enable_checkpoints(
    db_url: str, key: Ed25519PrivateKey, every: int = DEFAULT_CHECKPOINT_EVERY
) -> None:
    """From now on, appends to `db_url` in this process sign a checkpoint every `every` entries.

    Call once at start-up of every process that appends (gateway workers, migration runs).
    """
    _schedules[_url_key(db_url)] = CheckpointSchedule(key=key, every=every)


def configure_checkpoints(
    settings: Settings, db: Database | None = None, every: int | None = None
) -> Ed25519PrivateKey:
    """`enable_checkpoints` for the configured database with the key under `data_dir`.

    Pass the open `db` so the schedule is keyed by the URL its engine really uses (a plain
    `sqlite:///` in the settings becomes `sqlite+aiosqlite:///`). The interval is `every`,
    else `settings.audit_checkpoint_every`. Returns the signing key (created on first use).
    """
    key = load_or_create_signing_key(settings.data_dir)
    interval = every or settings.audit_checkpoint_every
    url = settings.db_url if db is None else db.url.render_as_string(hide_password=False)
    enable_checkpoints(url, key, interval)
    return key


def disable_checkpoints(db_url: str) -> None:
    _schedules.pop(_url_key(db_url), None)


def schedule_for(session: AsyncSession) -> CheckpointSchedule | None:
    if not _schedules:
        return None
    url = session.get_bind().engine.url.render_as_string(hide_password=False)
    return _schedules.get(url)


async def write_checkpoint(
    session: AsyncSession, key: Ed25519PrivateKey, seq: int, chain_hash: str
) -> AuditCheckpoint:
    """Sign and store a checkpoint for (seq, hash); the caller holds the chain-head lock."""
    ts = datetime.now(UTC)
    signature = key.sign(checkpoint_message(seq, chain_hash, ts))
    checkpoint = AuditCheckpoint(
        seq=seq,
        hash=chain_hash,
        ts=ts,
        key_id=key_id(key.public_key()),
        signature=signature.hex(),
    )
    session.add(checkpoint)
    await session.flush()
    return checkpoint


async def checkpoint(session: AsyncSession, key: Ed25519PrivateKey) -> AuditCheckpoint:
    """Sign the current chain head (idempotent: an existing checkpoint at that seq is returned).

    Takes the chain-head lock, like an append, so the head cannot move while it is signed.
    """
    head = (
        await session.execute(
            update(AuditChainHead)
            .where(AuditChainHead.id == HEAD_ID)
            .values(seq=AuditChainHead.seq)
            .returning(AuditChainHead.seq, AuditChainHead.hash)
            .execution_options(synchronize_session=False)
        )
    ).one_or_none()
    if head is None:
        raise AuditError(
            "the audit chain head row is missing; run `residency audit verify` to find out why"
        )
    seq, chain_hash = head
    if seq == 0:
        raise AuditError("the audit log is empty: there is nothing to checkpoint yet")
    existing = await session.scalar(select(AuditCheckpoint).where(AuditCheckpoint.seq == seq))
    if existing is not None:
        return existing
    return await write_checkpoint(session, key, int(seq), str(chain_hash))


async def seal(session: AsyncSession, key: Ed25519PrivateKey) -> AuditCheckpoint | None:
    """`checkpoint`, or None when the log is still empty: for a server's clean shutdown, so
    the last entries it wrote are signed even when they did not reach the next multiple."""
    head_seq = await session.scalar(select(AuditChainHead.seq).where(AuditChainHead.id == HEAD_ID))
    if not head_seq:
        return None
    return await checkpoint(session, key)
