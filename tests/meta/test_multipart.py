"""Multipart uploads: parts, listings, completion as a manifest, and every way it can fail."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from sqlalchemy import func, select

from residency.meta import Database
from residency.meta.errors import (
    EntityTooSmall,
    IntentMissing,
    InvalidArgument,
    InvalidPart,
    InvalidPartOrder,
    MalformedPartList,
    NoSuchUpload,
)
from residency.meta.models import (
    BlobIntent,
    Bucket,
    GarbageBlob,
    MultipartPart,
    MultipartUpload,
    Segment,
    Tenant,
)
from residency.meta.repo import buckets, multipart, objects
from residency.meta.specs import Checksums, ObjectChecksum, VersionAttrs
from residency.meta.writes import fresh_blob_key, register_intents

LOCS = ["loc-a", "loc-b"]
MIB = 1024 * 1024


async def _create(
    db: Database, tenant: Tenant, bucket: Bucket, key: str = "big.bin", **kw: object
) -> MultipartUpload:
    async with db.session() as s:
        return await multipart.create_upload(
            s,
            bucket,
            key,
            VersionAttrs("personal", subject="EU", content_type="application/x-tar"),
            tenant=tenant,
            principal=None,
            locations=LOCS,
            **kw,  # type: ignore[arg-type]
        )


async def _part(
    db: Database,
    upload: MultipartUpload,
    number: int,
    size: int = 5 * MIB,
    *,
    body: bytes | None = None,
    checksums: Checksums | None = None,
    checksum: str | None = None,
) -> tuple[str, str]:
    """Register intents, 'write' the part, record it; returns (blob key, etag)."""
    blob = fresh_blob_key()
    etag = hashlib.md5(body if body is not None else f"{number}:{size}".encode()).hexdigest()
    async with db.session() as s:
        await register_intents(s, [(loc, blob) for loc in LOCS])
    async with db.session() as s:
        await multipart.put_part(
            s,
            upload,
            number,
            blob_key=blob,
            size=size,
            etag=etag,
            checksums=checksums or Checksums(md5=etag),
            checksum=checksum,
        )
    return blob, etag


async def _garbage(db: Database) -> list[tuple[str, str, str]]:
    async with db.session(write=False) as s:
        rows = await s.execute(
            select(GarbageBlob.location, GarbageBlob.blob_key, GarbageBlob.reason)
        )
        return sorted(tuple(r) for r in rows)  # type: ignore[misc]


async def test_complete_builds_a_manifest_from_the_part_blobs(
    db: Database, tenant: Tenant, bucket: Bucket
) -> None:
    up = await _create(db, tenant, bucket)
    b1, e1 = await _part(db, up, 1)
    b2, e2 = await _part(db, up, 2)
    b3, e3 = await _part(db, up, 3, size=17)
    async with db.session() as s:
        commit = await multipart.complete_upload(
            s, up, [(1, f'"{e1}"'), (2, e2), (3, e3.upper())], bucket=bucket
        )
    v = commit.version
    expected = hashlib.md5(bytes.fromhex(e1) + bytes.fromhex(e2) + bytes.fromhex(e3)).hexdigest()
    assert v.etag == f"{expected}-3"
    assert (v.size, v.part_count) == (10 * MIB + 17, 3)
    assert (v.data_class, v.subject, v.content_type) == ("personal", "EU", "application/x-tar")
    async with db.session(write=False) as s:
        target = await objects.get_read_target(s, bucket.name, "big.bin")
        assert await s.scalar(select(func.count()).select_from(MultipartUpload)) == 0
        assert await s.scalar(select(func.count()).select_from(MultipartPart)) == 0
        assert await s.scalar(select(func.count()).select_from(BlobIntent)) == 0
    assert [(x.seq, x.blob_key, x.size) for x in target.segments] == [
        (0, b1, 5 * MIB),
        (1, b2, 5 * MIB),
        (2, b3, 17),
    ]
    assert sorted(p.location for p in target.placements) == LOCS
    assert await _garbage(db) == []


async def test_unused_and_replaced_parts_become_garbage(
    db: Database, tenant: Tenant, bucket: Bucket
) -> None:
    up = await _create(db, tenant, bucket)
    old2, _ = await _part(db, up, 2)
    new2, e2 = await _part(db, up, 2, body=b"again")  # re-upload replaces part 2
    b1, e1 = await _part(db, up, 1)
    unused, _ = await _part(db, up, 7)
    assert await _garbage(db) == sorted((loc, old2, "part replaced") for loc in LOCS)
    async with db.session() as s:
        await multipart.complete_upload(s, up, [(1, e1), (2, e2)], bucket=bucket)
    assert await _garbage(db) == sorted(
        [(loc, old2, "part replaced") for loc in LOCS]
        + [(loc, unused, "part not in completion") for loc in LOCS]
    )
    async with db.session(write=False) as s:
        target = await objects.get_read_target(s, bucket.name, "big.bin")
    assert [x.blob_key for x in target.segments] == [b1, new2]


async def test_completing_over_an_existing_object_replaces_it(
    db: Database, tenant: Tenant, bucket: Bucket, put: object
) -> None:
    up = await _create(db, tenant, bucket, key="k")
    _, e1 = await _part(db, up, 1, size=3)
    commit_old, old_blob = await put(bucket, "k", locations=("x",))  # type: ignore[operator]
    async with db.session() as s:
        commit = await multipart.complete_upload(s, up, [(1, e1)], bucket=bucket)
    assert commit.replaced is not None
    assert commit.replaced.version_id == commit_old.version.version_id
    assert await _garbage(db) == [("x", old_blob, "replaced")]


@pytest.mark.parametrize(
    ("requested", "error", "words"),
    [
        ([], MalformedPartList, "at least one part"),
        ([(2, "E2"), (1, "E1")], InvalidPartOrder, "ascending"),
        ([(1, "E1"), (1, "E1")], InvalidPartOrder, "ascending"),
        ([(1, "E1"), (4, "E1")], InvalidPart, "part 4"),
        ([(1, "E1"), (2, "0" * 32)], InvalidPart, "part 2"),
        ([(1, "E1"), (2, "E2"), (3, "E3")], EntityTooSmall, "part 2 is 100 bytes"),
    ],
)
async def test_completion_errors_change_nothing(
    db: Database,
    tenant: Tenant,
    bucket: Bucket,
    requested: list[tuple[int, str]],
    error: type,
    words: str,
) -> None:
    up = await _create(db, tenant, bucket)
    etags = {
        "E1": (await _part(db, up, 1))[1],
        "E2": (await _part(db, up, 2, size=100))[1],
        "E3": (await _part(db, up, 3, size=5))[1],
    }
    parts = [(n, etags.get(e, e)) for n, e in requested]
    with pytest.raises(error, match=words) as info:
        async with db.session() as s:
            await multipart.complete_upload(s, up, parts, bucket=bucket)
    assert info.value.code in {"MalformedXML", "InvalidPartOrder", "InvalidPart", "EntityTooSmall"}
    async with db.session(write=False) as s:
        assert (await multipart.list_parts(s, up)).parts  # the upload is untouched
        with pytest.raises(Exception, match="does not exist"):
            await objects.get_latest(s, bucket, "big.bin")
    assert await _garbage(db) == []


async def test_the_last_part_may_be_small_and_a_single_part_any_size(
    db: Database, tenant: Tenant, bucket: Bucket
) -> None:
    up = await _create(db, tenant, bucket)
    _, e1 = await _part(db, up, 1, size=0)
    async with db.session() as s:
        commit = await multipart.complete_upload(s, up, [(1, e1)], bucket=bucket)
    assert commit.version.size == 0


async def test_completion_keeps_the_object_and_part_checksums(
    db: Database, tenant: Tenant, bucket: Bucket
) -> None:
    """The checksum S3 shows is computed by the caller (the gateway) from the chosen parts,
    in order; it lands on the version, each part's on its segment, and the upload id too."""
    up = await _create(db, tenant, bucket, checksum_algorithm="CRC32C")
    _, e1 = await _part(db, up, 1)
    _, e2 = await _part(db, up, 2, size=3, checksum="c2")
    seen: list[list[int]] = []

    def checksum(parts: Sequence[MultipartPart]) -> ObjectChecksum:
        seen.append([p.part_number for p in parts])
        return ObjectChecksum("CRC32C", "COMPOSITE", "abc=-2")

    async with db.session() as s:
        commit = await multipart.complete_upload(
            s, up, [(1, e1), (2, e2)], bucket=bucket, checksum=checksum
        )
        segments = (
            await s.scalars(
                select(Segment.checksum)
                .where(Segment.object_version_id == commit.version.id)
                .order_by(Segment.seq)
            )
        ).all()
    assert seen == [[1, 2]]
    version = commit.version
    assert (version.checksum_algorithm, version.checksum_type, version.checksum) == (
        "CRC32C",
        "COMPOSITE",
        "abc=-2",
    )
    assert version.upload_id == up.upload_id
    assert version.crc32c is None
    assert version.sha256 is None
    assert list(segments) == [None, "c2"]


