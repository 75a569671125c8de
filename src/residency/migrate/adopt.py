"""`residency adopt`: take an existing bucket, in its own key layout, under management.

Nothing is copied: each blob becomes an object whose single placement is the location it is
already at, under its native key (blob key = object key). The listing streams page by page
and rows go in with batched inserts, so memory stays flat for millions of keys (apart from a
`--lookup` table, which is held as a dict). Adopted blobs are only ever deleted by a migration
that verified a copy elsewhere first. Keys already managed in the bucket are left alone, so
adopting again after an interruption just continues.

Classification, first hit wins per field: the lookup row for the key, the first matching
rule of `--rules`, then the policy's own classifiers, the bucket default and the policy default.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import insert, select, true

from residency.audit import MIGRATION_STEP, append
from residency.meta import Database
from residency.meta.ids import new_version_id
from residency.meta.models import Bucket, ObjectVersion, Placement, Segment
from residency.meta.types import utcnow
from residency.policy import Classification, ClassificationError, Policy, classify
from residency.storage import BlobStat, Location

__all__ = [
    "AdoptError",
    "AdoptResult",
    "AdoptRule",
    "Classifier",
    "adopt_location",
    "load_lookup",
    "load_rules",
]

ACTOR = "residency adopt"


class AdoptError(Exception):
    """Bad rules or lookup file, or an unusable bucket; the message says where."""


class AdoptRule(BaseModel):
    """`{prefix|regex, class, subject, count}`: classify keys by their name."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    prefix: str | None = None
    regex: str | None = None
    data_class: str | None = Field(default=None, alias="class")
    subject: str | None = None
    count: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_matcher(self) -> AdoptRule:
        if (self.prefix is None) == (self.regex is None):
            raise ValueError("give exactly one of prefix or regex")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"bad regex {self.regex!r}: {exc}") from None
        return self

    def matches(self, key: str) -> bool:
        if self.prefix is not None:
            return key.startswith(self.prefix)
        return re.search(self.regex or "", key) is not None


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
            raise AdoptError(f"{path}: rule {i}: {where}: {first['msg']}") from None
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

    def __call__(self, key: str, bucket: Bucket) -> Classification:
        label = self.lookup.get(key, Label())
        data_class, subject, count = label.data_class, label.subject, label.count
        for rule in self.rules:
            if (data_class is None or subject is None or count is None) and rule.matches(key):
                data_class = data_class or rule.data_class
                subject = subject or rule.subject
                count = count if count is not None else rule.count
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
    classifier: Callable[[str, Bucket], Classification],
    *,
    prefix: str = "",
    batch_size: int = 1000,
    on_batch: Callable[[AdoptResult], None] | None = None,
) -> AdoptResult:
    async with db.session(write=False) as session:
        bucket = await session.scalar(select(Bucket).where(Bucket.name == bucket_name))
    if bucket is None:
        raise AdoptError(f"bucket {bucket_name!r} does not exist; create it first")
    result = AdoptResult()
    batch: list[BlobStat] = []
    async for stat in location.list(prefix):
        if stat.key.endswith("/"):
            continue
        result.listed += 1
        batch.append(stat)
        if len(batch) >= batch_size:
            await _adopt_batch(db, location, bucket, batch, classifier, result)
            batch = []
            if on_batch is not None:
                on_batch(result)
    if batch:
        await _adopt_batch(db, location, bucket, batch, classifier, result)
    return result


async def _adopt_batch(
    db: Database,
    location: Location,
    bucket: Bucket,
    batch: list[BlobStat],
    classifier: Callable[[str, Bucket], Classification],
    result: AdoptResult,
) -> None:
    now = utcnow()
    async with db.session() as session:
        existing = set(
            (
                await session.scalars(
                    select(ObjectVersion.key).where(
                        ObjectVersion.bucket_id == bucket.id,
                        ObjectVersion.is_latest == true(),
                        ObjectVersion.key.in_([s.key for s in batch]),
                    )
                )
            ).all()
        )
        rows: list[dict[str, Any]] = []
        for stat in batch:
            if stat.key in existing:
                result.already += 1
                continue
            try:
                label = classifier(stat.key, bucket)
            except ClassificationError as exc:
                result.errors.append((stat.key, str(exc)))
                continue
            rows.append(
                {
                    "bucket_id": bucket.id,
                    "key": stat.key,
                    "version_id": new_version_id(),
                    "is_latest": True,
                    "is_delete_marker": False,
                    "size": stat.size,
                    # Unknown until the bytes are read; the first verified copy fills them in.
                    "etag": "",
                    "user_metadata": {},
                    "tags": {},
                    "data_class": label.data_class,
                    "subject": label.subject,
                    "subject_count": label.subject_count,
                    "created": stat.last_modified or now,
                }
            )
            result.by_class[label.data_class] = result.by_class.get(label.data_class, 0) + 1
            result.bytes += stat.size
        if not rows:
            return
        ids = (
            await session.scalars(
                insert(ObjectVersion).returning(ObjectVersion.id, sort_by_parameter_order=True),
                rows,
            )
        ).all()
        await session.execute(
            insert(Segment),
            [
                {
                    "object_version_id": i,
                    "seq": 0,
                    "blob_key": r["key"],
                    "size": r["size"],
                    "etag": "",
                }
                for i, r in zip(ids, rows, strict=True)
            ],
        )
        await session.execute(
            insert(Placement),
            [
                {
                    "object_version_id": i,
                    "location": location.name,
                    "state": "ready",
                    "created": now,
                }
                for i in ids
            ],
        )
        await append(
            session,
            MIGRATION_STEP,
            actor=ACTOR,
            target=f"{bucket.name}/",
            detail={
                "step": "adopt",
                "location": location.name,
                "objects": len(rows),
                "bytes": sum(r["size"] for r in rows),
                "first_key": rows[0]["key"],
                "last_key": rows[-1]["key"],
            },
        )
        result.adopted += len(rows)
