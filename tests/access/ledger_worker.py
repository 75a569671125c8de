"""Charge the ledger from a separate process (run by test_access_concurrency.py).

argv: DB PRINCIPAL ORGANISATION CHARGES GO_FILE, where DB is a SQLite path or a database URL
(run it by hand against PostgreSQL). Waits for GO_FILE so that every worker starts together,
then prints how many records it was allowed as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from residency.access import Ledger, ObjectRef, PrincipalRef
from residency.meta import Database


async def main(db_path: str, name: str, organisation: str, charges: int, go: Path) -> None:
    db = Database(db_path if "://" in db_path else f"sqlite+aiosqlite:///{db_path}")
    who = PrincipalRef("acme", name, country="CN", covered_person=True, organisation=organisation)
    ledger = Ledger()
    allowed = denied = 0
    try:
        for i in range(charges):
            target = ObjectRef(
                "acme-data", f"{name}/{i}", "acme", "genomic", "US", 1, version_id="v"
            )
            async with db.session() as session:
                decision = await ledger.charge(session, who, target)
            if decision.allowed:
                allowed += decision.records
            else:
                denied += 1
    finally:
        await db.dispose()
    print(json.dumps({"allowed": allowed, "denied": denied}))


if __name__ == "__main__":
    while not Path(sys.argv[5]).exists():  # start together with the other workers
        time.sleep(0.01)
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5])))
