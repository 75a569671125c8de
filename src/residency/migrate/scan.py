"""`residency scan`: what is really at each location, compared with what the metadata says.

Drift, per location:

- `unreferenced`: bytes nobody references (no placement, no part of an open upload, no write
  in flight, no garbage row awaiting the sweep): a write that escaped its bookkeeping, or
  bytes someone put there behind residency's back.
- `missing` / `size_differs`: a placement whose blob is not there, or has another size.
- `forbidden`: a placement the policy in force does not allow for its object version's
  classification (every version with bytes counts, current or noncurrent; the target names a
  noncurrent one by its S3 version id).
- `must_leave`: bytes a migration released because they had to leave, not erased yet.
- `forbidden_part`: a part of an open upload at a location its upload may no longer use.
- `incomplete_upload` (object stores): a multipart upload at the store itself that was never
  completed nor aborted (ListMultipartUploads): its parts hold bytes no listing shows.

Bounded memory at any number of blobs: the listing streams into sorted runs spilled to
temporary files (`run_size` entries each) and comes back as one sorted stream (a k-way merge);
the placements stream from the database in the same (byte) order, a page at a time; the two
are walked side by side. Listed keys with no placement are looked up in chunks. Only counts
and the first `sample` items of each kind are kept.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from residency.meta import Database
from residency.meta.repo.blobs import MUST_LEAVE, KnownBlob, PlacedBlob, known_blobs, placed_blobs
from residency.meta.repo.inventory import describe_version
from residency.migrate.decide import Decider
from residency.storage import Location

__all__ = ["DRIFT_KINDS", "Drift", "LocationScan", "ScanResult", "scan_locations"]

DRIFT_KINDS = (
    "unreferenced",
    "missing",
    "size_differs",
    "forbidden",
    "must_leave",
    "forbidden_part",
    "incomplete_upload",
)

RUN_SIZE = 100_000
"""listing entries sorted in memory at once before they are spilled to a temporary file"""
PAGE = 5_000
"""placements read from the database per query"""
LOOKUP = 1_000
"""listed keys with no placement looked up at once"""


@dataclass(frozen=True, slots=True)
class Drift:
    kind: str
    location: str
    blob_key: str
    size: int | None
    """bytes at the location (None: not there)"""
    target: str
    """the object (bucket/key, with the version when it is noncurrent) or upload the metadata
    ties it to, or '' for none"""
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        what = f" ({self.target})" if self.target else ""
        return f"{self.kind} at {self.location}: {self.blob_key}{what}: {self.detail}"


@dataclass
class LocationScan:
    location: str
    listed: int = 0
    listed_bytes: int = 0
    placed: int = 0
    """placements (segment blobs) the metadata has at the location"""
    awaiting_sweep: int = 0
    """orphans the metadata knows of (garbage within its grace period, writes in flight)"""
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DRIFT_KINDS, 0))
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DRIFT_KINDS, 0))
    sample: list[Drift] = field(default_factory=list)
    error: str | None = None
    """why the location could not be scanned (it counts as drift: nothing is known)"""

    @property
    def drift(self) -> int:
        return sum(self.counts.values()) + (1 if self.error else 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "listed": self.listed,
            "listed_bytes": self.listed_bytes,
            "placed": self.placed,
            "awaiting_sweep": self.awaiting_sweep,
            "drift": self.drift,
            "counts": dict(self.counts),
            "bytes": dict(self.bytes),
            "sample": [d.to_dict() for d in self.sample],
            "error": self.error,
        }


@dataclass
class ScanResult:
    policy: str
    locations: list[LocationScan] = field(default_factory=list)

    @property
    def drift(self) -> int:
        return sum(loc.drift for loc in self.locations)

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "drift": self.drift,
            "locations": [loc.to_dict() for loc in self.locations],
        }


# --- the listing, sorted in bounded memory ------------------------------------------------------


def _spill(entries: list[tuple[str, int]], directory: Path, n: int) -> Path:
    entries.sort()
    path = directory / f"run-{n}.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for entry in entries:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return path


def _read_run(path: Path) -> Iterator[tuple[str, int]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            key, size = json.loads(line)
            yield str(key), int(size)


async def sorted_listing(
    location: Location, directory: Path, *, run_size: int = RUN_SIZE
) -> AsyncIterator[tuple[str, int]]:
    """Every blob at `location` as (key, size) in key order, whatever order the store lists
    in; at most `run_size` entries in memory (the rest wait in sorted runs in `directory`)."""
    runs: list[Path] = []
    buf: list[tuple[str, int]] = []
    async for stat in location.list(""):
        if stat.key.endswith("/"):
            continue
        buf.append((stat.key, stat.size))
        if len(buf) >= run_size:
            runs.append(await asyncio.to_thread(_spill, buf, directory, len(runs)))
            buf = []
    if not runs:
        buf.sort()
        for entry in buf:
            yield entry
        return
    if buf:
        runs.append(await asyncio.to_thread(_spill, buf, directory, len(runs)))
    merged = heapq.merge(*(_read_run(p) for p in runs))
    while True:
        page = await asyncio.to_thread(_take, merged, LOOKUP)
        if not page:
            return
        for entry in page:
            yield entry


def _take(it: Iterator[tuple[str, int]], n: int) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for entry in it:
        out.append(entry)
        if len(out) >= n:
            break
    return out


async def _placements(db: Database, location: str) -> AsyncIterator[list[PlacedBlob]]:
    """The placements at `location` grouped by blob key, in key order, a page at a time."""
    after: tuple[str, int] | None = None
    pending: list[PlacedBlob] = []
    while True:
        async with db.session(write=False) as session:
            page = await placed_blobs(session, location, after=after, limit=PAGE)
        for blob in page:
            if pending and pending[0].blob_key != blob.blob_key:
                yield pending
                pending = []
            pending.append(blob)
        if len(page) < PAGE:
            break
        after = (page[-1].blob_key, page[-1].segment_id)
    if pending:
        yield pending


# --- comparing ------------------------------------------------------------------------------


class _Scanner:
    def __init__(
        self,
        db: Database,
        location: Location,
        decider: Decider,
        sample: int,
        on_drift: Callable[[Drift], None] | None,
    ) -> None:
        self.db = db
        self.location = location
        self.decider = decider
        self.sample = sample
        self.on_drift = on_drift
        self.out = LocationScan(location.name)
        self._unplaced: list[tuple[str, int]] = []

    def drift(self, kind: str, blob_key: str, size: int | None, target: str, why: str) -> None:
        self.out.counts[kind] += 1
        self.out.bytes[kind] += size or 0
        item = Drift(kind, self.location.name, blob_key, size, target, why)
        if len(self.out.sample) < self.sample:
            self.out.sample.append(item)
        if self.on_drift is not None:
            self.on_drift(item)

    def allowed(
        self,
        data_class: str,
        subject: str | None,
        count: int | None,
        tenant: str,
        bucket: str,
        bucket_policy: str | None,
    ) -> tuple[bool, str]:
        decision = self.decider.decide(data_class, subject, tenant, bucket, count, bucket_policy)
        name = self.location.name
        if name in decision.allowed:
            return True, ""
        return False, self.decider.reason(decision, name)

    def placed(self, blobs: list[PlacedBlob], size: int | None) -> None:
        """One key that placements name; `size` is what the listing found (None: absent)."""
        for b in blobs:
            self.out.placed += 1
            target = describe_version(b.bucket, b.key, b.noncurrent)
            if size is None:
                self.drift("missing", b.blob_key, None, target, "no blob at the location")
            elif size != b.size:
                self.drift(
                    "size_differs",
                    b.blob_key,
                    size,
                    target,
                    f"{size} bytes there, {b.size} recorded",
                )
            ok, why = self.allowed(
                b.data_class, b.subject, b.subject_count, b.tenant, b.bucket, b.bucket_policy
            )
            if not ok:
                self.drift(
                    "forbidden",
                    b.blob_key,
                    size,
                    target,
                    f"{b.data_class} of subject {b.subject or 'unknown'}: {why}",
                )

    async def unplaced(self, key: str, size: int) -> None:
        self._unplaced.append((key, size))
        if len(self._unplaced) >= LOOKUP:
            await self.flush()

    async def flush(self) -> None:
        """Classify listed keys no placement names: known to the metadata, or drift."""
        batch, self._unplaced = self._unplaced, []
        if not batch:
            return
        async with self.db.session(write=False) as session:
            known = await known_blobs(session, self.location.name, [k for k, _ in batch])
        for key, size in batch:
            self._judge_known(key, size, known.get(key, []))

    def _judge_known(self, key: str, size: int, known: Sequence[KnownBlob]) -> None:
        if not known:
            self.drift("unreferenced", key, size, "", "no object, upload or pending write")
            return
        for k in known:
            if k.kind == "garbage" and k.reason == MUST_LEAVE:
                self.drift("must_leave", key, size, "", "released by a migration, not erased yet")
                return
        parts = [k for k in known if k.kind == "part" and k.upload is not None]
        for part in parts:
            assert part.upload is not None
            cls, subject, count, tenant, bucket, bucket_policy, upload_id = part.upload
            ok, why = self.allowed(cls, subject, count, tenant, bucket, bucket_policy)
            if not ok:
                self.drift(
                    "forbidden_part",
                    key,
                    size,
                    f"{bucket} upload {upload_id}",
                    f"{cls} of subject {subject or 'unknown'}: {why}",
                )
                return
        if not parts:
            self.out.awaiting_sweep += 1

    async def run(self, directory: Path, run_size: int) -> LocationScan:
        listing = sorted_listing(self.location, directory, run_size=run_size)
        placements = _placements(self.db, self.location.name)
        listed = await anext(listing, None)
        group = await anext(placements, None)
        while listed is not None or group is not None:
            if listed is not None and (group is None or listed[0] < group[0].blob_key):
                self.out.listed += 1
                self.out.listed_bytes += listed[1]
                await self.unplaced(*listed)
                listed = await anext(listing, None)
            elif group is not None and (listed is None or group[0].blob_key < listed[0]):
                self.placed(group, None)
                group = await anext(placements, None)
            elif listed is not None and group is not None:  # the same key on both sides
                self.out.listed += 1
                self.out.listed_bytes += listed[1]
                self.placed(group, listed[1])
                listed = await anext(listing, None)
                group = await anext(placements, None)
        await self.flush()
        return self.out


async def _incomplete_uploads(db: Database, scanner: _Scanner) -> None:
    """Object stores: multipart uploads begun at the store and never finished."""
    from residency.storage.s3_tags import list_open_uploads

    pages = list_open_uploads(scanner.location.config)
    while (page := await asyncio.to_thread(next, pages, None)) is not None:
        if not page:
            continue
        async with db.session(write=False) as session:
            known = await known_blobs(session, scanner.location.name, [u.key for u in page])
        for up in page:
            if any(k.kind == "intent" for k in known.get(up.key, [])):
                continue  # a copy is writing it right now
            scanner.drift(
                "incomplete_upload",
                up.key,
                None,
                f"upload {up.upload_id}",
                f"begun {up.initiated}, never completed or aborted: its parts hold bytes",
            )


async def scan_locations(
    db: Database,
    locations: Mapping[str, Location],
    decider: Decider,
    *,
    names: Sequence[str] | None = None,
    run_size: int = RUN_SIZE,
    sample: int = 20,
    on_drift: Callable[[Drift], None] | None = None,
) -> ScanResult:
    """Scan each named location (default: all) one after another."""
    from residency.storage import StorageError

    result = ScanResult(decider.policy.name)
    for name in names or sorted(locations):
        scanner = _Scanner(db, locations[name], decider, sample, on_drift)
        try:
            with tempfile.TemporaryDirectory(prefix="residency-scan-") as tmp:
                await scanner.run(Path(tmp), run_size)
            if locations[name].config.scheme == "s3":
                await _incomplete_uploads(db, scanner)
        except StorageError as exc:
            scanner.out.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        result.locations.append(scanner.out)
    return result
