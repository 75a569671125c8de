"""`Database.write`: a whole write transaction in one writer-thread hop on SQLite."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from residency.audit import append
from residency.audit.verify import verify
from residency.gateway.writes import abandon_unwritten
from residency.meta import Database
from residency.meta.models import AuditEntry, BlobIntent, Bucket, GarbageBlob, ObjectVersion
from residency.meta.repo.blobs import add_intents
from residency.meta.specs import Checksums, VersionAttrs
from residency.meta.writes import commit_version, fresh_blob_key


async def count(db: Database, model: type) -> int:
    async with db.session(write=False) as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_commits_what_the_unit_did(db: Database, bucket: Bucket) -> None:
    blob = fresh_blob_key()
    await db.write(add_intents, [("here", blob)])
    assert await count(db, BlobIntent) == 1

    async def commit(session: AsyncSession) -> ObjectVersion:
        done = await commit_version(
            session,
            bucket,
            "a.txt",
            VersionAttrs(data_class="public"),
            blob_key=blob,
            size=3,
            etag="e",
            checksums=Checksums(),
            locations=["here"],
        )
        await append(session, "placement", actor="test", target="s3://photos/a.txt")
        return done.version

    version = await db.write(commit)
    assert version.key == "a.txt"
    assert version.id is not None
    assert await count(db, BlobIntent) == 0
    assert await count(db, ObjectVersion) == 1
    async with db.session(write=False) as s:
        assert (await verify(s)).ok


async def test_rolls_back_everything_on_error(db: Database, bucket: Bucket) -> None:
    class Boom(Exception):
        pass

    async def half(session: AsyncSession) -> None:
        await add_intents(session, [("here", fresh_blob_key())])
        await append(session, "placement", actor="test", target="s3://photos/x")
        raise Boom

    before = await count(db, AuditEntry)
    with pytest.raises(Boom):
        await db.write(half)
    assert await count(db, BlobIntent) == 0
    assert await count(db, AuditEntry) == before
    # The rolled-back entry took its chain-head change with it: the next append chains on.
    await db.write(append, "placement", actor="test", target="s3://photos/y")
    async with db.session(write=False) as s:
        assert (await verify(s)).ok


async def test_a_unit_that_really_suspends_is_refused_and_rolled_back(
    db: Database, bucket: Bucket
) -> None:
    async def sleeps(session: AsyncSession) -> None:
        await add_intents(session, [("here", fresh_blob_key())])
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="awaited something other"):
        await db.write(sleeps)
    assert await count(db, BlobIntent) == 0


async def test_nested_write_is_refused(db: Database) -> None:
    async with db.session():
        with pytest.raises(RuntimeError, match="inside another"):
            await db.write(append, "placement", actor="t", target="s3://b/k")


async def test_concurrent_appends_keep_one_chain(db: Database) -> None:
    async def one(i: int) -> None:
        if i % 2:
            await db.write(append, "placement", actor="t", target=f"s3://b/{i}")
        else:
            async with db.session() as s:
                await append(s, "placement", actor="t", target=f"s3://b/{i}")

    await asyncio.gather(*(one(i) for i in range(40)))
    async with db.session(write=False) as s:
        report = await verify(s)
    assert report.ok
    assert await count(db, AuditEntry) >= 40


async def test_abandoning_a_failed_write_spares_committed_blobs(
    db: Database, bucket: Bucket
) -> None:
    committed, failed = fresh_blob_key(), fresh_blob_key()
    await db.write(add_intents, [("here", committed), ("here", failed)])

    async def commit(session: AsyncSession) -> None:
        await commit_version(
            session,
            bucket,
            "kept.txt",
            VersionAttrs(data_class="public"),
            blob_key=committed,
            size=1,
            etag="e",
            checksums=Checksums(),
            locations=["here"],
        )

    await db.write(commit)
    # E.g. a request cancelled while its commit finished in the writer thread: both refs are
    # abandoned, but only the blob no version uses may become garbage.
    await db.write(abandon_unwritten, [("here", committed), ("here", failed)])
    async with db.session(write=False) as s:
        garbage = set((await s.execute(select(GarbageBlob.blob_key))).scalars())
    assert garbage == {failed}
    assert await count(db, BlobIntent) == 0
