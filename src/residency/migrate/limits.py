"""Token buckets for `--bwlimit` (bytes/s) and `--max-rps` (requests/s), shared by all workers.

Callers `await take(n)` before spending n tokens; the bucket refills continuously at `rate`
and holds at most `burst`. A request larger than the burst is served in burst-sized slices, so
a 64 MiB chunk never waits for a bucket that can never hold it. `taken` counts every token
handed out (what tests and progress read).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

__all__ = ["TokenBucket", "throttled"]


class TokenBucket:
    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate)
        if self.burst <= 0:
            raise ValueError("burst must be positive")
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = asyncio.Lock()
        self.taken = 0
        self.waited = 0.0
        """seconds the bucket made callers sleep in total"""

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def take(self, n: float = 1) -> None:
        """Wait until `n` tokens are available and consume them (FIFO across callers)."""
        if n < 0:
            raise ValueError("cannot take a negative number of tokens")
        remaining = float(n)
        async with self._lock:
            while remaining > 0:
                want = min(remaining, self.burst)
                self._refill()
                if self._tokens < want:
                    delay = (want - self._tokens) / self.rate
                    self.waited += delay
                    await self._sleep(delay)
                    self._refill()
                self._tokens -= want
                remaining -= want
        self.taken += int(n)


async def throttled(
    chunks: AsyncIterable[bytes], *buckets: TokenBucket | None
) -> AsyncIterator[bytes]:
    """`chunks`, each one released only after every bucket granted its length."""
    active = [b for b in buckets if b is not None]
    async for chunk in chunks:
        for bucket in active:
            await bucket.take(len(chunk))
        yield chunk
