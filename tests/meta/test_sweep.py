"""The orphan sweep against real fs locations: garbage and stale intents go, live blobs stay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from residency.catalog.facts import LocationFacts
from residency.config import LocationConfig
from residency.meta import Database
from residency.meta.models import BlobIntent, Bucket, GarbageBlob, Tenant
from residency.meta.repo import multipart, objects
from residency.meta.specs import Checksums, VersionAttrs
from residency.meta.types import utcnow
from residency.meta.writes import commit_version, fresh_blob_key, register_intents
from residency.migrate.sweep import sweep
from residency.storage import BlobNotFound, FaultLayer, Location, open_location

ATTRS = VersionAttrs("public")


def fs_location(tmp_path: Path, name: str, *, faults: FaultLayer | None = None) -> Location:
    cfg = LocationConfig(
        name=name,
        provider="aws",
        region="eu-central-1",
        scheme="fs",
        options={"root": str(tmp_path / name)},
    )
    facts = LocationFacts(
        name=name,
        provider="aws",
        provider_name="Amazon Web Services",
        vendor_hq="US",
        region="eu-central-1",
        city="Frankfurt",
        country="DE",
        continent="Europe",
    )
    return open_location(cfg, facts, layers=[faults] if faults else [])


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _exists(loc: Location, key: str) -> bool:
    try:
        await loc.stat(key)
    except BlobNotFound:
        return False
    return True


async def _write(locs: list[Location], key: str, data: bytes = b"data") -> None:
    for loc in locs:
        await loc.write(key, _chunks(data))


async def _put(db: Database, bucket: Bucket, key: str, locs: list[Location]) -> str:
    """The real write path: intents, bytes, commit."""
    blob = fresh_blob_key()
    async with db.session() as s:
        await register_intents(s, [(loc.name, blob) for loc in locs])
    await _write(locs, blob)
    async with db.session() as s:
        await commit_version(
            s,
            bucket,
            key,
            ATTRS,
            blob_key=blob,
            size=4,
            etag="8d777f385d3dfec8815d20f7496026dc",
            checksums=Checksums(),
            locations=[loc.name for loc in locs],
        )
    return blob


async def _rows(db: Database, model: type) -> int:
    async with db.session(write=False) as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_replaced_and_deleted_blobs_are_swept(
    db: Database, bucket: Bucket, tmp_path: Path
) -> None:
    a, b = fs_location(tmp_path, "loc-a"), fs_location(tmp_path, "loc-b")
    old = await _put(db, bucket, "k", [a, b])
    new = await _put(db, bucket, "k", [a])
    gone = await _put(db, bucket, "other", [b])
    async with db.session() as s:
        from residency.meta.writes import delete_object

        await delete_object(s, bucket, "other")
    assert await _rows(db, GarbageBlob) == 3

    result = await sweep(db, {"loc-a": a, "loc-b": b}, grace=timedelta(0))
    assert (result.deleted, result.still_live, result.failed, result.skipped) == (3, 0, 0, 0)
    assert not await _exists(a, old)
    assert not await _exists(b, old)
    assert not await _exists(b, gone)
    assert await _exists(a, new)
    assert await _rows(db, GarbageBlob) == 0
    async with db.session(write=False) as s:
        target = await objects.get_read_target(s, bucket.name, "k")
    assert target.segments[0].blob_key == new

    again = await sweep(db, {"loc-a": a, "loc-b": b}, grace=timedelta(0))
    assert (again.deleted, again.intents_expired) == (0, 0)


async def test_grace_period_protects_recent_garbage_and_intents(
    db: Database, bucket: Bucket, tmp_path: Path
) -> None:
    a = fs_location(tmp_path, "loc-a")
    old = await _put(db, bucket, "k", [a])
    await _put(db, bucket, "k", [a])
    pending = fresh_blob_key()
    async with db.session() as s:
        await register_intents(s, [("loc-a", pending)])
    await _write([a], pending)  # an upload still in flight

    result = await sweep(db, {"loc-a": a})  # default grace: one hour
    assert (result.deleted, result.intents_expired) == (0, 0)
    assert await _exists(a, old)
    assert await _exists(a, pending)

    later = await sweep(db, {"loc-a": a}, now=utcnow() + timedelta(hours=2))
    assert (later.deleted, later.intents_expired) == (2, 1)
    assert not await _exists(a, old)
    assert not await _exists(a, pending)
    assert await _rows(db, BlobIntent) == 0


async def test_stale_intent_of_a_crashed_write_is_swept(
    db: Database, bucket: Bucket, tmp_path: Path
) -> None:
    a, b = fs_location(tmp_path, "loc-a"), fs_location(tmp_path, "loc-b")
    blob = fresh_blob_key()
    async with db.session() as s:
        await register_intents(s, [("loc-a", blob), ("loc-b", blob)])
    await _write([a], blob)  # crashed before writing loc-b, never committed
    async with db.session() as s:
        await s.execute(update(BlobIntent).values(created=utcnow() - timedelta(hours=3)))

    result = await sweep(db, {"loc-a": a, "loc-b": b})
    assert (result.intents_expired, result.deleted) == (2, 2)  # the missing one is fine too
    assert not await _exists(a, blob)
    assert await _rows(db, GarbageBlob) == 0


async def test_a_commit_after_its_intent_was_swept_is_refused(
    db: Database, bucket: Bucket, tmp_path: Path
) -> None:
    from residency.meta.errors import IntentMissing

    a = fs_location(tmp_path, "loc-a")
    blob = fresh_blob_key()
    async with db.session() as s:
        await register_intents(s, [("loc-a", blob)])
    await _write([a], blob)
    await sweep(db, {"loc-a": a}, now=utcnow() + timedelta(days=1))
    assert not await _exists(a, blob)
    with pytest.raises(IntentMissing):
        async with db.session() as s:
            await commit_version(
                s,
                bucket,
                "k",
                ATTRS,
                blob_key=blob,
                size=4,
                etag="e",
                checksums=Checksums(),
                locations=["loc-a"],
            )
    async with db.session(write=False) as s:
        assert await objects.find_latest(s, bucket, "k") is None


async def test_live_blobs_are_never_deleted(
    db: Database, tenant: Tenant, bucket: Bucket, tmp_path: Path
) -> None:
    """A garbage row that a segment or an open upload's part still needs only loses its row."""
    a, b = fs_location(tmp_path, "loc-a"), fs_location(tmp_path, "loc-b")
    live = await _put(db, bucket, "k", [a])
    async with db.session() as s:
        up = await multipart.create_upload(
            s, bucket, "mp", ATTRS, tenant=tenant, principal=None, locations=["loc-a"]
        )
    part = fresh_blob_key()
    async with db.session() as s:
        await register_intents(s, [("loc-a", part)])
    await _write([a], part)
    async with db.session() as s:
        await multipart.put_part(s, up, 1, blob_key=part, size=4, etag="e", checksums=Checksums())
    # A bookkeeping mistake (or a migration that moved only one copy) lists them as garbage:
    await _write([b], live)
    async with db.session() as s:
        s.add_all(
            [
                GarbageBlob(location="loc-a", blob_key=live, reason="bug", created=utcnow()),
                GarbageBlob(location="loc-a", blob_key=part, reason="bug", created=utcnow()),
                GarbageBlob(location="loc-b", blob_key=live, reason="moved", created=utcnow()),
            ]
        )

    result = await sweep(db, {"loc-a": a, "loc-b": b}, grace=timedelta(0))
    assert (result.still_live, result.deleted) == (2, 1)
    assert await _exists(a, live)
    assert await _exists(a, part)
    assert not await _exists(b, live)  # no placement at loc-b: that copy was garbage
    assert await _rows(db, GarbageBlob) == 0


