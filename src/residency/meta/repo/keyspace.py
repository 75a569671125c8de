"""The key space of a bucket: S3 key order, prefix ranges, delimiter roll-up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
P = TypeVar("P")

SEEK_BATCH = 32
"""Rows per query while a delimiter may roll keys up: small, because a common prefix ends the
batch early (the rest of it would be keys under that prefix) and the next query seeks past it."""


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with `prefix`.

    Keys compare by code point, which is the UTF-8 byte order S3 lists in. None when no such
    string exists (empty prefix, or one made only of U+10FFFF).
    """
    chars = list(prefix)
    while chars:
        nxt = ord(chars[-1]) + 1
        if 0xD800 <= nxt <= 0xDFFF:  # surrogates never occur in keys; skip over them
            nxt = 0xE000
        if nxt <= 0x10FFFF:
            chars[-1] = chr(nxt)
            return "".join(chars)
        chars.pop()
    return None


def common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    """The common prefix `key` rolls up into under `prefix` and `delimiter`, if any."""
    if not delimiter:
        return None
    i = key.find(delimiter, len(prefix))
    return None if i < 0 else key[: i + len(delimiter)]


@dataclass(frozen=True, slots=True)
class RolledUp(Generic[T]):
    """One page of rows and common prefixes; `last` (a row or a prefix) is where a truncated
    page resumes."""

    rows: list[T]
    prefixes: list[str]
    truncated: bool
    last: T | str | None


async def rolled_up(
    fetch: Callable[[P, int], Awaitable[Sequence[T]]],
    *,
    start: P,
    after: Callable[[T], P],
    from_key: Callable[[str], P],
    key: Callable[[T], str],
    prefix: str,
    delimiter: str,
    limit: int,
    most: int,
) -> RolledUp[T]:
    """Up to `limit` rows and common prefixes in key order (ListObjectVersions,
    ListMultipartUploads): `fetch(position, n)` reads the next `n` rows from a position
    (`start`, `after(row)`, or `from_key(k)`: every row of key `k` or later). Without a
    delimiter a page is one read; with one, rows come in small batches and each common prefix
    costs one seek past it, never a scan of what is under it."""
    rows: list[T] = []
    prefixes: list[str] = []
    last: T | str | None = None
    position = start
    batch = SEEK_BATCH if delimiter else limit + 1
    while True:
        found = await fetch(position, batch)
        seeked = False
        for row in found:
            if len(rows) + len(prefixes) == limit:
                return RolledUp(rows, prefixes, True, last)
            cp = common_prefix(key(row), prefix, delimiter)
            if cp is None:
                rows.append(row)
                last, position = row, after(row)
                continue
            prefixes.append(cp)
            last = cp
            nxt = prefix_end(cp)
            if nxt is None:  # nothing sorts after this prefix: the listing is complete
                return RolledUp(rows, prefixes, False, None)
            position, seeked = from_key(nxt), True
            break
        if seeked:
            batch = SEEK_BATCH
        elif len(found) < batch:
            return RolledUp(rows, prefixes, False, None)
        else:
            batch = min(batch * 2, most + 1)
