"""`residency adopt`: take an existing bucket, in its own key layout, under management.

Nothing is copied: each blob becomes an object whose single placement is the location it is
already at, under its native key (blob key = object key). The listing streams page by page
and rows go in with meta's batched Core inserts (`meta.repo.bulk.add_adopted`) while the
next batch is listed, so memory stays flat
for millions of keys (apart from a `--lookup` table, which is held as a dict). Adopted blobs
are only ever deleted by a migration that verified a copy elsewhere first. Keys already managed
in the bucket are left alone, so adopting again after an interruption just continues.

Classification, first hit wins per field: the lookup row for the key, the first matching
rule of `--rules`, then the policy's own classifiers, the bucket default and the policy default.
Rules match on the key (prefix/regex), on the object's user metadata and, for s3 locations, on
its tags. The listing carries neither, so metadata/tag rules cost one request each per object
(HEAD, GET ?tagging): they are made only when a rule needs them for that key, a bounded number
at a time, one listing batch at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from residency.audit import MIGRATION_STEP, append
from residency.meta import Database
from residency.meta.models import Bucket
from residency.meta.repo import bulk
from residency.meta.repo.buckets import find_bucket
from residency.meta.types import utcnow
from residency.policy import Classification, ClassificationError, Policy, classify
from residency.policy.classify import (
    CLASS_HEADER,
    COUNT_HEADER,
    SUBJECT_HEADER,
    normalize_class,
    normalize_count,
    normalize_subject,
)
from residency.storage import (
    BlobNotFound,
    BlobStat,
)
from residency.storage.errors import StorageConfigError, map_opendal_error
from residency.storage.location import Location
from residency.storage.opendal_store import OpendalStore
from residency.storage.s3_tags import S3Tags

__all__ = [
    "AdoptError",
    "AdoptResult",
    "AdoptRule",
    "Classifier",
    "ObjectAttrs",
    "adopt_location",
    "load_lookup",
    "load_rules",
]

ACTOR = "residency adopt"


class AdoptError(Exception):
    """Bad rules or lookup file, or an unusable bucket; the message says where."""


# The metadata names the gateway reads a classification from, without the `x-amz-meta-` prefix;
# `from_metadata: true` / `from_tags: true` use the same names.
CONVENTIONAL = {
    "class": CLASS_HEADER.removeprefix("x-amz-meta-"),
    "subject": SUBJECT_HEADER.removeprefix("x-amz-meta-"),
    "count": COUNT_HEADER.removeprefix("x-amz-meta-"),
}
_META_PREFIX = "x-amz-meta-"


def _metadata_name(name: str) -> str:
    """Metadata names are HTTP header names: case-insensitive, `x-amz-meta-` optional."""
    n = name.strip().lower()
    return n[len(_META_PREFIX) :] if n.startswith(_META_PREFIX) else n


class FromFields(BaseModel):
    """Which metadata keys (or tags) carry the class, subject and subject count."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    data_class: str | None = Field(default=None, alias="class", min_length=1)
    subject: str | None = Field(default=None, min_length=1)
    count: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _something(self) -> FromFields:
        if self.data_class is None and self.subject is None and self.count is None:
            raise ValueError("name at least one of class, subject or count")
        return self


def _from_fields(value: object) -> object:
    """`true` means the conventional names (`residency-class`, ...); `false` means none."""
    if value is True:
        return FromFields(
            data_class=CONVENTIONAL["class"],
            subject=CONVENTIONAL["subject"],
            count=CONVENTIONAL["count"],
        )
    if value is False:
        return None
    return value


def _matcher_values(value: object) -> object:
    """`{name: value}` or `{name: [value, ...]}`; YAML scalars must be quoted strings."""
    if not isinstance(value, dict) or not value:
        raise ValueError("expected a mapping of name: value (or name: [values])")
    out: dict[str, tuple[str, ...]] = {}
    for name, want in value.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"name {name!r} must be a non-empty string")
        wants = want if isinstance(want, list) else [want]
        if not wants or not all(isinstance(w, str) for w in wants):
            raise ValueError(f"{name}: values must be strings (quote numbers and yes/no in YAML)")
        out[name] = tuple(wants)
    return out