async def test_unconfigured_and_failing_locations_keep_their_rows(
    db: Database, bucket: Bucket, tmp_path: Path
) -> None:
    a = fs_location(tmp_path, "loc-a")
    broken = fs_location(tmp_path, "loc-b", faults=FaultLayer(fail=("delete",)))
    await _write([a], "blobs/x")
    async with db.session() as s:
        s.add_all(
            [
                GarbageBlob(location="loc-a", blob_key="blobs/x", reason="t", created=utcnow()),
                GarbageBlob(location="loc-b", blob_key="blobs/y", reason="t", created=utcnow()),
                GarbageBlob(location="elsewhere", blob_key="blobs/z", reason="t", created=utcnow()),
            ]
        )
    result = await sweep(db, {"loc-a": a, "loc-b": broken}, grace=timedelta(0), batch_size=2)
    assert (result.deleted, result.failed, result.skipped) == (1, 1, 1)
    async with db.session(write=False) as s:
        left = sorted((await s.execute(select(GarbageBlob.location))).scalars())
    assert left == ["elsewhere", "loc-b"]


async def test_many_garbage_rows_in_batches(db: Database, tmp_path: Path) -> None:
    a = fs_location(tmp_path, "loc-a")
    keys = [fresh_blob_key() for _ in range(25)]
    for key in keys:
        await _write([a], key)
    async with db.session() as s:
        await register_intents(s, [("loc-a", k) for k in keys[:10]])
        s.add_all(
            GarbageBlob(location="loc-a", blob_key=k, reason="t", created=utcnow())
            for k in keys[10:]
        )
    result = await sweep(db, {"loc-a": a}, batch_size=4, now=utcnow() + timedelta(hours=2))
    assert (result.intents_expired, result.deleted) == (10, 25)
    for key in keys:
        assert not await _exists(a, key)


