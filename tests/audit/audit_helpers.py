"""Helpers shared by the audit tests (fixtures live in conftest.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from residency import audit
from residency.meta import Database


async def append_many(db: Database, count: int, *, kind: str = "placement") -> None:
    """`count` entries, one transaction each, as a gateway would write them."""
    for i in range(count):
        async with db.session() as session:
            await audit.append(
                session,
                kind,
                actor=f"user-{i % 3}",
                target=f"bucket/key-{i}",
                tenant="acme" if i % 2 else None,
                detail={"n": i, "locations": ["eu-1", "eu-2"], "why": "rule eu-personal"},
            )


@contextmanager
def raw(db_file: Path) -> Iterator[sqlite3.Connection]:
    """The database as an attacker with file access sees it: plain sqlite3, no triggers of ours."""
    with closing(sqlite3.connect(db_file)) as conn:
        yield conn
        conn.commit()


def forge_entry(conn: sqlite3.Connection, seq: int, after_seq: int) -> None:
    """Insert a well-formed entry at `seq` whose prev_hash is the hash of `after_seq`."""
    from residency.audit.canonical import chain_hash, entry_document, parse_ts

    ts, prev_hash = conn.execute(
        "SELECT ts, hash FROM audit_entries WHERE seq = ?", [after_seq]
    ).fetchone()
    forged = chain_hash(
        prev_hash,
        entry_document(
            seq=seq,
            ts=parse_ts(ts),
            kind="admin",
            actor="mallory",
            tenant=None,
            target="policy/allow-all",
            detail=None,
        ),
    )
    conn.execute(
        "INSERT INTO audit_entries"
        " (seq, ts, kind, actor, tenant, target, detail, prev_hash, hash)"
        " VALUES (?, ?, 'admin', 'mallory', NULL, 'policy/allow-all', 'null', ?, ?)",
        [seq, ts, prev_hash, forged],
    )
