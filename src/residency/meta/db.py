"""The metadata database: one async engine, sessions that are transactions, self-migration.

SQLite (the default) runs in WAL mode so readers never wait for the writer. Write sessions
start with `BEGIN IMMEDIATE`: they take the write lock up front and queue behind each other
(bounded by `busy_timeout`) instead of failing with "database is locked" when a read
transaction later tries to upgrade to a write. Read-only sessions (`session(write=False)`) use
a plain `BEGIN`, so GET and listing traffic runs concurrently. PostgreSQL is reached by URL
(`postgresql+asyncpg://...`) and needs none of this.

What keeps SQLite fast and calm under concurrency:

- Writers queue per process on an asyncio lock *before* `BEGIN IMMEDIATE`, so at most one
  connection per process waits in SQLite's busy handler; `busy_timeout` then only has to
  cover the other processes' short transactions. A lock that still cannot be had is a
  `contention` error the gateway answers with a retryable `SlowDown`, never a 500.
- `read(fn, ...)` runs a whole read-only unit of work (`fn` gets a sync `Session`) right on
  the event loop over a plain `sqlite3` connection: a WAL read never waits for a writer, and
  the request-path lookups it serves take less time than a hop to a thread and back. Other
  databases run `fn` with `AsyncSession.run_sync`.
- `read_driver(fn, fallback, ...)` goes one step further for the hottest lookups: `fn` gets
  that `sqlite3` connection itself (no Session, nothing to clean up) and must answer with one
  statement, which SQLite runs as its own read snapshot. Elsewhere `fallback` runs via `read`.
- `write(fn, ...)` does the same for a write transaction: `fn` is ordinary async code written
  against `AsyncSession` (the repo and audit functions), run to completion in ONE hop on the
  process's writer thread over a plain `sqlite3` connection. Its awaits never suspend there
  (every statement completes synchronously), so the coroutine is driven by hand; code that
  would really suspend is a bug and raises `RuntimeError`. Under a busy event loop each
  aiosqlite hop waits for the loop, and a write transaction holds the lock across all of them,
  so this is what keeps small writes fast. Other databases run `fn` in a normal `session()`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast

from sqlalchemy import Connection, Dialect, Engine, create_engine, event, inspect, pool, text
from sqlalchemy.engine import URL, Result, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InvalidRequestError, NoSuchModuleError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

from residency.meta.errors import DatabaseConfigError, NoDatabase

BUSY_TIMEOUT_MS = 15_000
"""How long a connection waits for another process's write transaction before giving up.