async def test_negative_grace_is_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="grace"):
        await sweep(db, {}, grace=timedelta(seconds=-1))


async def test_writing_a_key_again_takes_its_garbage_over(
    db: Database, bucket: Bucket, tmp_path: Path
) -> None:
    """A migration copying a version back to a location where its old copy is still garbage."""
    a = fs_location(tmp_path, "loc-a")
    blob = fresh_blob_key()
    await _write([a], blob)
    async with db.session() as s:
        old = utcnow() - timedelta(hours=2)  # long due
        s.add(GarbageBlob(location="loc-a", blob_key=blob, reason="moved", created=old))
    async with db.session() as s:
        await register_intents(s, [("loc-a", blob)])  # the writer comes back
    await _write([a], blob, b"new!")
    result = await sweep(db, {"loc-a": a})
    assert (result.deleted, result.intents_expired) == (0, 0)
    assert await _exists(a, blob)
    assert await _rows(db, GarbageBlob) == 0


async def test_a_claimed_blob_cannot_be_written_again(db: Database, tmp_path: Path) -> None:
    from residency.meta.errors import BlobBusy

    async with db.session() as s:
        s.add(
            GarbageBlob(
                location="loc-a",
                blob_key="blobs/k",
                reason="moved",
                created=utcnow(),
                claimed=utcnow(),
            )
        )
    with pytest.raises(BlobBusy, match="orphan sweep"):
        async with db.session() as s:
            await register_intents(s, [("loc-a", "blobs/k")])
    assert await _rows(db, BlobIntent) == 0


async def test_a_failed_delete_releases_its_claim(db: Database, tmp_path: Path) -> None:
    broken = fs_location(tmp_path, "loc-b", faults=FaultLayer(fail=("delete",)))
    async with db.session() as s:
        s.add(GarbageBlob(location="loc-b", blob_key="blobs/y", reason="t", created=utcnow()))
    result = await sweep(db, {"loc-b": broken}, grace=timedelta(0))
    assert result.failed == 1
    async with db.session(write=False) as s:
        row = (await s.scalars(select(GarbageBlob))).one()
    assert row.claimed is None
    async with db.session() as s:  # so a writer is not blocked by a sweep that gave up
        await register_intents(s, [("loc-b", "blobs/y")])


async def test_intent_bookkeeping_uses_indexes(db: Database) -> None:
    """PUTs check garbage and clear intents by key: index seeks, never table scans."""
    from sqlalchemy import event

    from residency.meta.repo.blobs import remove_intents

    statements: list[tuple[str, object]] = []

    def grab(_c: object, _cur: object, statement: str, params: object, *_: object) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "DELETE")):
            statements.append((statement, params))

    event.listen(db.engine.sync_engine, "before_cursor_execute", grab)
    try:
        async with db.session() as s:
            await register_intents(s, [("loc-a", "blobs/1"), ("loc-b", "blobs/1")])
            await remove_intents(s, [("loc-a", "blobs/1"), ("loc-b", "blobs/1")])
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", grab)
    assert len(statements) == 4  # per location: one garbage check, one intent delete
    async with db.session(write=False) as s:
        conn = await s.connection()
        for statement, params in statements:
            plan = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)).all()
            text_plan = " ".join(str(row[-1]) for row in plan)
            assert "USING INDEX" in text_plan, (statement, text_plan)
            assert "SCAN" not in text_plan, (statement, text_plan)
