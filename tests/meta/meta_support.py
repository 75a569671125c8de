"""Helpers shared by the metadata tests (imported by name: test dirs have no __init__)."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from residency.meta import Database
from residency.meta.models import Bucket
from residency.meta.specs import Checksums, VersionAttrs
from residency.meta.writes import Commit, commit_version, fresh_blob_key, register_intents

ATTRS = VersionAttrs(data_class="public")

Put = Callable[..., Awaitable[tuple[Commit, str]]]
"""`await put(bucket, key, body=b"x", locations=(...), attrs=...)` -> (Commit, blob key)"""


async def put_object(
    db: Database,
    bucket: Bucket,
    key: str,
    body: bytes = b"x",
    *,
    locations: tuple[str, ...] = ("loc-a",),
    attrs: VersionAttrs = ATTRS,
) -> tuple[Commit, str]:
    """The write path as the gateway runs it (minus the bytes): intent, then commit."""
    blob = fresh_blob_key()
    async with db.session() as s:
        await register_intents(s, [(loc, blob) for loc in locations])
    md5 = hashlib.md5(body).hexdigest()
    async with db.session() as s:
        commit = await commit_version(
            s,
            bucket,
            key,
            attrs,
            blob_key=blob,
            size=len(body),
            etag=md5,
            checksums=Checksums(md5=md5),
            locations=locations,
        )
    return commit, blob


async def bulk_versions(db: Database, bucket: Bucket, keys: list[str], batch: int = 5000) -> None:
    """Insert latest versions directly (listing tests need rows, not blobs)."""
    from sqlalchemy import insert

    from residency.meta.ids import new_version_id
    from residency.meta.models import ObjectVersion
    from residency.meta.types import utcnow

    now = utcnow()
    for i in range(0, len(keys), batch):
        rows = [
            {
                "bucket_id": bucket.id,
                "key": key,
                "version_id": new_version_id(),
                "is_latest": True,
                "is_delete_marker": False,
                "size": len(key),
                "etag": "0" * 32,
                "user_metadata": {},
                "tags": {},
                "data_class": "public",
                "created": now,
            }
            for key in keys[i : i + batch]
        ]
        async with db.session() as s:
            await s.execute(insert(ObjectVersion), rows)
