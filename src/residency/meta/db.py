"""The metadata database: one async engine, sessions that are transactions, self-migration.

SQLite (the default) runs in WAL mode so readers never wait for the writer. Write sessions
start with `BEGIN IMMEDIATE`: they take the write lock up front and queue behind each other
(bounded by `busy_timeout`) instead of failing with "database is locked" when a read
transaction later tries to upgrade to a write. Read-only sessions (`session(write=False)`) use
a plain `BEGIN`, so GET and listing traffic runs concurrently. PostgreSQL is reached by URL
(`postgresql+asyncpg://...`) and needs none of this.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, pool, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, InvalidRequestError, NoSuchModuleError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from residency.meta.errors import DatabaseConfigError

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)
_BEGIN_OPTION = "residency_sqlite_begin"
_MIGRATION_LOCK = 0x7265736964656E63  # "residenc"


def alembic_config() -> Config:
    """Alembic settings inside the installed package, so a deployment can migrate itself."""
    ini = resources.files("residency.meta").joinpath("alembic.ini")
    cfg = Config(str(ini))
    cfg.set_main_option(
        "script_location", str(resources.files("residency.meta").joinpath("migrations"))
    )
    return cfg


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseConfigError(
            f"cannot create the directory for database file {path}: {exc.strerror or exc}"
        ) from None


def _sqlite_file(url: URL) -> Path | None:
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


class Database:
    """Owns the engine. `await migrate()` once at start-up; `session()` per unit of work."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        try:
            self.url = make_url(url)
        except ArgumentError:
            raise DatabaseConfigError(
                f"not a database URL: {url!r} (e.g. sqlite+aiosqlite:///path/residency.db)"
            ) from None
        self.url = self.url.set(
            drivername=_ASYNC_DRIVERS.get(self.url.drivername, self.url.drivername)
        )
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            path = _sqlite_file(self.url)
            if path is not None:
                _make_parent(path)
            elif not self.url.database or self.url.database == ":memory:":
                # One shared connection, or every checkout would see a new empty database.
                kwargs["poolclass"] = pool.StaticPool
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: AsyncEngine = _create_engine(self.url, kwargs)
        self._write_engine = self.engine
        if self.is_sqlite:
            _install_sqlite_hooks(self.engine)
            self._write_engine = self.engine.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
        self._writer = async_sessionmaker(self._write_engine, expire_on_commit=False)
        self._reader = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self, *, write: bool = True) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block ends, rolled back if it raises.

        Pass `write=False` for read-only work on the hot path (SQLite then lets it run
        beside a writer instead of queueing for the write lock).
        """
        maker = self._writer if write else self._reader
        async with maker() as session, session.begin():
            yield session

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""
        async with self._write_engine.begin() as conn:
            if not self.is_sqlite:
                # Several gateway processes may start at once: one migrates, the rest wait.
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            await conn.run_sync(_upgrade_head)

    async def dispose(self) -> None:
        await self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"


# Plain URLs mean the async driver of that database.
_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def _create_engine(url: URL, kwargs: dict[str, Any]) -> AsyncEngine:
    shown = url.render_as_string(hide_password=True)
    try:
        return create_async_engine(url, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        hint = (
            " (pip install 'residency[postgres]')" if url.get_backend_name() == "postgresql" else ""
        )
        raise DatabaseConfigError(
            f"cannot use database {shown}: driver {url.drivername!r} is not available{hint}: {exc}"
        ) from None
    except InvalidRequestError:
        raise DatabaseConfigError(
            f"database URL {shown} names a synchronous driver; use an async one such as "
            "sqlite+aiosqlite:// or postgresql+asyncpg://"
        ) from None


def _upgrade_head(connection: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 module (it skips it for SELECT and DDL, which
        # breaks isolation and transactional DDL); the "begin" hook below emits our own.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in SQLITE_PRAGMAS:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN"))