async def test_a_refusing_checksum_leaves_the_upload(
    db: Database, tenant: Tenant, bucket: Bucket
) -> None:
    up = await _create(db, tenant, bucket, checksum_algorithm="SHA256")
    _, e1 = await _part(db, up, 1, size=3)

    def refuse(parts: Sequence[MultipartPart]) -> ObjectChecksum:
        raise InvalidPart("part 1 has no SHA256 checksum")

    with pytest.raises(InvalidPart, match="no SHA256"):
        async with db.session() as s:
            await multipart.complete_upload(s, up, [(1, e1)], bucket=bucket, checksum=refuse)
    async with db.session() as s:
        assert (await multipart.get_upload(s, bucket, up.key, up.upload_id)) is not None


async def test_bad_creation_arguments(db: Database, tenant: Tenant, bucket: Bucket) -> None:
    with pytest.raises(InvalidArgument, match="checksum algorithm"):
        await _create(db, tenant, bucket, checksum_algorithm="MD4")
    async with db.session() as s:
        with pytest.raises(InvalidArgument, match="distinct locations"):
            await multipart.create_upload(
                s, bucket, "k", VersionAttrs("public"), tenant=tenant, principal=None, locations=[]
            )


@pytest.mark.parametrize("number", [0, -1, 10_001])
async def test_part_number_range(db: Database, tenant: Tenant, bucket: Bucket, number: int) -> None:
    up = await _create(db, tenant, bucket)
    with pytest.raises(InvalidArgument, match="between 1 and 10000"):
        await _part(db, up, number)


