"""The engine in-process: retries against a flaky destination, bandwidth accounting."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from migrate_support import (
    AWS,
    ORACLE,
    SRC,
    World,
    adopt_and_plan,
    payload,
    placed,
    tiktok_policy,
)

from residency.catalog import load_catalog
from residency.config import load_settings
from residency.meta import Database
from residency.migrate.engine import EngineOptions, Migrator
from residency.migrate.journal import load_plan, run_counts
from residency.migrate.limits import TokenBucket
from residency.storage import (
    BlobStat,
    BlobStore,
    BlobWriter,
    Location,
    LocationUnavailable,
    open_locations,
)
from residency.storage.store import BlobReader


class FlakyLayer:
    """Every `every`-th write fails mid-stream with a transient error (a dropped connection)."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.calls = itertools.count(1)
        self.failures = 0

    def layer(self, inner: BlobStore) -> BlobStore:
        return _FlakyStore(inner, self)


class _FlakyStore:
    def __init__(self, inner: BlobStore, spec: FlakyLayer) -> None:
        self.inner, self.spec = inner, spec

    @property
    def name(self) -> str:
        return self.inner.name

    async def open_writer(
        self, key: str, *, part_size: int | None = None, concurrency: int = 1
    ) -> BlobWriter:
        writer = await self.inner.open_writer(key, part_size=part_size, concurrency=concurrency)
        if next(self.spec.calls) % self.spec.every == 0:
            self.spec.failures += 1
            await writer.abort()
            raise LocationUnavailable("connection reset (injected)", location=self.name, key=key)
        return writer

    async def open_reader(self, key: str, offset: int, length: int | None) -> BlobReader:
        return await self.inner.open_reader(key, offset, length)

    async def stat(self, key: str) -> BlobStat:
        return await self.inner.stat(key)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    def list(self, prefix: str) -> AsyncIterator[BlobStat]:
        return self.inner.list(prefix)

    async def check(self) -> None:
        await self.inner.check()


class DeleteFaults:
    """Deletes at a location fail (`fail` times, a dropped connection) or, with `lie`, report
    success and leave the bytes where they are (a store that acknowledges too early)."""

    def __init__(self, *, fail: int = 0, lie: bool = False) -> None:
        self.fail = fail
        self.lie = lie
        self.calls = 0

    def layer(self, inner: BlobStore) -> BlobStore:
        spec = self

        class _Store(_FlakyStore):
            async def open_writer(
                self, key: str, *, part_size: int | None = None, concurrency: int = 1
            ) -> BlobWriter:
                return await self.inner.open_writer(
                    key, part_size=part_size, concurrency=concurrency
                )

            async def delete(self, key: str) -> None:
                spec.calls += 1
                if spec.fail > 0:
                    spec.fail -= 1
                    raise LocationUnavailable("connection reset (injected)", location=self.name)
                if not spec.lie:
                    await self.inner.delete(key)

        return _Store(inner, FlakyLayer(1))


def garbage_rows(world: World) -> list[tuple[str, str, str, object]]:
    import sqlite3

    con = sqlite3.connect(world.root / "data" / "residency.db")
    try:
        return con.execute(
            "select location, blob_key, reason, claimed from garbage_blobs order by id"
        ).fetchall()
    finally:
        con.close()


def prepare(world: World, n: int, size: int) -> Path:
    for i in range(n):
        world.put_native(f"us/{i:03d}.bin", payload(i, size))
    return adopt_and_plan(world)


def open_world(world: World) -> tuple[Database, dict[str, Location]]:
    settings = load_settings(world.config)
    return Database(settings.db_url), open_locations(settings, load_catalog())


async def test_transient_write_failures_are_retried(world: World) -> None:
    plan = prepare(world, 20, 3000)
    db, locations = open_world(world)
    flaky = FlakyLayer(every=3)
    locations[AWS] = locations[AWS].layer(flaky)
    try:
        header, new = await load_plan(db, plan)
        assert new
        options = EngineOptions(concurrency=4, backoff_base=0.01, backoff_max=0.05)
        result = await Migrator(db, locations, options, policy=tiktok_policy()).run(header.id)
        assert flaky.failures > 0
        assert result.retries == flaky.failures
        assert result.failed == 0
        assert result.done == 20
        counts = await run_counts(db, header.id)
        assert counts["done"] == 20
    finally:
        await db.dispose()
    for i in range(20):
        want = payload(i, 3000)
        assert placed(world, "tiktok", f"us/{i:03d}.bin") == {ORACLE: want, AWS: want}