Write transactions are a few statements on local disk and only one per process competes, so
reaching this means the database is overloaded (or stuck): the caller gets `SlowDown`. The
setting `sqlite_busy_timeout_ms` (`RESIDENCY_SQLITE_BUSY_TIMEOUT_MS`) overrides it, through
`busy_timeout_ms=` (tests, or operators who prefer failing fast).
"""
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)
_BEGIN_OPTION = "residency_sqlite_begin"
_MIGRATION_LOCK = 0x7265736964656E63  # "residenc"
# SQLite primary result codes and PostgreSQL SQLSTATEs that mean "another transaction is in
# the way; retry later": busy/locked, serialization failure, deadlock, lock not available.
_SQLITE_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_PG_CONTENTION_STATES = frozenset({"40001", "40P01", "55P03"})

P = ParamSpec("P")
T = TypeVar("T")


def is_contention(exc: BaseException) -> bool:
    """True for a database error that says "too busy right now" (retryable), not a bug."""
    if not isinstance(exc, DBAPIError):
        return False
    orig: Any = exc.orig
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _SQLITE_BUSY_CODES
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state is None:  # asyncpg errors arrive wrapped by SQLAlchemy's adapter
        state = getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    if state is not None:
        return str(state) in _PG_CONTENTION_STATES
    text_ = str(orig).lower()
    return "database is locked" in text_ or "database table is locked" in text_


def alembic_config() -> Config:
    """Alembic settings inside the installed package, so a deployment can migrate itself.

    Alembic is imported here, not at module load: it costs every CLI start ~0.4 s.
    """
    from alembic.config import Config

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

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        busy_timeout_ms: int | None = None,
        create: bool = True,
    ) -> None:
        """`create=False` for work that only reads: a database that does not exist yet (an
        SQLite file that is not there, or one without the residency schema) is `NoDatabase`
        instead of a fresh, empty one. An existing database is still brought up to date."""
        self.create = create
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
            if path is not None and not create and not path.is_file():
                raise NoDatabase(f"no database at {path} (check --config / --data-dir)")
            if path is not None and create:
                _make_parent(path)
            elif not self.url.database or self.url.database == ":memory:":
                # One shared connection, or every checkout would see a new empty database.
                kwargs["poolclass"] = pool.StaticPool
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: AsyncEngine = _create_engine(self.url, kwargs)
        self._write_engine = self.engine
        self._sync_reads: _SyncReads | None = None
        self._sync_writes: _SyncWrites | None = None
        if self.is_sqlite:
            busy = BUSY_TIMEOUT_MS if busy_timeout_ms is None else busy_timeout_ms
            _install_sqlite_hooks(self.engine.sync_engine, busy)
            self._write_engine = self.engine.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
            if _sqlite_file(self.url) is not None:
                self._sync_reads = _SyncReads(self.url, busy)
                self._sync_writes = _SyncWrites(self.url, busy, self.engine.sync_engine)
        self._writer = async_sessionmaker(self._write_engine, expire_on_commit=False)
        self._reader = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._write_owner: asyncio.Task[Any] | None = None

    @asynccontextmanager
    async def session(self, *, write: bool = True) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block ends, rolled back if it raises.

        Pass `write=False` for read-only work on the hot path (SQLite then lets it run
        beside a writer instead of queueing for the write lock). On SQLite a write session
        first waits its turn on the process's writer queue: never open one inside another
        (that raises RuntimeError: the inner one would wait for the outer one forever).
        """
        if not write:
            async with self._reader() as session, session.begin():
                yield session
            return
        lock = self._writer_lock()
        if lock is None:
            async with self._writer() as session, session.begin():
                yield session
            return
        async with self._write_turn(lock), self._writer() as session, session.begin():
            yield session

    async def read(
        self, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn(session, *args, **kwargs)` in one read-only transaction; return its result.

        `fn` is synchronous, must only read and must be short (a request's lookup): on an
        SQLite file it runs on the event loop itself, on the loop's own connection (WAL: it
        never waits for a writer). Returned ORM objects are detached with their loaded
        attributes; load everything the caller needs inside `fn`.
        """

        def call(session: Session) -> T:
            return fn(session, *args, **kwargs)

        if self._sync_reads is not None:
            return self._sync_reads.inline(call)
        async with self.session(write=False) as session:
            return await session.run_sync(call)

    async def read_driver(
        self,
        fn: Callable[Concatenate[sqlite3.Connection, Dialect, P], T],
        fallback: Callable[Concatenate[Session, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """`fn(connection, dialect, *args, **kwargs)` on an SQLite file's read connection;
        `read(fallback, *args, **kwargs)` on any other database.

        For request-path lookups where a Session's per-call bookkeeping costs more than the
        query. `fn` runs on the event loop like `read`, on a read-only (`query_only`)
        connection in autocommit mode: each statement is its own snapshot, so a lookup that
        must be consistent across tables must be ONE statement (or open its own transaction
        and always end it). It must not keep the connection, and must return plain values.
        """
        if self._sync_reads is not None:
            raw, dialect = self._sync_reads.driver()
            return fn(raw, dialect, *args, **kwargs)
        return await self.read(fallback, *args, **kwargs)

    async def write(
        self,
        fn: Callable[Concatenate[AsyncSession, P], Awaitable[T]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run `await fn(session, *args, **kwargs)` in one write transaction; return its result.

        Committed when `fn` returns, rolled back if it raises, like a `session()` block. On an
        SQLite file the whole transaction is one hop to the writer thread (see the module
        docstring): `fn` may await the session and other such functions, nothing else (no
        sleeps, locks, network), and must not open another session. Returned ORM objects are
        detached with their loaded attributes.
        """
        if self._sync_writes is None:
            async with self.session() as session:
                return await fn(session, *args, **kwargs)
        writes = self._sync_writes
        lock = self._writer_lock()
        assert lock is not None  # SQLite always has the writer queue
        async with self._write_turn(lock):
            return await writes.run(lambda session: fn(session, *args, **kwargs))

    @asynccontextmanager
    async def _write_turn(self, lock: asyncio.Lock) -> AsyncIterator[None]:
        """This task's turn in the process's writer queue (a nested write would deadlock)."""
        task = asyncio.current_task()
        if task is not None and self._write_owner is task:
            raise RuntimeError("a write session was opened inside another one (would deadlock)")
        async with lock:
            self._write_owner = task
            try:
                yield
            finally:
                self._write_owner = None

    def _writer_lock(self) -> asyncio.Lock | None:
        """The per-process writer queue for SQLite (one per event loop; none for PostgreSQL)."""
        if not self.is_sqlite:
            return None
        loop = asyncio.get_running_loop()
        if self._write_lock is None or self._write_lock[0] is not loop:
            self._write_lock = (loop, asyncio.Lock())
        return self._write_lock[1]

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""
        async with self._write_engine.begin() as conn:
            if not self.is_sqlite:
                # Several gateway processes may start at once: one migrates, the rest wait.
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            await conn.run_sync(_upgrade_head, self.create)

    async def dispose(self) -> None:
        if self._sync_reads is not None:
            await asyncio.to_thread(self._sync_reads.close)
        if self._sync_writes is not None:
            await asyncio.to_thread(self._sync_writes.close)
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


def _upgrade_head(connection: Connection, create: bool = True) -> None:
    """Bring the schema to head; a database already there costs one query, not Alembic.

    Importing Alembic (and, through env.py, every model module) and loading the revision
    scripts took ~0.25 s of every CLI command. It happens only when the database is not
    stamped with exactly the head revision: fresh, older (upgraded), or one this version
    does not know, which Alembic refuses; that refusal becomes a `DatabaseConfigError`
    with Alembic's own message, so callers print it as one line. With `create=False` a
    database with no schema at all is `NoDatabase`, never a freshly created one.
    """
    stamped = _stamped_revisions(connection)
    if stamped == [SCHEMA_HEAD]:
        return
    if not stamped and not create:
        shown = connection.engine.url.render_as_string(hide_password=True)
        raise NoDatabase(f"no residency database at {shown}: it has no residency tables")
    from alembic import command
    from alembic.util import CommandError

    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    try:
        command.upgrade(cfg, "head")
    except CommandError as exc:
        raise DatabaseConfigError(str(exc)) from None


_VERSION_TABLE = "alembic_version"  # Alembic's default; env.py does not rename it
SCHEMA_HEAD = "0008"
"""The newest migration in `migrations/versions`; a test fails when a new one is added
without moving this (it compares with Alembic's own head)."""


def _stamped_revisions(connection: Connection) -> list[str]:
    """The revisions the database is stamped with; none for a fresh one."""
    if not inspect(connection).has_table(_VERSION_TABLE):
        return []
    rows = connection.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}"))
    return list(rows.scalars())


class _SyncReads:
    """A read-only sqlite3 connection for `Database.read`, used on the event-loop thread.

    A WAL read never waits for a writer and a request's lookup takes well under a millisecond,
    while a hop to a worker thread and back costs ~0.3 ms plus GIL hand-offs: on the request
    path the hop cost more than the query. `SingletonThreadPool` keeps the connection on the
    thread that made it.
    """

    def __init__(self, async_url: URL, busy_timeout_ms: int) -> None:
        self.engine: Engine = create_engine(
            async_url.set(drivername="sqlite+pysqlite"), poolclass=pool.SingletonThreadPool
        )
        _install_sqlite_hooks(self.engine, busy_timeout_ms, read_only=True)
        self._connection: Connection | None = None
        self._session: Session | None = None
        self._driver: tuple[sqlite3.Connection, Dialect] | None = None

    def _open(self) -> Session:
        # One session on one connection for the process's life: setting up a Session and
        # checking out a connection per call cost more than the lookups themselves.
        if self._session is None:
            self._connection = self.engine.connect()
            self._session = Session(bind=self._connection, expire_on_commit=False)
            raw = self._connection.connection.driver_connection
            if not isinstance(raw, sqlite3.Connection):  # pysqlite always gives one
                raise RuntimeError(f"expected an sqlite3 connection, got {type(raw).__name__}")
            self._driver = (raw, self.engine.dialect)
        return self._session

    def driver(self) -> tuple[sqlite3.Connection, Dialect]:
        """The `sqlite3` connection under the session (idle between `inline` calls: each
        ends its transaction) and the dialect, for `Database.read_driver`."""
        if self._driver is None:
            self._open()
            assert self._driver is not None
        return self._driver

    def inline(self, fn: Callable[[Session], T]) -> T:
        # Each call is its own read transaction (a fresh snapshot), and the identity map is
        # emptied after it, so results are detached and nothing stale is ever served.
        session = self._open()
        try:
            return fn(session)
        finally:
            session.expunge_all()
            session.rollback()

    def close(self) -> None:
        self._driver = None
        if self._session is not None:
            self._session.close()
        if self._connection is not None:
            self._connection.close()
        self.engine.dispose()


class _SyncWrites:
    """The writer thread: one sqlite3 connection, `BEGIN IMMEDIATE`, for `Database.write`."""

    def __init__(self, async_url: URL, busy_timeout_ms: int, logical: Engine) -> None:
        self.engine: Engine = create_engine(
            async_url.set(drivername="sqlite+pysqlite"),
            poolclass=pool.QueuePool,
            pool_size=1,
            max_overflow=0,
        )
        _install_sqlite_hooks(self.engine, busy_timeout_ms)
        self.engine = self.engine.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.logical = logical
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="residency-meta-write")

    async def run(self, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._in_thread, fn)

    def _in_thread(self, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        with self.sessions() as session, session.begin():
            facade = _SyncSessionFacade(session, self.logical)
            return _run_to_completion(fn(cast(AsyncSession, facade)))

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.engine.dispose()


def _run_to_completion(awaitable: Awaitable[T]) -> T:
    """Drive a coroutine whose awaits all complete at once; refuse one that would suspend."""
    coro = cast(Coroutine[Any, Any, T], awaitable)
    try:
        coro.send(None)
    except StopIteration as done:
        return cast(T, done.value)
    coro.close()
    raise RuntimeError(
        "a Database.write unit of work awaited something other than the database session"
    )


class _SyncSessionFacade:
    """The slice of `AsyncSession` the repo and audit functions use, over a sync `Session`.

    Each coroutine method completes without suspending. `get_bind()` answers with the
    database's own engine (dialect, URL), which is what callers ask it about.
    """

    def __init__(self, session: Session, logical: Engine) -> None:
        self.sync_session = session
        self._logical = logical

    @property
    def info(self) -> dict[Any, Any]:
        return self.sync_session.info

    def get_bind(self, *args: Any, **kwargs: Any) -> Engine:
        return self._logical

    def add(self, instance: object) -> None:
        self.sync_session.add(instance)

    def add_all(self, instances: Iterable[object]) -> None:
        self.sync_session.add_all(instances)

    async def execute(self, *args: Any, **kwargs: Any) -> Result[Any]:
        return self.sync_session.execute(*args, **kwargs)

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        return self.sync_session.scalar(*args, **kwargs)

    async def scalars(self, *args: Any, **kwargs: Any) -> Any:
        return self.sync_session.scalars(*args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return self.sync_session.get(*args, **kwargs)

    async def delete(self, instance: object) -> None:
        self.sync_session.delete(instance)

    async def flush(self, objects: Any = None) -> None:
        self.sync_session.flush(objects)

    async def refresh(self, instance: object, *args: Any, **kwargs: Any) -> None:
        self.sync_session.refresh(instance, *args, **kwargs)

    async def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return fn(self.sync_session, *args, **kwargs)


def _install_sqlite_hooks(
    sync_engine: Engine, busy_timeout_ms: int, *, read_only: bool = False
) -> None:
    pragmas: tuple[str, ...] = (*SQLITE_PRAGMAS, f"PRAGMA busy_timeout={busy_timeout_ms}")
    if read_only:
        pragmas = (*pragmas, "PRAGMA query_only=ON")

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 module (it skips it for SELECT and DDL, which
        # breaks isolation and transactional DDL); the "begin" hook below emits our own.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in pragmas:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN"))