async def test_part_needs_its_intents(db: Database, tenant: Tenant, bucket: Bucket) -> None:
    up = await _create(db, tenant, bucket)
    async with db.session() as s:
        await register_intents(s, [("loc-a", "blobs/p")])  # loc-b missing
    with pytest.raises(IntentMissing, match="loc-b"):
        async with db.session() as s:
            await multipart.put_part(
                s, up, 1, blob_key="blobs/p", size=1, etag="0" * 32, checksums=Checksums()
            )


async def test_get_upload_checks_bucket_and_key(
    db: Database, tenant: Tenant, bucket: Bucket
) -> None:
    up = await _create(db, tenant, bucket)
    async with db.session() as s:
        other = await buckets.create_bucket(s, tenant, "other")
    async with db.session(write=False) as s:
        assert (await multipart.get_upload(s, bucket, "big.bin", up.upload_id)).id == up.id
        for b, k, u in [
            (bucket, "other-key", up.upload_id),
            (other, "big.bin", up.upload_id),
            (bucket, "big.bin", "nope"),
        ]:
            with pytest.raises(NoSuchUpload):
                await multipart.get_upload(s, b, k, u)


async def test_abort(db: Database, tenant: Tenant, bucket: Bucket) -> None:
    up = await _create(db, tenant, bucket)
    b1, _ = await _part(db, up, 1)
    b2, _ = await _part(db, up, 2)
    async with db.session() as s:
        assert await multipart.abort_upload(s, up) == 2
    assert await _garbage(db) == sorted(
        (loc, b, "upload aborted") for loc in LOCS for b in (b1, b2)
    )

    async def late(action: str) -> None:
        async with db.session() as s:
            if action == "abort":
                await multipart.abort_upload(s, up)
            elif action == "complete":
                await multipart.complete_upload(s, up, [(1, "x")], bucket=bucket)
            else:
                await register_intents(s, [(loc, "blobs/late") for loc in LOCS])
                await multipart.put_part(
                    s, up, 3, blob_key="blobs/late", size=1, etag="e", checksums=Checksums()
                )

    for action in ("abort", "complete", "part"):
        with pytest.raises(NoSuchUpload):
            await late(action)


