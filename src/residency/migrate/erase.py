"""Release means erase: bytes an object had to leave are deleted, the deletion confirmed and
audited, as soon as its new copies are durable (DESIGN.md invariant 1).

The migration commit that drops a placement records its blobs as `MUST_LEAVE` garbage already
claimed by the engine (no sweep or writer touches a claimed row). Then, per blob: delete it,
stat it — only "not found" confirms the erasure — and, batched, forget the row and append one
audit entry "erased from LOCATION" in the same transaction. A deletion that fails is retried
with backoff; one that still fails gives up its claim, stays recorded (the report counts it
out of compliance) and is reported: the next `residency migrate` or `residency sweep` tries
it again (`erase_pending`), with no grace period: these bytes are not orphans but a duty.

Deletes that arrive together go out together: one DeleteObjects per up to 1,000 blobs at an
s3 location, one worker-thread hop of unlink + stat per up to 64 files on a local disk; the
confirming stat is still one per blob.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from residency.audit import MIGRATION_STEP, append_many
from residency.meta import Database
from residency.meta.repo.blobs import (
    BlobRef,
    claim_garbage,
    forget_erased,
    forget_garbage,
    live_refs,
    pending_erasures,
    release_erasures,
)
from residency.migrate.batch import Batcher, Erasure
from residency.storage import BlobNotFound, Location, StorageError
from residency.storage.s3_tags import DELETE_BATCH, S3Deleter

__all__ = ["EraseFailure", "EraseResult", "Eraser", "erase_pending"]

ERASE_ACTOR = "residency migrate"
LOCAL_BATCH = 64
"""most local files unlinked and stat'ed per worker-thread hop"""


@dataclass(frozen=True, slots=True)
class EraseFailure:
    location: str
    blob_key: str
    target: str
    error: str

    def to_dict(self) -> dict[str, str]:
        return {
            "location": self.location,
            "blob_key": self.blob_key,
            "target": self.target,
            "error": self.error,
        }


@dataclass
class EraseResult:
    erased: int = 0
    erased_bytes: int = 0
    failures: list[EraseFailure] = field(default_factory=list)


Writer = Callable[[], AbstractAsyncContextManager[AsyncSession]]


class Eraser:
    """Deletes and confirms blobs, then records their erasure in batches."""

    def __init__(
        self,
        db: Database,
        locations: Mapping[str, Location],
        *,
        actor: str = ERASE_ACTOR,
        attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        batch_size: int = 200,
        concurrency: int = 16,
        rate: Callable[[int], Awaitable[None]] | None = None,
        write: Writer | None = None,
    ) -> None:
        self.db = db
        self.locations = locations
        self.actor = actor
        self.attempts = max(1, attempts)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.result = EraseResult()
        self._rate = rate
        self._deleting = asyncio.Semaphore(max(1, concurrency))
        self._write: Writer = write or (lambda: db.session())
        self._recorder: Batcher[Erasure, None] = Batcher(self._record, batch_size)
        self._giveup: Batcher[Erasure, None] = Batcher(self._release, batch_size)
        # Object stores: one DeleteObjects per batch of keys instead of a DELETE per key.
        self._batches: dict[str, Batcher[str, str | None]] = {}
        self._deleters: dict[str, S3Deleter] = {}
        self._locals: dict[str, Batcher[Path, str | None]] = {}

    def stop_lingering(self) -> None:
        self._recorder.stop_lingering()
        self._giveup.stop_lingering()
        for batcher in self._batches.values():
            batcher.stop_lingering()

    def close(self) -> None:
        """Release the batch deleters' connections."""
        for deleter in self._deleters.values():
            deleter.close()
        self._deleters.clear()

    async def erase(self, items: Sequence[Erasure]) -> bool:
        """Erase every blob of `items` (concurrently); False if any could not be."""
        if not items:
            return True
        done = await asyncio.gather(*(self._erase_one(e) for e in items))
        return all(done)

    async def _erase_one(self, item: Erasure) -> bool:
        problem = "not tried"
        attempts = self.attempts if item.location in self.locations else 1  # no use retrying
        for attempt in range(1, attempts + 1):
            problem_or_none = await self._delete_confirmed(item)
            if problem_or_none is None:
                await self._recorder.submit(item)
                self.result.erased += 1
                self.result.erased_bytes += item.size
                return True
            problem = problem_or_none
            if attempt < attempts:
                delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
        await self._giveup.submit(item)
        self.result.failures.append(
            EraseFailure(
                item.location,
                item.blob_key,
                item.target,
                f"not erased after {attempts} attempt{'s' if attempts > 1 else ''}: {problem}",
            )
        )
        return False

    async def _delete_confirmed(self, item: Erasure) -> str | None:
        """None once the blob is gone and a stat says so; else what went wrong."""
        location = self.locations.get(item.location)
        if location is None:
            return f"location {item.location} is not configured here"
        try:
            path = location.local_path(item.blob_key)
        except StorageError as exc:  # a key that cannot name a blob there
            return f"delete failed: {_first_line(exc)}"
        if path is not None:
            # A bare local disk: unlink and stat in a worker thread, many at a time.
            return await self._local(location).submit(path)
        if location.config.scheme == "s3":
            problem = await self._batch(location).submit(item.blob_key)
            if problem is not None:
                return f"delete failed: {problem}"
        else:
            async with self._deleting:
                if self._rate is not None:
                    await self._rate(1)
                try:
                    await location.delete(item.blob_key)
                except StorageError as exc:
                    return f"delete failed: {_first_line(exc)}"
        async with self._deleting:
            if self._rate is not None:
                await self._rate(1)
            try:
                stat = await location.stat(item.blob_key)
            except BlobNotFound:
                return None
            except StorageError as exc:
                return f"could not confirm the deletion: {_first_line(exc)}"
        return f"still there after the delete ({stat.size} bytes)"

    def _local(self, location: Location) -> Batcher[Path, str | None]:
        batcher = self._locals.get(location.name)
        if batcher is None:

            async def flush(paths: list[Path]) -> list[str | None]:
                if self._rate is not None:
                    await self._rate(2 * len(paths))
                return await asyncio.to_thread(_unlink_confirmed, paths)

            batcher = self._locals[location.name] = Batcher(flush, LOCAL_BATCH)
        return batcher

    def _batch(self, location: Location) -> Batcher[str, str | None]:
        batcher = self._batches.get(location.name)
        if batcher is None:

            async def flush(keys: list[str]) -> list[str | None]:
                deleter = self._deleters.get(location.name)
                if deleter is None:
                    try:
                        deleter = self._deleters[location.name] = S3Deleter(location.config)
                    except StorageError as exc:
                        return [_first_line(exc)] * len(keys)
                if self._rate is not None:
                    await self._rate(1)
                failed = await asyncio.to_thread(deleter.delete, keys)
                return [failed.get(k) for k in keys]

            # A short linger: deletions arrive as their objects' commits finish, a few at a
            # time; waiting a moment fills a request with many of them.
            batcher = self._batches[location.name] = Batcher(flush, DELETE_BATCH, linger=0.05)
        return batcher

    async def _record(self, items: list[Erasure]) -> list[None]:
        """Forget the rows and audit each erasure, in one transaction."""
        async with self._write() as session:
            gone = await forget_erased(session, [(e.location, e.blob_key) for e in items])
            entries = [
                (
                    e.target,
                    {
                        "step": "erased",
                        "message": f"erased from {e.location}",
                        "location": e.location,
                        "blob": e.blob_key,
                        "size": e.size,
                        "confirmed": "not found after delete",
                    }
                    | ({"version": e.version} if e.version is not None else {}),
                )
                for e in _unique(items)
                if (e.location, e.blob_key) in gone
            ]
            await append_many(session, MIGRATION_STEP, entries, actor=self.actor)
        return [None] * len(items)

    async def _release(self, items: list[Erasure]) -> list[None]:
        async with self._write() as session:
            await release_erasures(session, [(e.location, e.blob_key) for e in items])
        return [None] * len(items)


