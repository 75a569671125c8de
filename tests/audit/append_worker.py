"""A separate process that appends to the audit log, as one gateway worker would.

Usage: python append_worker.py DB_URL WORKER_ID COUNT [CHECKPOINT_EVERY [KEY_DIR]]
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from residency import audit
from residency.meta import Database


async def main(url: str, worker: int, count: int, every: int, key_dir: str | None) -> None:
    db = Database(url)
    if key_dir:
        audit.enable_checkpoints(url, audit.load_or_create_signing_key(Path(key_dir)), every)
    try:
        for i in range(count):
            async with db.session() as session:
                await audit.append(
                    session,
                    audit.PLACEMENT,
                    actor=f"worker-{worker}",
                    target=f"bucket/w{worker}/k{i}",
                    detail={"worker": worker, "i": i},
                )
    finally:
        await db.dispose()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(
            args[0],
            int(args[1]),
            int(args[2]),
            int(args[3]) if len(args) > 3 else 1000,
            args[4] if len(args) > 4 else None,
        )
    )