async def test_list_parts_pagination(db: Database, tenant: Tenant, bucket: Bucket) -> None:
    up = await _create(db, tenant, bucket)
    for n in (1, 2, 3, 5, 8):
        await _part(db, up, n, size=n)
    seen: list[int] = []
    marker = 0
    while True:
        async with db.session(write=False) as s:
            page = await multipart.list_parts(s, up, part_number_marker=marker, max_parts=2)
        seen += [p.part_number for p in page.parts]
        if not page.is_truncated:
            assert page.next_part_number_marker is None
            break
        assert page.next_part_number_marker == seen[-1]
        marker = page.next_part_number_marker
    assert seen == [1, 2, 3, 5, 8]
    async with db.session(write=False) as s:
        with pytest.raises(InvalidArgument):
            await multipart.list_parts(s, up, max_parts=-1)


async def test_list_uploads(db: Database, tenant: Tenant, bucket: Bucket) -> None:
    made = [await _create(db, tenant, bucket, key=k) for k in ("b/1", "a/1", "b/1", "b/2", "c")]
    expected = sorted(made, key=lambda u: (u.key, u.initiated, u.id))
    seen: list[str] = []
    key_marker = upload_marker = ""
    while True:
        async with db.session(write=False) as s:
            page = await multipart.list_uploads(
                s, bucket, key_marker=key_marker, upload_id_marker=upload_marker, max_uploads=2
            )
        seen += [u.upload_id for u in page.uploads]
        if not page.is_truncated:
            break
        assert page.next_key_marker is not None
        assert page.next_upload_id_marker is not None
        key_marker, upload_marker = page.next_key_marker, page.next_upload_id_marker
    assert seen == [u.upload_id for u in expected]
    async with db.session(write=False) as s:
        page = await multipart.list_uploads(s, bucket, prefix="b/")
        assert [u.key for u in page.uploads] == ["b/1", "b/1", "b/2"]
        page = await multipart.list_uploads(s, bucket, key_marker="b/1")
        assert [u.key for u in page.uploads] == ["b/2", "c"]
        page = await multipart.list_uploads(s, bucket, prefix="%")
        assert page.uploads == []
        page = await multipart.list_uploads(s, bucket, prefix="B/")  # case matters
        assert page.uploads == []


@pytest.mark.parametrize("page_size", [1, 2, 3, 100])
@pytest.mark.parametrize(("prefix", "delimiter"), [("", "/"), ("a/", "/"), ("", ""), ("a", "/x")])
async def test_list_uploads_with_delimiter_paginates_like_s3(
    db: Database, tenant: Tenant, bucket: Bucket, page_size: int, prefix: str, delimiter: str
) -> None:
    keys = ["a/1", "a/1", "a/x/2", "a/x/3", "a/y", "b/1", "c", "c", "d/e/f"]
    made = [await _create(db, tenant, bucket, key=k) for k in keys]
    # The oracle: uploads in (key, initiated, id) order, keys rolled up once per prefix.
    expected: list[tuple[str, str]] = []
    for u in sorted(made, key=lambda u: (u.key, u.initiated, u.id)):
        if not u.key.startswith(prefix):
            continue
        i = u.key.find(delimiter, len(prefix)) if delimiter else -1
        if i < 0:
            expected.append(("upload", u.upload_id))
        elif ("prefix", u.key[: i + len(delimiter)]) not in expected:
            expected.append(("prefix", u.key[: i + len(delimiter)]))
    got: list[tuple[str, str]] = []
    key_marker = upload_marker = ""
    while True:
        async with db.session(write=False) as s:
            page = await multipart.list_uploads(
                s,
                bucket,
                prefix=prefix,
                delimiter=delimiter,
                key_marker=key_marker,
                upload_id_marker=upload_marker,
                max_uploads=page_size,
            )
        assert len(page.uploads) + len(page.common_prefixes) <= page_size
        entries = [(u.key, 0, "upload", u.upload_id) for u in page.uploads]
        entries += [(p, 1, "prefix", p) for p in page.common_prefixes]
        got += [(kind, value) for _, _, kind, value in sorted(entries, key=lambda e: e[0])]
        if not page.is_truncated:
            assert page.next_key_marker is None
            break
        assert page.next_key_marker is not None
        key_marker, upload_marker = page.next_key_marker, page.next_upload_id_marker or ""
    assert got == expected
