"""Concurrent charges from several processes never take a holder past its threshold."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from residency.access.models import LedgerAccount, LedgerCharge
from residency.meta import Database

WORKER = Path(__file__).with_name("ledger_worker.py")


def test_processes_racing_for_one_organisation_stop_at_the_threshold(
    db_path: Path, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(db_path), f"p{i}", "ByteDance", "35", str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    go.touch()
    results = []
    for proc in workers:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    # 140 attempts of one record each against "more than 100": exactly 100 get through.
    assert sum(r["allowed"] for r in results) == 100
    assert sum(r["denied"] for r in results) == 40
    assert asyncio.run(_counts(db_path)) == (100, 100, 1)


async def _counts(db_path: Path) -> tuple[int, int, int]:
    db = Database(f"sqlite+aiosqlite:///{db_path}")
    try:
        async with db.session(write=False) as session:
            records = await session.scalar(select(func.sum(LedgerCharge.records)))
            charges = await session.scalar(select(func.count()).select_from(LedgerCharge))
            accounts = await session.scalar(select(func.count()).select_from(LedgerAccount))
    finally:
        await db.dispose()
    return int(records or 0), int(charges or 0), int(accounts or 0)