def _unlink_confirmed(paths: list[Path]) -> list[str | None]:
    """Blocking: delete each file and stat it; None where it is confirmed gone."""
    out: list[str | None] = []
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            out.append(f"delete failed: {exc.strerror or exc}")
            continue
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            out.append(None)
        except OSError as exc:
            out.append(f"could not confirm the deletion: {exc.strerror or exc}")
        else:
            out.append(f"still there after the delete ({size} bytes)")
    return out


def _unique(items: Sequence[Erasure]) -> list[Erasure]:
    seen: set[BlobRef] = set()
    out: list[Erasure] = []
    for e in items:
        if (e.location, e.blob_key) not in seen:
            seen.add((e.location, e.blob_key))
            out.append(e)
    return out


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


async def _pending(db: Database, batch_size: int) -> AsyncIterator[list[tuple[int, str, str]]]:
    after = 0
    while True:
        async with db.session(write=False) as session:
            rows = await pending_erasures(session, after=after, limit=batch_size)
        if not rows:
            return
        yield rows
        after = rows[-1][0]


async def erase_pending(
    db: Database,
    locations: Mapping[str, Location],
    *,
    actor: str,
    attempts: int = 3,
    batch_size: int = 500,
    concurrency: int = 16,
) -> EraseResult:
    """Erase every must-leave blob still recorded (left by a run that was killed, or whose
    deletion failed): claimed, deleted, confirmed and audited. One at a location this process
    has no configuration for cannot be erased here: it is reported, never skipped silently."""
    eraser = Eraser(db, locations, actor=actor, attempts=attempts, backoff_base=0.2)
    limiter = asyncio.Semaphore(concurrency)

    async def one(location: str, key: str) -> bool:
        async with limiter:
            size = 0
            with contextlib.suppress(StorageError):  # the size is for the audit entry
                size = (await locations[location].stat(key)).size
            return await eraser.erase([Erasure(location, key, size, f"{location}/{key}")])

    async for batch in _pending(db, batch_size):
        for _, loc, key in batch:
            if loc not in locations:
                eraser.result.failures.append(
                    EraseFailure(loc, key, f"{loc}/{key}", f"location {loc} is not configured here")
                )
        rows = [(i, loc, key) for i, loc, key in batch if loc in locations]
        async with db.session() as session:
            live = await live_refs(session, [(loc, key) for _, loc, key in rows])
            # Referenced again (moved back there, under the same key): no longer to erase.
            await forget_garbage(session, [i for i, loc, key in rows if (loc, key) in live])
            todo = [(i, loc, key) for i, loc, key in rows if (loc, key) not in live]
            await claim_garbage(session, [i for i, _, _ in todo])
        await asyncio.gather(*(one(loc, key) for _, loc, key in todo))
    eraser.close()
    return eraser.result
