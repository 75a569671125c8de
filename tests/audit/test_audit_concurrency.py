"""Appends from several processes at once never fork the chain, and verify never cries wolf."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from residency import audit
from residency.meta import Database
from residency.meta.models import AuditEntry

WORKER = Path(__file__).with_name("append_worker.py")
PROCESSES = 4
APPENDS = 200


def _start(url: str, worker: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), url, str(worker), str(APPENDS), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err


async def test_processes_appending_at_once_keep_one_chain(
    db: Database, db_url: str, data_dir: Path
) -> None:
    procs = [_start(db_url, w, "50", str(data_dir)) for w in range(PROCESSES)]
    # Verify over and over while the workers append: concurrent appends are never tampering.
    verifies = 0
    try:
        while any(p.poll() is None for p in procs):
            report = await audit.verify(db)
            assert report.ok, report.problem
            verifies += 1
    finally:
        _finish(procs)
    assert verifies > 0

    key = audit.load_signing_key(data_dir)
    assert key is not None
    report = await audit.verify(db, key.public_key())
    assert report.ok, report.problem
    assert report.entries == PROCESSES * APPENDS
    assert report.checkpoints == PROCESSES * APPENDS // 50
    async with db.session(write=False) as session:
        rows = (await session.execute(select(AuditEntry.seq, AuditEntry.target))).all()
    assert sorted(seq for seq, _ in rows) == list(range(1, PROCESSES * APPENDS + 1))
    # Every worker's every append is there exactly once.
    assert sorted(t for _, t in rows) == sorted(
        f"bucket/w{w}/k{i}" for w in range(PROCESSES) for i in range(APPENDS)
    )
