"""Something to read the log from: an open session, or a database that hands out sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession


class SessionFactory(Protocol):
    """What `residency.meta.Database` offers: `session()` opens a transaction."""

    def session(self, *, write: bool = True) -> AbstractAsyncContextManager[AsyncSession]: ...


LogSource = AsyncSession | SessionFactory


@asynccontextmanager
async def open_session(source: LogSource, *, write: bool) -> AsyncIterator[AsyncSession]:
    """The session itself, or a new transaction (read-only ones do not queue behind writers)."""
    if isinstance(source, AsyncSession):
        yield source
    else:
        async with source.session(write=write) as session:
            yield session
