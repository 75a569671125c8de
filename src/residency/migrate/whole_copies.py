"""Small-blob copies handed to worker threads many at a time.

A small blob is copied whole in a worker thread (`storage.copy_whole`). Handing each blob to
the pool on its own costs the event loop a future, a thread wake-up and a cross-thread
callback per blob, and on local disks that bookkeeping (plus threads fighting over the GIL)
was most of a copy's cost. Here copies that arrive while every thread is busy wait and go
together in the next hop: a hop carries more blobs as the load grows, and a lone blob on an
idle copier leaves at once. One hop's blobs are copied one after another, so memory stays one
blob per thread.

How many threads, and how many blobs per hop, is the caller's choice: local copies are bound
by CPU and system calls (few threads, many blobs per hop); remote ones by latency (a thread
per copy slot, one blob per hop, so that every slot's request is in flight at once).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from residency.storage import Location, Written, copy_whole
from residency.storage.checksums import Algorithm
from residency.storage.local_io import SyncBarrier

__all__ = ["WholeCopier", "WholeCopy"]


@dataclass(frozen=True, slots=True)
class WholeCopy:
    """One blob to copy whole: `src_key` at `source` to `key` at every destination."""

    source: Location
    src_key: str
    destinations: Sequence[Location]
    key: str
    size: int
    algorithms: Sequence[Algorithm]


_Waiter = tuple[WholeCopy, "asyncio.Future[Written]"]


def _copy_all(
    copies: Sequence[WholeCopy], barriers: Mapping[str, SyncBarrier]
) -> list[Written | Exception]:
    """Blocking, in a worker thread: each copy's result or error (one failing blob does not
    stop the others)."""
    out: list[Written | Exception] = []
    for c in copies:
        try:
            out.append(
                copy_whole(
                    c.source,
                    c.src_key,
                    c.destinations,
                    c.key,
                    size=c.size,
                    algorithms=c.algorithms,
                    barriers=barriers,
                )
            )
        except Exception as exc:
            out.append(exc)
    return out


class WholeCopier:
    """Batches `copy` calls into hops of up to `per_hop` blobs on at most `threads` threads.

    Writes to destinations in `barriers` are not fsynced: they are durable once the caller
    has synced that barrier (see `storage.local_io.SyncBarrier`).
    """

    def __init__(
        self,
        pool: Executor,
        *,
        threads: int,
        per_hop: int,
        barriers: Mapping[str, SyncBarrier] | None = None,
    ) -> None:
        if threads < 1 or per_hop < 1:
            raise ValueError("threads and per_hop must be at least 1")
        self._pool = pool
        self._threads = threads
        self._per_hop = per_hop
        self._barriers: Mapping[str, SyncBarrier] = barriers or {}
        self._pending: list[_Waiter] = []
        self._busy = 0
        self._scheduled = False
        self.hops = 0

    async def copy(self, job: WholeCopy) -> Written:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Written] = loop.create_future()
        self._pending.append((job, future))
        if not self._scheduled:
            # Dispatch after this turn of the loop: copies submitted in it share a hop.
            self._scheduled = True
            loop.call_soon(self._dispatch)
        return await future

    def _dispatch(self) -> None:
        self._scheduled = False
        loop = asyncio.get_running_loop()
        self._pending = [(job, fut) for job, fut in self._pending if not fut.done()]
        while self._pending and self._busy < self._threads:
            # Spread what waits over the free threads rather than filling one hop first.
            free = self._threads - self._busy
            n = max(1, min(self._per_hop, -(-len(self._pending) // free)))
            hop, self._pending = self._pending[:n], self._pending[n:]
            self._busy += 1
            self.hops += 1
            done = loop.run_in_executor(
                self._pool, _copy_all, [job for job, _ in hop], self._barriers
            )
            done.add_done_callback(functools.partial(self._finished, hop))

    def _finished(
        self, hop: list[_Waiter], done: asyncio.Future[list[Written | Exception]]
    ) -> None:
        self._busy -= 1
        if done.cancelled():
            for _, fut in hop:
                fut.cancel()
        elif (exc := done.exception()) is not None:
            for _, fut in hop:
                if not fut.done():
                    fut.set_exception(exc)
        else:
            for (_, fut), res in zip(hop, done.result(), strict=True):
                if fut.done():
                    continue
                if isinstance(res, Exception):
                    fut.set_exception(res)
                else:
                    fut.set_result(res)
        self._dispatch()
