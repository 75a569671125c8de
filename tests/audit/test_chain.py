"""Append and verify on a real SQLite database, then tamper with it the way an attacker would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from audit_helpers import append_many, forge_entry, raw
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from residency import audit
from residency.audit.canonical import GENESIS_HASH, chain_hash, entry_document, parse_ts
from residency.meta import Database
from residency.meta.models import AuditEntry


async def test_append_links_each_entry_to_the_previous(db: Database) -> None:
    async with db.session() as session:
        first = await audit.append(
            session, audit.PLACEMENT, actor="gateway", target="b/k", detail={"rule": "r1"}
        )
        second = await audit.append(
            session, "admin", actor="root", target="tenant/acme", tenant="acme"
        )
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    expected = chain_hash(
        first.hash,
        entry_document(
            seq=2,
            ts=second.ts,
            kind="admin",
            actor="root",
            tenant="acme",
            target="tenant/acme",
            detail=None,
        ),
    )
    assert second.hash == expected
    report = await audit.verify(db)
    assert report.ok
    assert (report.entries, report.last_seq, report.last_hash) == (2, 2, second.hash)


async def test_empty_log_verifies(db: Database) -> None:
    report = await audit.verify(db)
    assert report.ok
    assert (report.entries, report.last_hash) == (0, GENESIS_HASH)


async def test_rolled_back_transaction_leaves_no_entry_and_no_gap(db: Database) -> None:
    await append_many(db, 2)

    async def failing_change() -> None:
        async with db.session() as session:
            await audit.append(session, "delete", actor="alice", target="b/gone")
            raise RuntimeError("change failed")

    with pytest.raises(RuntimeError, match="change failed"):
        await failing_change()
    await append_many(db, 1)
    async with db.session(write=False) as session:
        seqs = list(await session.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)))
        kinds = list(await session.scalars(select(AuditEntry.kind)))
    assert seqs == [1, 2, 3]
    assert "delete" not in kinds
    assert (await audit.verify(db)).ok


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "coffee"}, "unknown audit kind 'coffee'"),
        ({"detail": {"cost": 1.5}}, "floats have no canonical form"),
        ({"detail": ["not", "a", "mapping"]}, "must be a mapping"),
        ({"actor": ""}, "actor must be a non-empty string"),
        ({"tenant": "t" * 64}, "tenant is longer than 63"),
    ],
)
async def test_bad_entries_are_refused_before_anything_is_written(
    db: Database, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"kind": "placement", "actor": "a", "target": "b/k", **kwargs}
    kind = args.pop("kind")
    async with db.session() as session:
        with pytest.raises(ValueError, match=message):
            await audit.append(session, kind, **args)  # type: ignore[arg-type]
    async with db.session(write=False) as session:
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) == 0
    assert (await audit.verify(db)).ok


async def test_detail_is_stored_as_canonical_json(db: Database, db_file: Path) -> None:
    async with db.session() as session:
        await audit.append(
            session, "placement", actor="a", target="b/k", detail={"z": 1, "a": ("x", "ü")}
        )
    with raw(db_file) as conn:
        (stored,) = conn.execute("SELECT detail FROM audit_entries").fetchone()
    assert stored == '{"a":["x","ü"],"z":1}'


async def test_checkpoints_every_n_entries_and_on_demand(db: Database, db_url: str) -> None:
    key = Ed25519PrivateKey.generate()
    audit.enable_checkpoints(db_url, key, every=4)
    await append_many(db, 10)
    async with db.session() as session:
        on_demand = await audit.checkpoint(session, key)
    async with db.session() as session:
        again = await audit.checkpoint(session, key)
    async with db.session(write=False) as session:
        seqs = list(await session.scalars(select(audit.AuditCheckpoint.seq).order_by("seq")))
    assert seqs == [4, 8, 10]
    assert (on_demand.seq, again.seq, again.signature) == (10, 10, on_demand.signature)
    report = await audit.verify(db, key.public_key())
    assert report.ok
    assert (report.checkpoints, report.signatures_checked) == (3, True)


async def test_checkpoint_of_an_empty_log_is_refused(db: Database) -> None:
    async with db.session() as session:
        with pytest.raises(audit.AuditError, match="empty"):
            await audit.checkpoint(session, Ed25519PrivateKey.generate())


# --- tampering ------------------------------------------------------------------------------


async def _tampered(db: Database, key: Ed25519PrivateKey | None = None) -> audit.Problem:
    # batch_size=3 so the walk crosses batch boundaries around every tampered seq.
    report = await audit.verify(db, key.public_key() if key else None, batch_size=3)
    assert not report.ok, "verify missed the tampering"
    assert report.problem is not None
    return report.problem


@pytest.fixture
async def signed_log(db: Database, db_url: str) -> Ed25519PrivateKey:
    """12 entries with checkpoints at 5 and 10."""
    key = Ed25519PrivateKey.generate()
    audit.enable_checkpoints(db_url, key, every=5)
    await append_many(db, 12)
    assert (await audit.verify(db, key.public_key())).ok
    return key


async def test_edited_detail_is_caught(
    db: Database, db_file: Path, signed_log: Ed25519PrivateKey
) -> None:
    with raw(db_file) as conn:
        conn.execute("UPDATE audit_entries SET detail = ? WHERE seq = 7", ['{"n":700}'])
    problem = await _tampered(db, signed_log)
    assert problem.seq == 7
    assert "content does not match its hash" in problem.message


async def test_edited_actor_in_first_entry_is_caught(db: Database, db_file: Path) -> None:
    await append_many(db, 3)
    with raw(db_file) as conn:
        conn.execute("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 1")
    assert (await _tampered(db)).seq == 1


async def test_changed_hash_is_caught(
    db: Database, db_file: Path, signed_log: Ed25519PrivateKey
) -> None:
    with raw(db_file) as conn:
        conn.execute("UPDATE audit_entries SET hash = ? WHERE seq = 3", ["f" * 64])
    problem = await _tampered(db, signed_log)
    assert problem.seq == 3
    assert "hash" in problem.message


async def test_deleted_middle_entry_is_caught(
    db: Database, db_file: Path, signed_log: Ed25519PrivateKey
) -> None:
    with raw(db_file) as conn:
        conn.execute("DELETE FROM audit_entries WHERE seq = 6")
    problem = await _tampered(db, signed_log)
    assert problem.seq == 6
    assert "missing" in problem.message


async def test_deleted_and_renumbered_entry_is_caught(db: Database, db_file: Path) -> None:
    await append_many(db, 6)
    with raw(db_file) as conn:
        conn.execute("DELETE FROM audit_entries WHERE seq = 3")
        conn.execute("UPDATE audit_entries SET seq = seq - 1 WHERE seq > 3")
    problem = await _tampered(db)
    assert problem.seq == 3
    assert "prev_hash" in problem.message


async def test_swapped_rows_are_caught(
    db: Database, db_file: Path, signed_log: Ed25519PrivateKey
) -> None:
    cols = "ts, kind, actor, tenant, target, detail, prev_hash, hash"
    with raw(db_file) as conn:
        row4 = conn.execute(f"SELECT {cols} FROM audit_entries WHERE seq = 4").fetchone()
        row8 = conn.execute(f"SELECT {cols} FROM audit_entries WHERE seq = 8").fetchone()
        sets = ", ".join(f"{c.strip()} = ?" for c in cols.split(","))
        conn.execute(f"UPDATE audit_entries SET {sets} WHERE seq = 4", row8)
        conn.execute(f"UPDATE audit_entries SET {sets} WHERE seq = 8", row4)
    problem = await _tampered(db, signed_log)
    assert problem.seq == 4


async def test_swapped_details_are_caught(db: Database, db_file: Path) -> None:
    await append_many(db, 5)
    with raw(db_file) as conn:
        d2, d3 = (
            conn.execute("SELECT detail FROM audit_entries WHERE seq = ?", [s]).fetchone()[0]
            for s in (2, 3)
        )
        conn.execute("UPDATE audit_entries SET detail = ? WHERE seq = 2", [d3])
        conn.execute("UPDATE audit_entries SET detail = ? WHERE seq = 3", [d2])
    assert (await _tampered(db)).seq == 2


async def test_inserted_entry_is_caught(db: Database, db_file: Path) -> None:
    """A forged entry spliced in, hashed right against its predecessor, breaks the next link."""
    await append_many(db, 5)
    with raw(db_file) as conn:
        conn.execute("UPDATE audit_entries SET seq = -seq - 1 WHERE seq >= 3")  # make room
        conn.execute("UPDATE audit_entries SET seq = -seq WHERE seq < 0")
        forge_entry(conn, seq=3, after_seq=2)
    problem = await _tampered(db)
    assert problem.seq == 4
    assert "prev_hash" in problem.message


async def test_deleted_tail_after_checkpoint_is_caught(
    db: Database, db_file: Path, signed_log: Ed25519PrivateKey
) -> None:
    # The attacker also winds the chain head back, so only the signed checkpoint at 10 remains.
    with raw(db_file) as conn:
        conn.execute("DELETE FROM audit_entries WHERE seq > 8")
        (h8,) = conn.execute("SELECT hash FROM audit_entries WHERE seq = 8").fetchone()
        conn.execute("UPDATE audit_chain_head SET seq = 8, hash = ?", [h8])
    problem = await _tampered(db, signed_log)
    assert problem.seq == 9
    assert "checkpoint covers seq 10" in problem.message


async def test_deleted_tail_is_caught_by_the_chain_head(db: Database, db_file: Path) -> None:
    await append_many(db, 5)
    with raw(db_file) as conn:
        conn.execute("DELETE FROM audit_entries WHERE seq >= 4")
    problem = await _tampered(db)
    assert problem.seq == 4
    assert "chain head records seq 5" in problem.message


async def test_forged_checkpoint_signature_is_caught(
    db: Database, db_file: Path, signed_log: Ed25519PrivateKey
) -> None:
    with raw(db_file) as conn:
        (sig,) = conn.execute("SELECT signature FROM audit_checkpoints WHERE seq = 10").fetchone()
        flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
        conn.execute("UPDATE audit_checkpoints SET signature = ? WHERE seq = 10", [flipped])
    problem = await _tampered(db, signed_log)
    assert problem.seq == 10
    assert "signature is not valid" in problem.message


async def test_checkpoint_signed_by_another_key_is_caught(
    db: Database, db_url: str, signed_log: Ed25519PrivateKey
) -> None:
    mallory = Ed25519PrivateKey.generate()
    await append_many(db, 1)
    async with db.session() as session:
        await audit.checkpoint(session, mallory)  # seq 13, signed with the wrong key
    problem = await _tampered(db, signed_log)
    assert problem.seq == 13
    assert "not the given public key" in problem.message


async def test_rewritten_and_rehashed_chain_is_caught_by_the_signed_checkpoint(
    db: Database, db_file: Path, signed_log: Ed25519PrivateKey
) -> None:
    """An attacker without the key edits seq 2 and re-hashes everything after it."""
    with raw(db_file) as conn:
        rows = conn.execute(
            "SELECT seq, ts, kind, actor, tenant, target, detail FROM audit_entries ORDER BY seq"
        ).fetchall()
        prev = GENESIS_HASH
        for seq, ts, kind, actor, tenant, target, detail in rows:
            if seq == 2:
                detail = json.dumps({"n": 2, "locations": ["cn-1"], "why": "rule eu-personal"})
            new = chain_hash(
                prev,
                entry_document(
                    seq=seq,
                    ts=parse_ts(ts),
                    kind=kind,
                    actor=actor,
                    tenant=tenant,
                    target=target,
                    detail=json.loads(detail),
                ),
            )
            conn.execute(
                "UPDATE audit_entries SET detail = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                [detail, prev, new, seq],
            )
            prev = new
        conn.execute("UPDATE audit_chain_head SET hash = ?", [prev])
    problem = await _tampered(db, signed_log)
    assert problem.seq == 5  # the first signed checkpoint after the edit
    assert "signed checkpoint" in problem.message


async def test_entry_appended_behind_the_logs_back_is_caught(db: Database, db_file: Path) -> None:
    await append_many(db, 3)
    with raw(db_file) as conn:
        forge_entry(conn, seq=4, after_seq=3)
    problem = await _tampered(db)
    assert problem.seq == 4
    assert "behind the log's back" in problem.message


async def test_deleted_chain_head_is_caught_and_stops_appends(db: Database, db_file: Path) -> None:
    await append_many(db, 2)
    with raw(db_file) as conn:
        conn.execute("DELETE FROM audit_chain_head")
    problem = await _tampered(db)
    assert "chain head row" in problem.message
    async with db.session() as session:
        with pytest.raises(audit.AuditError, match="chain head row is missing"):
            await audit.append(session, "admin", actor="a", target="t")


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("ts", "2026-01-01 00:00:00.000000"),  # backdated
        ("ts", "not a time"),
        ("ts", 42),
        ("detail", "{not json"),
        ("detail", '{"cost":1.5}'),
        ("kind", "admin"),
        ("tenant", None),
        ("prev_hash", "NOT-HEX"),
    ],
)
async def test_any_edited_column_is_caught_and_named(
    db: Database, db_file: Path, column: str, value: object
) -> None:
    await append_many(db, 6)  # seq 4 has tenant "acme" and kind "placement"
    with raw(db_file) as conn:
        conn.execute(f"UPDATE audit_entries SET {column} = ? WHERE seq = 4", [value])
    problem = await _tampered(db)
    assert problem.seq == 4
    async with db.session(write=False) as session:  # export still runs over the damage
        records = [r async for r in audit.iter_entries(session)]
    assert len(records) == 6


async def test_edited_checkpoint_time_breaks_its_signature(
    db: Database, db_file: Path, signed_log: Ed25519PrivateKey
) -> None:
    with raw(db_file) as conn:
        conn.execute("UPDATE audit_checkpoints SET ts = '2020-01-01 00:00:00.000000'")
    problem = await _tampered(db, signed_log)
    assert problem.seq == 5
    assert "signature is not valid" in problem.message


async def test_anchor_kept_elsewhere_catches_rewrites_and_truncation(
    db: Database, db_file: Path
) -> None:
    await append_many(db, 6)
    async with db.session(write=False) as session:
        kept = [r async for r in audit.iter_entries(session)]
    anchor = audit.Anchor(seq=4, hash=str(kept[3]["hash"]))
    assert (await audit.verify(db, anchors=[anchor])).ok
    wrong = audit.Anchor(seq=4, hash="e" * 64)
    problem = (await audit.verify(db, anchors=[wrong])).problem
    assert problem is not None
    assert (problem.seq, "expected" in problem.message) == (4, True)
    with pytest.raises(ValueError, match="two different hashes"):
        await audit.verify(db, anchors=[anchor, wrong])
    with raw(db_file) as conn:
        conn.execute("DELETE FROM audit_entries WHERE seq > 2")
        (h2,) = conn.execute("SELECT hash FROM audit_entries WHERE seq = 2").fetchone()
        conn.execute("UPDATE audit_chain_head SET seq = 2, hash = ?", [h2])
    assert (await audit.verify(db)).ok  # consistent without outside knowledge
    problem = (await audit.verify(db, anchors=[anchor])).problem
    assert problem is not None
    assert problem.seq == 3


def test_anchor_parsing() -> None:
    h = "AB" * 32
    assert audit.Anchor.parse(f"12:{h}") == audit.Anchor(12, h.lower())
    for bad in ("12", f"-1:{h}", f"12:{h[:-1]}", f"twelve:{h}"):
        with pytest.raises(ValueError, match="SEQ:HASH"):
            audit.Anchor.parse(bad)


async def test_configure_checkpoints_from_settings(db: Database, data_dir: Path) -> None:
    from residency.config import load_settings

    settings = load_settings(data_dir=data_dir)
    key = audit.configure_checkpoints(settings, every=2)
    assert (data_dir / "audit-signing-key.pem").stat().st_mode & 0o777 == 0o600
    await append_many(db, 5)
    report = await audit.verify(db, key.public_key())
    assert report.ok
    assert report.checkpoints == 2
    assert audit.configure_checkpoints(settings).public_key() == key.public_key()  # reused
