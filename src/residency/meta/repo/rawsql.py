"""Request-path SELECTs on SQLite run straight through the driver connection.

Per execution SQLAlchemy spends far more Python time (statement cache lookup, execution
context, result metadata, the Session's transaction bookkeeping) than SQLite spends answering
an indexed lookup. `Prepared` keeps what SQLAlchemy would produce anyway: the SQL its compiler
renders for the dialect and every column's result processor (so dates, JSON and booleans come
back exactly as through Core), and runs it on the `sqlite3` connection in one explicit read
transaction, i.e. one WAL snapshot across all of a lookup's statements.

Used only where `driver_connection` finds a Session bound to an idle SQLite connection (the
session `Database.read` hands out on an SQLite file); everywhere else callers take the Core path.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Dialect, Select
from sqlalchemy.orm import Session

Row = dict[str, Any]


def driver_connection(session: Session) -> sqlite3.Connection | None:
    """The `sqlite3` connection under `session`, if a lookup may run its own transaction on it.

    Only a Session bound to one SQLite `Connection` with no transaction open (SQLAlchemy's or
    the driver's) qualifies; anything else returns None and the caller uses Core.
    """
    bind = session.bind
    if not isinstance(bind, Connection) or bind.dialect.name != "sqlite":
        return None
    if session.in_transaction() or bind.in_transaction() or bind.closed:
        return None
    raw = bind.connection.driver_connection
    if not isinstance(raw, sqlite3.Connection) or raw.in_transaction:
        return None
    return raw


@contextmanager
def snapshot(raw: sqlite3.Connection) -> Iterator[None]:
    """One read transaction: every statement inside sees the same committed state."""
    raw.execute("BEGIN")
    try:
        yield
    finally:
        raw.execute("ROLLBACK")


class _Compiled:
    __slots__ = ("binds", "converters", "names", "sql")

    def __init__(self, stmt: Select[Any], dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql = str(compiled)
        self.binds: tuple[tuple[str, Callable[[Any], Any] | None], ...] = tuple(
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in compiled.positiontup or ()
        )
        columns = list(stmt.selected_columns)
        self.names = tuple(str(col.key) for col in columns)
        processors = [
            col.type.dialect_impl(dialect).result_processor(dialect, None) for col in columns
        ]
        self.converters = tuple(
            (name, process)
            for name, process in zip(self.names, processors, strict=True)
            if process is not None
        )


class Prepared:
    """A Core SELECT, compiled once per dialect, executed on a raw `sqlite3` connection."""

    def __init__(self, stmt: Select[Any]) -> None:
        self.stmt = stmt
        self._by_dialect: weakref.WeakKeyDictionary[Dialect, _Compiled] = (
            weakref.WeakKeyDictionary()
        )

    def rows(
        self, raw: sqlite3.Connection, dialect: Dialect, params: Mapping[str, Any]
    ) -> list[Row]:
        """All result rows as {column label: value}, values converted as Core would."""
        compiled = self._by_dialect.get(dialect)
        if compiled is None:
            compiled = self._by_dialect[dialect] = _Compiled(self.stmt, dialect)
        args = [
            params[name] if process is None else process(params[name])
            for name, process in compiled.binds
        ]
        names, converters = compiled.names, compiled.converters
        rows = []
        for values in raw.execute(compiled.sql, args).fetchall():
            row = dict(zip(names, values, strict=True))
            for name, process in converters:
                if (value := row[name]) is not None:
                    row[name] = process(value)
            rows.append(row)
        return rows
