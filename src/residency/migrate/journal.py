"""Journal bookkeeping: load a plan into the database once, then hand out unfinished actions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update

from residency.meta import Database
from residency.meta.models import Bucket
from residency.meta.types import utcnow
from residency.migrate.models import MigrationAction, MigrationRun
from residency.migrate.planfile import PlanHeader, iter_plan, read_plan_header

__all__ = ["RunCounts", "load_plan", "run_counts", "unfinished_actions"]

FINISHED = ("done", "skipped")


async def load_plan(db: Database, path: Path, *, batch_size: int = 2000) -> tuple[PlanHeader, bool]:
    """Journal the plan at `path` (first run) or find its journal (resume); True if new.

    The whole plan goes in with one transaction, so a run killed while loading starts over
    cleanly instead of resuming half a plan. Failed actions of an earlier run are retried.
    """
    header = read_plan_header(path)
    async with db.session() as session:
        run = await session.get(MigrationRun, header.id)
        if run is not None:
            await session.execute(
                update(MigrationAction)
                .where(MigrationAction.run_id == header.id, MigrationAction.failed.is_(True))
                .values(failed=False, error=None)
            )
            return header, False
        session.add(
            MigrationRun(
                id=header.id,
                policy=header.policy,
                header={**header.to_line(), "summary": header.summary},
                created=utcnow(),
            )
        )
        await session.flush()
        batch: list[dict[str, Any]] = []
        now = utcnow()
        for seq, action in enumerate(iter_plan(path)):
            batch.append(
                {
                    "run_id": header.id,
                    "seq": seq,
                    "bucket": action.bucket,
                    "key": action.key,
                    "version_id": action.version_id,
                    "size": action.size,
                    "src": action.src,
                    "copy_to": list(action.copy_to),
                    "delete_from": list(action.delete_from),
                    "state": "pending",
                    "attempts": 0,
                    "failed": False,
                    "updated": now,
                }
            )
            if len(batch) >= batch_size:
                await session.execute(insert(MigrationAction), batch)
                batch = []
        if batch:
            await session.execute(insert(MigrationAction), batch)
    return header, True


async def unfinished_actions(
    db: Database, run_id: str, *, batch_size: int = 500
) -> AsyncIterator[Sequence[MigrationAction]]:
    """Batches of actions not yet done, in plan order (keyset paging: flat memory)."""
    after = 0
    while True:
        async with db.session(write=False) as session:
            rows = (
                await session.scalars(
                    select(MigrationAction)
                    .where(
                        MigrationAction.run_id == run_id,
                        MigrationAction.id > after,
                        MigrationAction.state.not_in(FINISHED),
                    )
                    .order_by(MigrationAction.id)
                    .limit(batch_size)
                )
            ).all()
        if not rows:
            return
        yield rows
        after = rows[-1].id


class RunCounts(dict[str, int]):
    """Actions per state, plus `failed` and `total`, and `bytes_left`."""


async def bucket_policies(db: Database, run_id: str) -> list[tuple[str, str]]:
    """(bucket, its own policy) for each bucket with a policy of its own that an unfinished
    action of the run moves an object of: what the run must be able to load before it starts."""
    async with db.session(write=False) as session:
        rows = await session.execute(
            select(Bucket.name, Bucket.policy)
            .distinct()
            .join(MigrationAction, MigrationAction.bucket == Bucket.name)
            .where(
                MigrationAction.run_id == run_id,
                MigrationAction.state.not_in(FINISHED),
                Bucket.policy.is_not(None),
            )
            .order_by(Bucket.name)
        )
        return [(name, policy) for name, policy in rows if policy]


async def run_counts(db: Database, run_id: str) -> RunCounts:
    counts = RunCounts(total=0, failed=0, bytes_left=0)
    async with db.session(write=False) as session:
        for state, failed, n, size in await session.execute(
            select(
                MigrationAction.state,
                MigrationAction.failed,
                func.count(),
                func.coalesce(func.sum(MigrationAction.size), 0),
            )
            .where(MigrationAction.run_id == run_id)
            .group_by(MigrationAction.state, MigrationAction.failed)
        ):
            counts[state] = counts.get(state, 0) + n
            counts["total"] += n
            if failed:
                counts["failed"] += n
            if state not in FINISHED:
                counts["bytes_left"] += int(size)
    return counts


async def finish_run(db: Database, run_id: str) -> None:
    async with db.session() as session:
        await session.execute(
            update(MigrationRun).where(MigrationRun.id == run_id).values(finished=utcnow())
        )