async def test_permanent_failure_is_reported_and_source_kept(world: World) -> None:
    plan = prepare(world, 3, 100)
    db, locations = open_world(world)
    flaky = FlakyLayer(every=1)  # the destination never accepts a write
    locations[AWS] = locations[AWS].layer(flaky)
    try:
        header, _ = await load_plan(db, plan)
        options = EngineOptions(concurrency=2, max_attempts=3, backoff_base=0.01)
        result = await Migrator(db, locations, options, policy=tiktok_policy()).run(header.id)
        assert result.failed == 3
        assert result.done == 0
        assert all("gave up after 3 attempts" in f.error for f in result.failures)
        async with db.session(write=False) as s:
            from sqlalchemy import text

            rows = (await s.execute(text("select location from placements"))).all()
        assert {r[0] for r in rows} == {SRC}  # nothing released, nothing half-placed
    finally:
        await db.dispose()
    for i in range(3):
        assert placed(world, "tiktok", f"us/{i:03d}.bin") == {SRC: payload(i, 100)}


async def test_bandwidth_limit_accounts_every_byte(world: World) -> None:
    plan = prepare(world, 8, 5000)
    db, locations = open_world(world)
    try:
        header, _ = await load_plan(db, plan)
        migrator = Migrator(
            db,
            locations,
            EngineOptions(concurrency=4, bwlimit=10_000_000, max_rps=10_000),
            policy=tiktok_policy(),
        )
        result = await migrator.run(header.id)
        assert result.done == 8
        assert migrator.bandwidth is not None
        assert migrator.requests is not None
        # Each object is read once from the source and fanned out to both destinations.
        assert migrator.bandwidth.taken == 8 * 5000
        assert result.copied_bytes == 2 * 8 * 5000
        assert migrator.requests.taken >= 8 * 3
    finally:
        await db.dispose()


async def test_token_bucket_makes_callers_wait_for_tokens() -> None:
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(1000, 1000, clock=lambda: now[0], sleep=fake_sleep)
    await bucket.take(1000)  # the initial burst is free
    assert slept == []
    await bucket.take(2500)  # more than the burst: served in slices, 2.5 s of refill
    assert sum(slept) == pytest.approx(2.5)
    assert bucket.taken == 3500
    with pytest.raises(ValueError, match="rate must be positive"):
        TokenBucket(0)


async def test_objects_changed_since_planning_are_skipped(world: World) -> None:
    plan = prepare(world, 4, 200)
    import sqlite3

    # A client overwrote us/001.bin after the plan was made (new version id).
    con = sqlite3.connect(world.root / "data" / "residency.db")
    con.execute("update object_versions set version_id = 'newer' where key = 'us/001.bin'")
    con.commit()
    con.close()
    db, locations = open_world(world)
    try:
        header, _ = await load_plan(db, plan)
        result = await Migrator(
            db, locations, EngineOptions(concurrency=2), policy=tiktok_policy()
        ).run(header.id)
        assert (result.done, result.skipped, result.failed) == (3, 1, 0)
        counts = await run_counts(db, header.id)
        assert (counts["done"], counts["skipped"]) == (3, 1)
    finally:
        await db.dispose()
    assert placed(world, "tiktok", "us/001.bin") == {SRC: payload(1, 200)}


class RangeLog:
    """Records the (offset, length) of every read the source serves."""

    def __init__(self) -> None:
        self.reads: list[tuple[int, int | None]] = []

    def layer(self, inner: BlobStore) -> BlobStore:
        return _LoggedStore(inner, self)


class _LoggedStore(_FlakyStore):
    def __init__(self, inner: BlobStore, log: RangeLog) -> None:
        self.inner, self.log = inner, log

    async def open_writer(
        self, key: str, *, part_size: int | None = None, concurrency: int = 1
    ) -> BlobWriter:
        return await self.inner.open_writer(key, part_size=part_size, concurrency=concurrency)

    async def open_reader(self, key: str, offset: int, length: int | None) -> BlobReader:
        self.log.reads.append((offset, length))
        return await self.inner.open_reader(key, offset, length)


async def test_large_blobs_are_read_as_parallel_ranges(world: World) -> None:
    size = 300_000
    plan = prepare(world, 2, size)
    db, locations = open_world(world)
    ranges = RangeLog()
    locations[SRC] = locations[SRC].layer(ranges)
    try:
        header, _ = await load_plan(db, plan)
        options = EngineOptions(
            concurrency=2, range_threshold=100_000, range_size=64 * 1024, range_streams=3
        )
        result = await Migrator(db, locations, options, policy=tiktok_policy()).run(header.id)
        assert (result.done, result.failed) == (2, 0)
    finally:
        await db.dispose()
    part = 64 * 1024
    want = [(off, part) for off in range(0, size - part, part)] + [(4 * part, None)]
    assert sorted(ranges.reads) == sorted(want * 2)
    for i in range(2):
        data = payload(i, size)
        assert placed(world, "tiktok", f"us/{i:03d}.bin") == {ORACLE: data, AWS: data}


