"""Helpers shared by the storage tests (imported by name: test dirs are not packages)."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterable

import httpx

from residency.catalog.facts import LocationFacts
from residency.config import LocationConfig
from residency.storage import Location, open_location

SCHEMES = ("fs", "memory", "s3")


def facts(name: str) -> LocationFacts:
    return LocationFacts(
        name=name,
        provider="aws",
        provider_name="Amazon Web Services",
        vendor_hq="US",
        region="us-east-1",
        city="Northern Virginia",
        country="US",
        continent="North America",
    )


def config(name: str, scheme: str, **options: str) -> LocationConfig:
    return LocationConfig(
        name=name, provider="aws", region="us-east-1", scheme=scheme, options=options
    )


def make(name: str, scheme: str, **options: str) -> Location:
    return open_location(config(name, scheme, **options), facts(name))


async def agen(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic random bytes, so a misplaced range cannot pass by accident."""
    return random.Random(seed).randbytes(size)


def free_port() -> int:
    """A port nothing listens on (yet): also how a test gets a refused connection."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing answered at {url} within {timeout}s")
