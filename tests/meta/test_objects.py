"""The write path (intents, atomic commit, garbage) and the GET hot path."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from meta_support import ATTRS, Put
from sqlalchemy import event, func, select

from residency.meta import Database
from residency.meta.errors import (
    IntentMissing,
    InvalidArgument,
    InvalidKey,
    InvalidTag,
    NoSuchBucket,
    NoSuchKey,
)
from residency.meta.ids import BLOB_PREFIX
from residency.meta.models import BlobIntent, Bucket, GarbageBlob, ObjectVersion, Segment
from residency.meta.repo import objects
from residency.meta.specs import Checksums, SegmentSpec, VersionAttrs
from residency.meta.writes import (
    abandon_intents,
    commit_version,
    delete_object,
    fresh_blob_key,
    install_version,
    register_intents,
)


async def _garbage(db: Database) -> list[tuple[str, str, str]]:
    async with db.session(write=False) as s:
        rows = await s.execute(
            select(GarbageBlob.location, GarbageBlob.blob_key, GarbageBlob.reason)
        )
        return sorted(tuple(r) for r in rows)  # type: ignore[misc]


async def _count(db: Database, model: type) -> int:
    async with db.session(write=False) as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


def test_fresh_blob_keys_are_sharded_and_unique() -> None:
    keys = {fresh_blob_key() for _ in range(2000)}
    assert len(keys) == 2000
    for key in keys:
        # One level of 256 shards: blobs/3f/3fa2...
        prefix, shard, name = key.split("/")
        assert prefix + "/" == BLOB_PREFIX
        assert len(shard) == 2
        assert name.startswith(shard)
        assert len(name) == 32
        assert set(name) <= set("0123456789abcdef")


async def test_put_then_read_target(db: Database, bucket: Bucket, put: Put) -> None:
    attrs = VersionAttrs(
        data_class="personal.health",
        subject="US",
        subject_count=1200,
        rule="us-sensitive",
        content_type="text/plain",
        user_metadata={"owner": "ops"},
        tags={"team": "a"},
    )
    commit, blob = await put(
        bucket, "dir/é.txt", b"hello", locations=("loc-a", "loc-b"), attrs=attrs
    )
    assert commit.replaced is None
    async with db.session(write=False) as s:
        target = await objects.get_read_target(s, "photos", "dir/é.txt")
    v = target.version
    assert (v.size, v.etag, v.md5) == (5, "5d41402abc4b2a76b9719d911017c592", v.etag)
    assert (v.data_class, v.subject, v.subject_count, v.rule) == (
        "personal.health",
        "US",
        1200,
        "us-sensitive",
    )
    assert (v.content_type, v.user_metadata, v.tags) == (
        "text/plain",
        {"owner": "ops"},
        {"team": "a"},
    )
    assert v.created.tzinfo is not None
    assert [(seg.seq, seg.blob_key, seg.size) for seg in target.segments] == [(0, blob, 5)]
    assert [p.location for p in target.placements] == ["loc-a", "loc-b"]
    assert {p.state for p in target.placements} == {"ready"}
    assert await _count(db, BlobIntent) == 0  # the commit cleared them


async def test_read_target_errors(db: Database, bucket: Bucket) -> None:
    async with db.session(write=False) as s:
        with pytest.raises(NoSuchBucket):
            await objects.get_read_target(s, "nope", "k")
        with pytest.raises(NoSuchKey):
            await objects.get_read_target(s, "photos", "missing")
        assert await objects.find_bucket_and_latest(s, "nope", "k") == (None, None)
        found, version = await objects.find_bucket_and_latest(s, "photos", "missing")
        assert found is not None
        assert version is None


async def test_get_is_two_queries(db: Database, bucket: Bucket, put: Put) -> None:
    await put(bucket, "k", locations=("a", "b", "c"))
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        async with db.session(write=False) as s:
            await objects.get_read_target(s, "photos", "k")
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert len([q for q in statements if q.lstrip().upper().startswith("SELECT")]) == 2


async def test_replacing_turns_old_blobs_into_garbage(
    db: Database, bucket: Bucket, put: Put
) -> None:
    first, old_blob = await put(bucket, "k", b"one", locations=("a", "b"))
    second, new_blob = await put(bucket, "k", b"two", locations=("c",))
    assert second.replaced is not None
    assert second.replaced.version_id == first.version.version_id
    assert await _garbage(db) == [("a", old_blob, "replaced"), ("b", old_blob, "replaced")]
    assert await _count(db, ObjectVersion) == 1
    assert await _count(db, Segment) == 1
    async with db.session(write=False) as s:
        target = await objects.get_read_target(s, "photos", "k")
    assert target.segments[0].blob_key == new_blob
    assert [p.location for p in target.placements] == ["c"]


async def test_commit_without_intent_is_refused(db: Database, bucket: Bucket) -> None:
    async with db.session() as s:
        await register_intents(s, [("a", "blobs/x")])
    with pytest.raises(IntentMissing, match="at b"):
        async with db.session() as s:
            await commit_version(
                s,
                bucket,
                "k",
                ATTRS,
                blob_key="blobs/x",
                size=1,
                etag="e",
                checksums=Checksums(),
                locations=["a", "b"],
            )
    # Nothing changed: the intent for "a" survives the rolled-back commit.
    assert await _count(db, BlobIntent) == 1
    assert await _count(db, ObjectVersion) == 0


async def test_a_version_is_invisible_until_commit(db: Database, bucket: Bucket, put: Put) -> None:
    await put(bucket, "k", b"old")
    blob = fresh_blob_key()
    async with db.session() as s:
        await register_intents(s, [("a", blob)])
    committed_in_tx = asyncio.Event()
    looked = asyncio.Event()

    async def writer() -> None:
        async with db.session() as s:
            await commit_version(
                s,
                bucket,
                "k",
                ATTRS,
                blob_key=blob,
                size=3,
                etag="new",
                checksums=Checksums(),
                locations=["a"],
            )
            committed_in_tx.set()
            await asyncio.wait_for(looked.wait(), 10)

    async def reader() -> str:
        await committed_in_tx.wait()
        async with db.session(write=False) as s:
            etag = (await objects.get_read_target(s, "photos", "k")).version.etag
        looked.set()
        return etag

    _, seen_during = await asyncio.gather(writer(), reader())
    assert seen_during == hashlib.md5(b"old").hexdigest()  # still the old version
    async with db.session(write=False) as s:
        assert (await objects.get_read_target(s, "photos", "k")).version.etag == "new"


async def test_rollback_leaves_previous_latest_intact(
    db: Database, bucket: Bucket, put: Put
) -> None:
    first, old_blob = await put(bucket, "k", b"old")
    blob = fresh_blob_key()
    async with db.session() as s:
        await register_intents(s, [("loc-a", blob)])

    async def crash_after_commit_statements() -> None:
        async with db.session() as s:
            await commit_version(
                s,
                bucket,
                "k",
                ATTRS,
                blob_key=blob,
                size=3,
                etag="new",
                checksums=Checksums(),
                locations=["loc-a"],
            )
            raise ConnectionError("process died before COMMIT")

    with pytest.raises(ConnectionError):
        await crash_after_commit_statements()
    async with db.session(write=False) as s:
        target = await objects.get_read_target(s, "photos", "k")
        intents = (await s.execute(select(BlobIntent.location, BlobIntent.blob_key))).all()
    assert target.version.version_id == first.version.version_id
    assert target.segments[0].blob_key == old_blob
    assert await _garbage(db) == []
    assert [tuple(i) for i in intents] == [("loc-a", blob)]  # left for the sweep


async def test_abandoned_intents_become_garbage(db: Database) -> None:
    async with db.session() as s:
        await register_intents(s, [("a", "blobs/1"), ("b", "blobs/1")])
    async with db.session() as s:
        await abandon_intents(s, [("a", "blobs/1"), ("b", "blobs/1")])
    assert await _count(db, BlobIntent) == 0
    assert await _garbage(db) == [
        ("a", "blobs/1", "write failed"),
        ("b", "blobs/1", "write failed"),
    ]


async def test_delete_object(db: Database, bucket: Bucket, put: Put) -> None:
    _, blob = await put(bucket, "k", locations=("a",))
    async with db.session() as s:
        gone = await delete_object(s, bucket, "k")
        assert gone.removed is not None
        assert gone.removed.key == "k"
        assert gone.marker is None  # versioning off: no delete marker
        assert (await delete_object(s, bucket, "k")).removed is None
    assert await _garbage(db) == [("a", blob, "deleted")]
    assert await _count(db, Segment) == 0
    async with db.session(write=False) as s:
        with pytest.raises(NoSuchKey):
            await objects.get_latest(s, bucket, "k")


@pytest.mark.parametrize(
    ("key", "error"),
    [
        ("", InvalidArgument),
        ("x" * 1025, InvalidKey),
        ("é" * 513, InvalidKey),
        ("\ud800", InvalidArgument),
    ],
)
async def test_bad_keys(db: Database, bucket: Bucket, put: Put, key: str, error: type) -> None:
    with pytest.raises(error):
        await put(bucket, key)
    assert await _count(db, ObjectVersion) == 0


async def test_longest_key_is_accepted(db: Database, bucket: Bucket, put: Put) -> None:
    key = "é" * 512  # 1024 bytes of UTF-8
    await put(bucket, key)
    async with db.session(write=False) as s:
        assert (await objects.get_latest(s, bucket, key)).key == key


async def test_sizes_are_checked(db: Database, bucket: Bucket) -> None:
    async with db.session() as s:
        await register_intents(s, [("a", "blobs/z")])
    with pytest.raises(InvalidArgument, match="negative"):
        async with db.session() as s:
            await commit_version(
                s,
                bucket,
                "k",
                ATTRS,
                blob_key="blobs/z",
                size=-1,
                etag="e",
                checksums=Checksums(),
                locations=["a"],
            )
    with pytest.raises(InvalidArgument, match="add up to 3, not the object's 4"):
        async with db.session() as s:
            await install_version(
                s,
                bucket,
                "k",
                ATTRS,
                size=4,
                etag="e",
                checksums=Checksums(),
                segments=[SegmentSpec("blobs/1", 1, "e1"), SegmentSpec("blobs/2", 2, "e2")],
                locations=["a"],
            )
    with pytest.raises(InvalidArgument, match="distinct locations"):
        async with db.session() as s:
            await install_version(
                s,
                bucket,
                "k",
                ATTRS,
                size=1,
                etag="e",
                checksums=Checksums(),
                segments=[SegmentSpec("blobs/1", 1, "e1")],
                locations=["a", "a"],
            )
    assert await _count(db, ObjectVersion) == 0


async def test_tags(db: Database, bucket: Bucket, put: Put) -> None:
    await put(bucket, "k")
    async with db.session() as s:
        assert await objects.get_tags(s, bucket, "k") == {}
        await objects.put_tags(s, bucket, "k", {"team": "a b", "path": "x/y:z@w+=._-"})
    async with db.session(write=False) as s:
        assert await objects.get_tags(s, bucket, "k") == {"team": "a b", "path": "x/y:z@w+=._-"}
    async with db.session() as s:
        await objects.put_tags(s, bucket, "k", {})
        assert await objects.get_tags(s, bucket, "k") == {}
        with pytest.raises(NoSuchKey):
            await objects.put_tags(s, bucket, "missing", {"a": "b"})


@pytest.mark.parametrize(
    "tags",
    [
        {f"k{i}": "v" for i in range(11)},
        {"": "v"},
        {"k" * 129: "v"},
        {"k": "v" * 257},
        {"k": "semi;colon"},
    ],
)
def test_bad_tags(tags: dict[str, str]) -> None:
    with pytest.raises(InvalidTag):
        objects.check_tags(tags)


async def test_concurrent_puts_of_one_key_leave_one_latest(
    db: Database, bucket: Bucket, put: Put
) -> None:
    results = await asyncio.gather(*(put(bucket, "hot", f"v{i}".encode()) for i in range(8)))
    blobs = {blob for _, blob in results}
    async with db.session(write=False) as s:
        target = await objects.get_read_target(s, "photos", "hot")
    assert await _count(db, ObjectVersion) == 1
    garbage = {key for _, key, reason in await _garbage(db) if reason == "replaced"}
    assert garbage == blobs - {target.segments[0].blob_key}
    assert len(garbage) == 7


def test_checksums_from_a_storage_write() -> None:
    import zlib

    import google_crc32c

    from residency.storage import BlobInfo

    data = b"hello world"
    info = BlobInfo(
        size=len(data),
        md5=hashlib.md5(data).digest(),
        sha256=hashlib.sha256(data).digest(),
        crc32c=google_crc32c.value(data).to_bytes(4, "big"),
        crc32=zlib.crc32(data).to_bytes(4, "big"),
    )
    cs = Checksums.from_digests(info)
    assert cs.md5 == "5eb63bbbe01eeed093cb22bb8f5acdc3"
    assert cs.sha256 == "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="
    assert cs.crc32c == "yZRlqg=="
    assert cs.crc32 == "DUoRhQ=="