class AdoptRule(BaseModel):
    """A rule of `rules.yaml`: matchers (all must match) and the labels it gives.

    Matchers: `prefix` or `regex` on the key; `metadata: {name: value}` on user metadata;
    `tags: {name: value}` on object tags (a list of values means any of them). Labels: fixed
    `class`, `subject`, `count`, and/or `from_metadata` / `from_tags` naming the metadata keys
    or tags that carry them on each object (`true`: `residency-class`, `residency-subject`,
    `residency-subjects`); an object's own value comes before the rule's fixed one.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    prefix: str | None = None
    regex: str | None = None
    metadata: dict[str, tuple[str, ...]] | None = None
    tags: dict[str, tuple[str, ...]] | None = None
    from_metadata: FromFields | None = None
    from_tags: FromFields | None = None
    data_class: str | None = Field(default=None, alias="class")
    subject: str | None = None
    count: int | None = Field(default=None, ge=0)

    @field_validator("metadata", "tags", mode="before")
    @classmethod
    def _matcher_shape(cls, value: object) -> object:
        return None if value is None else _matcher_values(value)

    @field_validator("from_metadata", "from_tags", mode="before")
    @classmethod
    def _from_shape(cls, value: object) -> object:
        return _from_fields(value)

    @model_validator(mode="after")
    def _matchers(self) -> AdoptRule:
        if self.prefix is not None and self.regex is not None:
            raise ValueError("give at most one of prefix or regex")
        if (
            self.prefix is None
            and self.regex is None
            and not self.metadata
            and not self.tags
            and self.from_metadata is None
            and self.from_tags is None
        ):
            raise ValueError(
                "give prefix or regex (key), metadata or tags (object), "
                "or from_metadata / from_tags"
            )
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"bad regex {self.regex!r}: {exc}") from None
        if self.metadata:
            self.metadata = {_metadata_name(k): v for k, v in self.metadata.items()}
        if self.from_metadata is not None:
            self.from_metadata = FromFields(
                data_class=_opt_name(self.from_metadata.data_class),
                subject=_opt_name(self.from_metadata.subject),
                count=_opt_name(self.from_metadata.count),
            )
        return self

    @property
    def needs_metadata(self) -> bool:
        return bool(self.metadata) or self.from_metadata is not None

    @property
    def needs_tags(self) -> bool:
        return bool(self.tags) or self.from_tags is not None

    def matches_key(self, key: str) -> bool:
        if self.prefix is not None:
            return key.startswith(self.prefix)
        if self.regex is not None:
            return re.search(self.regex, key) is not None
        return True

    def matches(self, key: str, attrs: ObjectAttrs | None = None) -> bool:
        """Key matchers, then metadata and tags (an object without them does not match)."""
        if not self.matches_key(key):
            return False
        if self.metadata and not _has_all(attrs.metadata if attrs else None, self.metadata):
            return False
        return not self.tags or _has_all(attrs.tags if attrs else None, self.tags)


def _opt_name(name: str | None) -> str | None:
    return None if name is None else _metadata_name(name)


def _has_all(have: Mapping[str, str] | None, want: Mapping[str, tuple[str, ...]]) -> bool:
    return have is not None and all(have.get(k) in v for k, v in want.items())


@dataclass(frozen=True, slots=True)
class ObjectAttrs:
    """What a HEAD (user metadata, names lower-cased) and GET ?tagging said about an object.

    `None` means not fetched (no rule needed it for this key).
    """

    metadata: Mapping[str, str] | None = None
    tags: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Label:
    data_class: str | None = None
    subject: str | None = None
    count: int | None = None


def load_rules(path: Path) -> list[AdoptRule]:
    """`rules.yaml`: a list of rules, or a mapping with a `rules:` list."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AdoptError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise AdoptError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict):
        data = data.get("rules")
    if not isinstance(data, list):
        raise AdoptError(f"{path}: expected a list of rules (or `rules:` with a list)")
    rules = []
    for i, item in enumerate(data, start=1):
        try:
            rules.append(AdoptRule.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "rule"
            msg = first["msg"].removeprefix("Value error, ")
            raise AdoptError(f"{path}: rule {i}: {where}: {msg}") from None
    return rules


def _lookup_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8", newline="") as f:
        if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            for n, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise AdoptError(f"{path}:{n}: not JSON ({exc.msg})") from None
                    if not isinstance(row, dict):
                        raise AdoptError(f"{path}:{n}: expected a JSON object")
                    yield n, row
        else:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "key" not in reader.fieldnames:
                raise AdoptError(f"{path}:1: the CSV needs a header with a 'key' column")
            for n, row in enumerate(reader, start=2):
                yield n, dict(row)


def load_lookup(path: Path) -> dict[str, Label]:
    """CSV (`key,class,subject,count` header) or JSONL (`{"key":..,"class":..}`) -> labels."""
    labels: dict[str, Label] = {}
    try:
        for n, row in _lookup_rows(path):
            key = row.get("key")
            if not key or not isinstance(key, str):
                raise AdoptError(f"{path}:{n}: missing 'key'")
            count = row.get("count")
            try:
                parsed = int(count) if count not in (None, "") else None
            except (TypeError, ValueError):
                raise AdoptError(f"{path}:{n}: count {count!r} is not a number") from None
            labels[key] = Label(
                data_class=row.get("class") or None,
                subject=row.get("subject") or None,
                count=parsed,
            )
    except FileNotFoundError:
        raise AdoptError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise AdoptError(f"{path}: not UTF-8 text") from None
    return labels


class Classifier:
    """Lookup, then rules, then the policy (its classifiers, bucket default, default class)."""

    def __init__(
        self,
        policy: Policy,
        *,
        rules: Sequence[AdoptRule] = (),
        lookup: dict[str, Label] | None = None,
    ) -> None:
        self.policy = policy
        self.rules = list(rules)
        self.lookup = lookup or {}

    @property
    def needs_metadata(self) -> bool:
        return any(r.needs_metadata for r in self.rules)

    @property
    def needs_tags(self) -> bool:
        return any(r.needs_tags for r in self.rules)

    def wants(self, key: str) -> tuple[bool, bool]:
        """(metadata, tags): which object attributes classifying `key` may consult.

        False when the lookup or earlier key-only rules settle every field first, or when the
        key matchers of every metadata/tag rule already fail: no request is made for nothing.
        """
        label = self.lookup.get(key, Label())
        filled = [label.data_class is not None, label.subject is not None, label.count is not None]
        meta = tags = False
        for rule in self.rules:
            if all(filled):
                break
            if not rule.matches_key(key):
                continue
            if rule.needs_metadata or rule.needs_tags:
                meta, tags = meta or rule.needs_metadata, tags or rule.needs_tags
                continue  # whether it matches is known only once the attributes are read
            filled = [
                filled[0] or rule.data_class is not None,
                filled[1] or rule.subject is not None,
                filled[2] or rule.count is not None,
            ]
        return meta, tags

    def __call__(
        self, key: str, bucket: Bucket, attrs: ObjectAttrs | None = None
    ) -> Classification:
        label = self.lookup.get(key, Label())
        data_class: str | None = label.data_class
        subject: str | None = label.subject
        count: int | None = label.count
        for rule in self.rules:
            if data_class is not None and subject is not None and count is not None:
                break
            if not rule.matches(key, attrs):
                continue
            got = self._carried(
                rule, attrs, need=(data_class is None, subject is None, count is None)
            )
            data_class = data_class or got.data_class or rule.data_class
            subject = subject or got.subject or rule.subject
            if count is None:
                count = got.count if got.count is not None else rule.count
        return classify(
            self.policy,
            key=key,
            explicit_class=data_class,
            explicit_subject=subject,
            explicit_count=count,
            bucket_class=bucket.default_class,
            bucket_subject=bucket.default_subject,
            bucket=bucket.name,
        )

    def _carried(
        self, rule: AdoptRule, attrs: ObjectAttrs | None, *, need: tuple[bool, bool, bool]
    ) -> Label:
        """The still-needed labels an object carries, by `from_metadata` (first), `from_tags`.

        Only needed fields are read and checked: a malformed value that would not be used
        anyway is not an error.
        """
        found: dict[str, tuple[str, str]] = {}  # field -> (where, raw value)
        sources = (
            ("metadata", rule.from_metadata, attrs.metadata if attrs else None),
            ("tag", rule.from_tags, attrs.tags if attrs else None),
        )
        for kind, names, values in sources:
            if names is None or not values:
                continue
            for fld, name, needed in (
                ("class", names.data_class, need[0]),
                ("subject", names.subject, need[1]),
                ("count", names.count, need[2]),
            ):
                if not needed or name is None or fld in found:
                    continue
                if (values.get(name) or "").strip():
                    found[fld] = (f"{kind} {name!r}", values[name])
        data_class = subject = None
        count = None
        if "class" in found:
            data_class = normalize_class(self.policy, found["class"][1], found["class"][0])
        if "subject" in found:
            subject = normalize_subject(self.policy, found["subject"][1], found["subject"][0])
        if "count" in found:
            where, raw = found["count"]
            try:
                count = normalize_count(raw)
            except ClassificationError:
                raise ClassificationError(
                    f"{where}: {raw!r} is not a whole number of data subjects"
                ) from None
        return Label(data_class, subject, count)


# --- reading object attributes ---------------------------------------------------------------


class AttributeReader:
    """Reads user metadata (OpenDAL stat) and, on s3, tags (GetObjectTagging) of listed objects.

    At most `concurrency` objects are being read at once. Construction fails with `AdoptError`
    when the location cannot have what the rules ask for, before anything is listed.
    """

    def __init__(
        self, location: Location, *, metadata: bool, tags: bool, concurrency: int = 16
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.location = location
        self._sem = asyncio.Semaphore(concurrency)
        self._operator: Any = None
        self._tagging: S3Tags | None = None
        scheme = location.config.scheme
        if metadata:
            store = location.store
            if not isinstance(store, OpendalStore):
                raise AdoptError(
                    f"metadata rules need location {location.name} to be read directly; "
                    "its store is wrapped in a Python layer"
                )
            if not store.operator.capability().write_with_user_metadata:
                raise AdoptError(
                    f"metadata rules: location {location.name} ({scheme}) keeps no user "
                    "metadata; use prefix/regex rules or --lookup"
                )
            self._operator = store.operator
        if tags:
            if scheme != "s3":
                raise AdoptError(
                    f"tag rules: location {location.name} is {scheme}; only s3 locations have "
                    "object tags"
                )
            try:
                self._tagging = S3Tags(location.config, concurrency=concurrency)
            except StorageConfigError as exc:
                raise AdoptError(f"tag rules: {exc}") from None

    async def read(self, key: str, *, metadata: bool, tags: bool) -> ObjectAttrs:
        async with self._sem:
            meta = await self._metadata(key) if metadata and self._operator is not None else None
            tagset = await self._tagging.get(key) if tags and self._tagging is not None else None
        return ObjectAttrs(meta, tagset)

    async def _metadata(self, key: str) -> dict[str, str]:
        try:
            stat = await self._operator.stat(key)
        except Exception as exc:
            raise map_opendal_error(exc, location=self.location.name, key=key, op="stat") from exc
        return {k.lower(): v for k, v in (stat.user_metadata or {}).items()}

    def close(self) -> None:
        if self._tagging is not None:
            self._tagging.close()


# --- adopting --------------------------------------------------------------------------------


@dataclass
class AdoptResult:
    listed: int = 0
    adopted: int = 0
    already: int = 0
    bytes: int = 0
    by_class: dict[str, int] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)


async def adopt_location(
    db: Database,
    location: Location,
    bucket_name: str,
    classifier: Classifier,
    *,
    prefix: str = "",
    batch_size: int = 1000,
    concurrency: int = 16,
    on_batch: Callable[[AdoptResult], None] | None = None,
) -> AdoptResult:
    """Adopt every blob under `prefix`; `concurrency` bounds metadata/tag requests in flight."""
    async with db.session(write=False) as session:
        bucket = await find_bucket(session, bucket_name)
    if bucket is None:
        raise AdoptError(f"bucket {bucket_name!r} does not exist; create it first")
    reader = None
    if classifier.needs_metadata or classifier.needs_tags:
        reader = AttributeReader(
            location,
            metadata=classifier.needs_metadata,
            tags=classifier.needs_tags,
            concurrency=concurrency,
        )
    result = AdoptResult()
    # The next batch is listed while one is recorded (memory: two batches of stats).
    batches: asyncio.Queue[tuple[list[BlobStat], bool] | Exception | None] = asyncio.Queue(1)

    async def list_batches() -> None:
        try:
            batch: list[BlobStat] = []
            async for stat in location.list(prefix):
                if stat.key.endswith("/"):
                    continue
                batch.append(stat)
                if len(batch) >= batch_size:
                    await batches.put((batch, True))
                    batch = []
            if batch:
                await batches.put((batch, False))
            await batches.put(None)
        except Exception as exc:  # the consumer raises it
            await batches.put(exc)

    lister = asyncio.create_task(list_batches())
    try:
        while (item := await batches.get()) is not None:
            if isinstance(item, Exception):
                raise item
            batch, full = item
            result.listed += len(batch)
            await _adopt_batch(db, location, bucket, batch, classifier, reader, result)
            if full and on_batch is not None:
                on_batch(result)
    finally:
        lister.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await lister
        if reader is not None:
            reader.close()
    return result


async def _managed(db: Database, bucket: Bucket, keys: list[str]) -> set[str]:
    async with db.session(write=False) as session:
        return await bulk.latest_keys(session, bucket.id, keys)


async def _read_attributes(
    reader: AttributeReader, classifier: Classifier, stats: list[BlobStat], result: AdoptResult
) -> dict[str, ObjectAttrs | None]:
    """Attributes of the keys whose classification may need them; vanished keys map to None."""

    async def one(key: str, meta: bool, tags: bool) -> tuple[str, ObjectAttrs | None]:
        try:
            return key, await reader.read(key, metadata=meta, tags=tags)
        except BlobNotFound:
            return key, None

    tasks = []
    for stat in stats:
        meta, tags = classifier.wants(stat.key)
        if meta or tags:
            tasks.append(asyncio.ensure_future(one(stat.key, meta, tags)))
    try:
        found = dict(await asyncio.gather(*tasks))
    except BaseException:
        # One failure (a dead endpoint, no permission) ends the run: stop the rest first.
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for key, attrs in found.items():
        if attrs is None:
            result.errors.append((key, "gone before its metadata could be read"))
    return found


async def _adopt_batch(
    db: Database,
    location: Location,
    bucket: Bucket,
    batch: list[BlobStat],
    classifier: Classifier,
    reader: AttributeReader | None,
    result: AdoptResult,
) -> None:
    attrs: dict[str, ObjectAttrs | None] = {}
    if reader is not None:
        # Metadata costs a request per object: skip keys adopted before (a resumed run).
        managed = await _managed(db, bucket, [s.key for s in batch])
        fresh = [s for s in batch if s.key not in managed]
        attrs = await _read_attributes(reader, classifier, fresh, result)
    now = utcnow()
    async with db.session() as session:
        existing = await bulk.latest_keys(session, bucket.id, [s.key for s in batch])
        blobs: list[bulk.AdoptedBlob] = []
        for stat in batch:
            if stat.key in existing:
                result.already += 1
                continue
            if stat.key in attrs and attrs[stat.key] is None:
                continue  # deleted between listing and reading its metadata; reported
            try:
                label = classifier(stat.key, bucket, attrs.get(stat.key))
            except ClassificationError as exc:
                result.errors.append((stat.key, str(exc)))
                continue
            blobs.append(
                bulk.AdoptedBlob(
                    key=stat.key,
                    size=stat.size,
                    data_class=label.data_class,
                    subject=label.subject,
                    subject_count=label.subject_count,
                    created=stat.last_modified or now,
                )
            )
            result.by_class[label.data_class] = result.by_class.get(label.data_class, 0) + 1
            result.bytes += stat.size
        if not blobs:
            return
        await bulk.add_adopted(session, bucket.id, location.name, blobs)
        await append(
            session,
            MIGRATION_STEP,
            actor=ACTOR,
            target=f"{bucket.name}/",
            detail={
                "step": "adopt",
                "location": location.name,
                "objects": len(blobs),
                "bytes": sum(b.size for b in blobs),
                "first_key": blobs[0].key,
                "last_key": blobs[-1].key,
            },
        )
        result.adopted += len(blobs)
