"""Bounded `IN (...)` lists: one statement per chunk of values."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

IN_LIST_MAX = 250
"""bound parameters per statement (SQLite allows 32766, PostgreSQL 65535): small enough that
a statement's plan and parameter list stay cheap, large enough that a batch is a few queries"""


def chunks(items: Sequence[T], size: int = IN_LIST_MAX) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