async def test_ranged_read_refuses_a_source_that_shrank_or_grew(world: World) -> None:
    from residency.migrate.ranges import ranged_read
    from residency.storage import SizeMismatch

    world.put_native("blob", payload(7, 250_000))
    _, locations = open_world(world)
    src = locations[SRC]
    whole = b"".join(
        [c async for c in ranged_read(src, "blob", 250_000, part_size=60_000, streams=2)]
    )
    assert whole == payload(7, 250_000)
    # Recorded larger than it is now: a middle range comes back short.
    with pytest.raises(SizeMismatch, match="ended early"):
        async for _ in ranged_read(src, "blob", 400_000, part_size=100_000, streams=2):
            pass
    # Recorded smaller: the last range reads on to the real end, so the excess shows.
    grown = [c async for c in ranged_read(src, "blob", 200_000, part_size=60_000, streams=3)]
    assert sum(map(len, grown)) == 250_000
    with pytest.raises(ValueError, match="at least 1"):
        async for _ in ranged_read(src, "blob", 10, part_size=0, streams=1):
            pass


async def test_batcher_groups_submissions_and_routes_each_result() -> None:
    import asyncio

    from residency.migrate.batch import Batcher

    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def flush(items: list[int]) -> list[int | BaseException]:
        batches.append(items)
        if items == [99]:
            raise RuntimeError("database gone")
        await gate.wait()
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher(flush, max_items=4)
    first = asyncio.create_task(batcher.submit(0))
    await asyncio.sleep(0.01)  # the first flush is running: the rest queue behind it
    rest = [asyncio.create_task(batcher.submit(i)) for i in range(1, 7)]
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(first, *rest, return_exceptions=True)
    assert batches == [[0], [1, 2, 3, 4], [5, 6]]
    assert results[0::2] == [0, 20, 40, 60]
    assert [str(e) for e in results[1::2]] == ["odd 1", "odd 3", "odd 5"]
    with pytest.raises(RuntimeError, match="database gone"):
        await batcher.submit(99)
    assert await batcher.submit(8) == 80  # a failed batch does not stop the next


async def test_a_lingering_batcher_flushes_as_soon_as_a_batch_is_full() -> None:
    import asyncio

    from residency.migrate.batch import Batcher

    batches: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        batches.append(items)
        return [i + 1 for i in items]

    # A whole minute of linger, but three items fill the batch: no waiting for the rest.
    batcher: Batcher[int, int] = Batcher(flush, max_items=3, linger=60.0)
    got = await asyncio.wait_for(asyncio.gather(*(batcher.submit(i) for i in range(3))), timeout=30)
    assert got == [1, 2, 3]
    assert batches == [[0, 1, 2]]
    # One item waits for company, until the batcher is told that none is coming.
    lone = asyncio.create_task(batcher.submit(7))
    await asyncio.sleep(0.01)
    assert batches == [[0, 1, 2]]
    batcher.stop_lingering()
    assert await asyncio.wait_for(lone, timeout=30) == 8
    assert batches == [[0, 1, 2], [7]]
    with pytest.raises(ValueError, match="linger"):
        Batcher(flush, linger=-1)


async def test_a_failed_erasure_is_retried_until_it_holds(world: World) -> None:
    plan = prepare(world, 4, 700)
    db, locations = open_world(world)
    faults = DeleteFaults(fail=3)
    locations[SRC] = locations[SRC].layer(faults)
    try:
        header, _ = await load_plan(db, plan)
        options = EngineOptions(concurrency=2, backoff_base=0.01, backoff_max=0.02)
        result = await Migrator(db, locations, options, policy=tiktok_policy()).run(header.id)
    finally:
        await db.dispose()
    assert (result.done, result.erased, result.erase_failures) == (4, 4, [])
    assert faults.calls == 4 + 3
    assert not any((world.dir(SRC) / f"us/{i:03d}.bin").exists() for i in range(4))
    assert garbage_rows(world) == []


async def test_an_erasure_that_does_not_hold_is_reported_and_tried_again(world: World) -> None:
    plan = prepare(world, 3, 700)
    db, locations = open_world(world)
    clean = dict(locations)
    locations[SRC] = locations[SRC].layer(DeleteFaults(lie=True))
    options = EngineOptions(concurrency=2, max_attempts=2, backoff_base=0.01, backoff_max=0.02)
    try:
        header, _ = await load_plan(db, plan)
        result = await Migrator(db, locations, options, policy=tiktok_policy()).run(header.id)
        assert result.done == 3
        assert result.erased == 0
        assert not result.ok
        assert sorted(f.target for f in result.erase_failures) == [
            f"tiktok/us/{i:03d}.bin" for i in range(3)
        ]
        assert all("still there after the delete" in f.error for f in result.erase_failures)
        # Still recorded as bytes that must leave, no longer claimed: nothing is hidden.
        assert sorted(garbage_rows(world)) == [
            (SRC, f"us/{i:03d}.bin", "migrated", None) for i in range(3)
        ]
        assert all((world.dir(SRC) / f"us/{i:03d}.bin").exists() for i in range(3))

        # The next run erases them first, whatever else it has to do.
        again = await Migrator(db, clean, options, policy=tiktok_policy()).run(header.id)
        assert (again.done, again.erased, again.erase_failures) == (0, 3, [])
    finally:
        await db.dispose()
    assert not any((world.dir(SRC) / f"us/{i:03d}.bin").exists() for i in range(3))
    assert garbage_rows(world) == []
