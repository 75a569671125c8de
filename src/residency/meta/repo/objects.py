"""Reading objects: the GET hot path, listings (V1/V2 semantics) and tags.

Writes that change which version is visible live in `residency.meta.writes`.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Dialect,
    Select,
    Table,
    and_,
    bindparam,
    false,
    literal_column,
    null,
    select,
    true,
    type_coerce,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, class_mapper
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.orm.instrumentation import manager_of_class

from residency.meta.errors import InvalidArgument, InvalidTag, NoSuchBucket, NoSuchKey
from residency.meta.models import Bucket, ObjectVersion, Placement, Segment
from residency.meta.repo.keyspace import SEEK_BATCH, common_prefix, prefix_end
from residency.meta.repo.rawsql import Prepared

T = TypeVar("T")

MAX_KEYS = 1000
MAX_TAGS = 10
_TAG_CHARS = re.compile(r"[\w\s+\-=.:/@]*")


@dataclass(frozen=True, slots=True)
class ReadTarget:
    """Everything a GET needs: the bucket, the latest version, its blobs and where they are."""

    bucket: Bucket
    version: ObjectVersion
    segments: Sequence[Segment]
    placements: Sequence[Placement]


@dataclass(frozen=True, slots=True)
class Listing:
    """One page of a listing. `next_marker` (when truncated) resumes it as marker/start-after.

    It is the last key or common prefix on the page; resuming from a common prefix skips
    everything under it, as S3 does.
    """

    objects: Sequence[ObjectVersion]
    common_prefixes: Sequence[str]
    is_truncated: bool
    next_marker: str | None


def _latest(bucket_id: int) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    # Spelled exactly like the partial index's WHERE so SQLite's planner can use it.
    return ObjectVersion.bucket_id == bucket_id, ObjectVersion.is_latest == true()


async def find_latest(session: AsyncSession, bucket: Bucket, key: str) -> ObjectVersion | None:
    return await session.scalar(
        select(ObjectVersion).where(*_latest(bucket.id), ObjectVersion.key == key)
    )


_VERSION_TABLE = cast(Table, ObjectVersion.__table__)
_LATEST_ROW = select(_VERSION_TABLE).where(
    _VERSION_TABLE.c.bucket_id == bindparam("bucket_id"),
    _VERSION_TABLE.c.is_latest == true(),
    _VERSION_TABLE.c.key == bindparam("key"),
)


async def latest_version(session: AsyncSession, bucket_id: int, key: str) -> ObjectVersion | None:
    """`find_latest` as a Core query: a detached copy, not an object of the session (for the
    write path, which only reads it before replacing or deleting the row)."""
    row = (await session.execute(_LATEST_ROW, {"bucket_id": bucket_id, "key": key})).first()
    return None if row is None else detached(ObjectVersion, row._mapping)


async def get_latest(session: AsyncSession, bucket: Bucket, key: str) -> ObjectVersion:
    version = await find_latest(session, bucket, key)
    if version is None or version.is_delete_marker:
        raise NoSuchKey(f"The specified key {key!r} does not exist.")
    return version


def _bucket_and_latest(bucket_name: str, key: str) -> Select[Bucket, ObjectVersion]:
    return (
        select(Bucket, ObjectVersion)
        .outerjoin(
            ObjectVersion,
            and_(
                ObjectVersion.bucket_id == Bucket.id,
                ObjectVersion.is_latest == true(),
                ObjectVersion.key == key,
            ),
        )
        .where(Bucket.name == bucket_name)
    )


async def find_bucket_and_latest(
    session: AsyncSession, bucket_name: str, key: str
) -> tuple[Bucket | None, ObjectVersion | None]:
    """Bucket and latest version of `key` in one query (HEAD, conditional requests)."""
    row = (await session.execute(_bucket_and_latest(bucket_name, key))).first()
    if row is None:
        return None, None
    return row.Bucket, row.ObjectVersion


def load_bucket_and_latest(
    session: Session, bucket_name: str, key: str
) -> tuple[Bucket | None, ObjectVersion | None]:
    """`find_bucket_and_latest` for `Database.read` (a conditional PUT's one read hop)."""
    row = session.execute(_bucket_and_latest(bucket_name, key)).first()
    if row is None:
        return None, None
    return row.Bucket, row.ObjectVersion


@dataclass(frozen=True, slots=True)
class ObjectLookup:
    """A bucket and what it holds under one key: the latest live version (None if there is
    none, or it is a delete marker) with its segments and placements (empty without one),
    and the delete marker when that is what the key shows (S3 then says so in headers)."""

    bucket: Bucket
    version: ObjectVersion | None
    segments: Sequence[Segment]
    placements: Sequence[Placement]
    marker: ObjectVersion | None = None


# The GET hot path in Core, built once: per request only the parameters change, and rows
# become ORM objects without the ORM's loading machinery (half of a lookup's Python cost).
def _labelled(model: type[Any], prefix: str) -> list[Any]:
    attrs = class_mapper(model).column_attrs
    return [attr.columns[0].label(f"{prefix}{attr.key}") for attr in attrs]


_BUCKET_COLS = _labelled(Bucket, "b_")
_VERSION_COLS = _labelled(ObjectVersion, "v_")
_PLACEMENT_COLS = _labelled(Placement, "p_")
_SEGMENT_COLS = _labelled(Segment, "")
_LOOKUP = (
    select(*_BUCKET_COLS, *_VERSION_COLS, *_PLACEMENT_COLS)
    .select_from(Bucket)
    .outerjoin(
        ObjectVersion,
        and_(
            ObjectVersion.bucket_id == Bucket.id,
            ObjectVersion.is_latest == true(),
            ObjectVersion.key == bindparam("key"),
        ),
    )
    .outerjoin(Placement, Placement.object_version_id == ObjectVersion.id)
    .where(Bucket.name == bindparam("bucket"))
    .order_by(Placement.id)
)
_VERSION_SEGMENTS = (
    select(*_SEGMENT_COLS).where(Segment.object_version_id == bindparam("id")).order_by(Segment.seq)
)


def _nulls(columns: Sequence[Any], typed: bool) -> list[Any]:
    """NULL stand-ins for `columns` in the other branch of a UNION (typed in the first branch,
    which is where result types, and so the value conversions, come from)."""
    return [(type_coerce(null(), col.type) if typed else null()).label(col.key) for col in columns]


_ALL_SEGMENT_COLS = _labelled(Segment, "s_")
_LATEST_LIVE = and_(
    ObjectVersion.bucket_id == Bucket.id,
    ObjectVersion.is_latest == true(),
    ObjectVersion.key == bindparam("key"),
)
# The whole lookup as ONE statement (SQLite runs a statement as its own read snapshot, so no
# explicit transaction is needed): the bucket, version and placements, one row per placement
# (a single row with NULLs when the key or its placements are missing), then one row per
# segment of a live version. `kind` tells them apart; `ord` orders each part.
_LOOKUP_ALL = union_all(
    select(
        literal_column("0").label("kind"),
        Placement.id.label("ord"),
        *_BUCKET_COLS,
        *_VERSION_COLS,
        *_PLACEMENT_COLS,
        *_nulls(_ALL_SEGMENT_COLS, typed=True),
    )
    .select_from(Bucket)
    .outerjoin(ObjectVersion, _LATEST_LIVE)
    .outerjoin(Placement, Placement.object_version_id == ObjectVersion.id)
    .where(Bucket.name == bindparam("bucket")),
    select(
        literal_column("1"),
        Segment.seq,
        *_nulls(_BUCKET_COLS, typed=False),
        *_nulls(_VERSION_COLS, typed=False),
        *_nulls(_PLACEMENT_COLS, typed=False),
        *_ALL_SEGMENT_COLS,
    )
    .select_from(Bucket)
    .join(ObjectVersion, _LATEST_LIVE)
    .join(Segment, Segment.object_version_id == ObjectVersion.id)
    .where(Bucket.name == bindparam("bucket"), ObjectVersion.is_delete_marker == false()),
).order_by(literal_column("kind"), literal_column("ord"))
_RAW_LOOKUP_ALL = Prepared(_LOOKUP_ALL)


def detached(model: type[T], row: Mapping[Any, Any], prefix: str = "") -> T:
    """An ORM object from a Core row, detached with all its columns loaded (as if queried).

    Filled the way the ORM's own loader fills a new instance (straight into its dict), which
    skips the attribute events of the constructor: there is nothing to track on a read. With
    every column loaded, what `make_transient_to_detached` adds is the identity key, set here
    directly (a quarter of its cost on the GET path).
    """
    labels = _LABELS.get((model, prefix))
    if labels is None:
        labels = _LABELS[model, prefix] = tuple(prefix + key for key in _KEYS[model])
    return _filled(model, [row[label] for label in labels])


def _filled(model: type[T], values: Sequence[Any]) -> T:
    """`detached` from the values of every column, in mapper order (the primary key first)."""
    manager = manager_of_class(model)
    obj = manager.new_instance()
    obj.__dict__.update(zip(_KEYS[model], values, strict=True))
    instance_state(obj).key = manager.mapper.identity_key_from_primary_key((values[0],))
    return obj


_LABELS: dict[tuple[type[Any], str], tuple[str, ...]] = {}
"""Row labels of a model's columns per label prefix, in mapper order."""


_KEYS: dict[type[Any], tuple[str, ...]] = {
    model: tuple(a.key for a in class_mapper(model).column_attrs)
    for model in (Bucket, ObjectVersion, Placement, Segment)
}
if any(keys[0] != "id" for keys in _KEYS.values()):
    raise RuntimeError("`_filled` expects every model's primary key `id` as its first column")


def _span(prepared: Prepared, model: type[Any], prefix: str) -> slice:
    """Where a model's columns (labelled `prefix` + attribute) sit in a `Prepared` row."""
    start = prepared.index[prefix + _KEYS[model][0]]
    span = slice(start, start + len(_KEYS[model]))
    if prepared.names[span] != tuple(prefix + key for key in _KEYS[model]):
        raise RuntimeError(f"the {model.__name__} columns of a lookup are not contiguous")
    return span


_KIND = _RAW_LOOKUP_ALL.index["kind"]
_B = _span(_RAW_LOOKUP_ALL, Bucket, "b_")
_V = _span(_RAW_LOOKUP_ALL, ObjectVersion, "v_")
_P = _span(_RAW_LOOKUP_ALL, Placement, "p_")
_S = _span(_RAW_LOOKUP_ALL, Segment, "s_")
_V_DELETE_MARKER = _RAW_LOOKUP_ALL.index["v_is_delete_marker"]


def lookup_object(
    raw: sqlite3.Connection, dialect: Dialect, bucket_name: str, key: str
) -> ObjectLookup | None:
    """`load_object` for `Database.read_driver`: the same answer from one statement on the
    SQLite driver connection (the GET hot path). Rows are used by position, not as mappings:
    a wide UNION row as a dict cost more than the query."""
    rows = _RAW_LOOKUP_ALL.values(raw, dialect, {"bucket": bucket_name, "key": key})
    if not rows:
        return None
    first = rows[0]
    bucket = _filled(Bucket, first[_B])
    if first[_V][0] is None:
        return ObjectLookup(bucket, None, (), ())
    if first[_V_DELETE_MARKER]:
        return ObjectLookup(bucket, None, (), (), _filled(ObjectVersion, first[_V]))
    version = _filled(ObjectVersion, first[_V])
    placements = []
    segments = []
    for row in rows:
        if row[_KIND]:
            segments.append(_filled(Segment, row[_S]))
        elif row[_P][0] is not None:
            placements.append(_filled(Placement, row[_P]))
    return ObjectLookup(bucket, version, segments, placements)


def load_object(session: Session, bucket_name: str, key: str) -> ObjectLookup | None:
    """Bucket, latest version and its placements in one query, then the segments; None if
    the bucket does not exist (Core, in the caller's transaction: one snapshot).

    A missing key still returns the bucket, so the caller can authorize before saying
    NoSuchKey (whether a key exists is not revealed to someone who may not read it).
    """
    conn = session.connection()
    rows = conn.execute(_LOOKUP, {"bucket": bucket_name, "key": key}).mappings().all()
    first = rows[0] if rows else None
    if first is None or first["v_id"] is None or first["v_is_delete_marker"]:
        return _lookup(rows, [])
    return _lookup(rows, conn.execute(_VERSION_SEGMENTS, {"id": first["v_id"]}).mappings().all())


def _lookup(
    rows: Sequence[Mapping[Any, Any]], segment_rows: Sequence[Mapping[Any, Any]]
) -> ObjectLookup | None:
    if not rows:
        return None
    first = rows[0]
    bucket = detached(Bucket, first, "b_")
    if first["v_id"] is None:
        return ObjectLookup(bucket, None, (), ())
    if first["v_is_delete_marker"]:
        return ObjectLookup(bucket, None, (), (), detached(ObjectVersion, first, "v_"))
    version = detached(ObjectVersion, first, "v_")
    placements = [detached(Placement, r, "p_") for r in rows if r["p_id"] is not None]
    segments = [detached(Segment, r) for r in segment_rows]
    return ObjectLookup(bucket, version, segments, placements)


def load_read_target(session: Session, bucket_name: str, key: str) -> ReadTarget:
    """`load_object` for callers that want NoSuchBucket / NoSuchKey raised."""
    found = load_object(session, bucket_name, key)
    if found is None:
        raise NoSuchBucket(f"The specified bucket {bucket_name!r} does not exist.")
    if found.version is None:
        raise NoSuchKey(f"The specified key {key!r} does not exist.")
    return ReadTarget(found.bucket, found.version, found.segments, found.placements)


async def get_read_target(session: AsyncSession, bucket_name: str, key: str) -> ReadTarget:
    """`load_read_target` inside an async session."""
    return await session.run_sync(lambda s: load_read_target(s, bucket_name, key))


def _segments(version_id: int) -> Select[Segment]:
    return select(Segment).where(Segment.object_version_id == version_id).order_by(Segment.seq)


def _placements(version_id: int) -> Select[Placement]:
    return select(Placement).where(Placement.object_version_id == version_id).order_by(Placement.id)


async def version_blobs(
    session: AsyncSession, version: ObjectVersion
) -> tuple[Sequence[Segment], Sequence[Placement]]:
    segments = (await session.scalars(_segments(version.id))).all()
    placements = (await session.scalars(_placements(version.id))).all()
    return segments, placements


# --- listing -------------------------------------------------------------------------------


async def list_objects(
    session: AsyncSession,
    bucket: Bucket,
    *,
    prefix: str = "",
    delimiter: str = "",
    start_after: str = "",
    max_keys: int = MAX_KEYS,
) -> Listing:
    """List latest versions in key order, rolling keys up into common prefixes.

    Without a delimiter a page is one index range scan. With one, keys are read in small
    batches and each common prefix costs one index seek past it (to `prefix_end(cp)`), never a
    scan of the keys beneath it, so a page is cheap however many objects the bucket holds;
    the listed objects' rows are then fetched in one query.
    """
    if max_keys < 0:
        raise InvalidArgument("max-keys must not be negative")
    max_keys = min(max_keys, MAX_KEYS)
    empty = Listing(objects=[], common_prefixes=[], is_truncated=False, next_marker=None)
    if max_keys == 0:
        return empty
    start = _start(prefix, delimiter, start_after)
    if start is None:
        return empty
    lower, inclusive = start
    upper = prefix_end(prefix)
    if upper is not None and lower >= upper:
        return empty

    def page_query(lower: str, inclusive: bool, limit: int) -> Select[Any]:
        conditions = [
            *_latest(bucket.id),
            ObjectVersion.is_delete_marker == false(),
            ObjectVersion.key >= lower if inclusive else ObjectVersion.key > lower,
        ]
        if upper is not None:
            conditions.append(ObjectVersion.key < upper)
        return select(ObjectVersion).where(*conditions).order_by(ObjectVersion.key).limit(limit)

    if not delimiter:
        rows = (await session.scalars(page_query(lower, inclusive, max_keys + 1))).all()
        truncated = len(rows) > max_keys
        rows = rows[:max_keys]
        return Listing(
            objects=rows,
            common_prefixes=[],
            is_truncated=truncated,
            next_marker=rows[-1].key if truncated else None,
        )

    keys: list[str] = []
    prefixes: list[str] = []
    last: str | None = None
    truncated = False
    batch = SEEK_BATCH
    done = False
    while not done:
        found = (
            await session.scalars(
                page_query(lower, inclusive, batch).with_only_columns(ObjectVersion.key)
            )
        ).all()
        seeked = False
        for key in found:
            if len(keys) + len(prefixes) == max_keys:
                truncated = done = True
                break
            cp = common_prefix(key, prefix, delimiter)
            if cp is None:
                keys.append(key)
                last, lower, inclusive = key, key, False
                continue
            prefixes.append(cp)
            last = cp
            nxt = prefix_end(cp)
            if nxt is None:  # nothing can sort after this prefix
                done = True
            else:
                lower, inclusive, seeked = nxt, True, True
            break
        if done:
            break
        if seeked:
            batch = SEEK_BATCH
        elif len(found) < batch:
            done = True
        else:
            batch = min(batch * 2, MAX_KEYS + 1)
    objects: Sequence[ObjectVersion] = []
    if keys:
        objects = (
            await session.scalars(
                select(ObjectVersion)
                .where(*_latest(bucket.id), ObjectVersion.key.in_(keys))
                .order_by(ObjectVersion.key)
            )
        ).all()
    return Listing(
        objects=objects,
        common_prefixes=prefixes,
        is_truncated=truncated,
        next_marker=last if truncated else None,
    )


def _start(prefix: str, delimiter: str, start_after: str) -> tuple[str, bool] | None:
    """Where a listing begins: (bound, inclusive); None if nothing can follow the marker."""
    if start_after < prefix:
        return prefix, True
    if (
        start_after.startswith(prefix)
        and common_prefix(start_after, prefix, delimiter) == start_after
    ):
        # Resuming after a common prefix (our own next_marker): skip everything under it.
        nxt = prefix_end(start_after)
        return None if nxt is None else (nxt, True)
    return start_after, False


# --- tags ----------------------------------------------------------------------------------


def check_tags(tags: Mapping[str, str]) -> None:
    """S3 object tag limits: at most 10 tags, keys 1-128 and values 0-256 characters."""
    if len(tags) > MAX_TAGS:
        raise InvalidTag(f"Object tags cannot be greater than {MAX_TAGS} (got {len(tags)}).")
    for k, v in tags.items():
        if not 1 <= len(k) <= 128:
            raise InvalidTag(f"The tag key {k!r} must be 1 to 128 characters long.")
        if len(v) > 256:
            raise InvalidTag(f"The tag value for {k!r} must be at most 256 characters long.")
        if not (_TAG_CHARS.fullmatch(k) and _TAG_CHARS.fullmatch(v)):
            raise InvalidTag(
                f"The tag {k!r}={v!r} has characters S3 does not allow "
                "(letters, digits, spaces and + - = . _ : / @)."
            )


async def get_tags(session: AsyncSession, bucket: Bucket, key: str) -> dict[str, str]:
    return dict((await get_latest(session, bucket, key)).tags)


async def put_tags(
    session: AsyncSession, bucket: Bucket, key: str, tags: Mapping[str, str]
) -> ObjectVersion:
    """Replace the tag set of the latest version (an empty mapping deletes all tags)."""
    return await tag_version(session, await get_latest(session, bucket, key), tags)


async def tag_version(
    session: AsyncSession, version: ObjectVersion, tags: Mapping[str, str]
) -> ObjectVersion:
    """Replace the tag set of `version`, an object of `session` (any version, not only the
    current one: S3 tags each version on its own)."""
    check_tags(tags)
    version.tags = dict(tags)
    await session.flush()
    return version
