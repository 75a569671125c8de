"""Request-path SELECTs on SQLite run straight through the driver connection.

Per execution SQLAlchemy spends far more Python time (statement cache lookup, execution
context, result metadata, the Session's transaction bookkeeping) than SQLite spends answering
an indexed lookup. `Prepared` keeps what SQLAlchemy would produce anyway: the SQL its compiler
renders for the dialect and every column's result processor (so dates, JSON and booleans come
back exactly as through Core), and runs it on the `sqlite3` connection that
`Database.read_driver` hands out. That connection is in autocommit mode: one statement is one
read snapshot, so a lookup spanning several tables is written as one statement.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import CompoundSelect, Dialect, Select

Row = dict[str, Any]


class _Compiled:
    __slots__ = ("binds", "converters", "sql")

    def __init__(self, stmt: Select[Any] | CompoundSelect[Any], dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql = str(compiled)
        self.binds: tuple[tuple[str, Callable[[Any], Any] | None], ...] = tuple(
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in compiled.positiontup or ()
        )
        processors = [
            col.type.dialect_impl(dialect).result_processor(dialect, None)
            for col in stmt.selected_columns
        ]
        self.converters = tuple(
            (index, process) for index, process in enumerate(processors) if process is not None
        )


class Prepared:
    """A Core SELECT, compiled once per dialect, executed on a raw `sqlite3` connection."""

    def __init__(self, stmt: Select[Any] | CompoundSelect[Any]) -> None:
        self.stmt = stmt
        self.names: tuple[str, ...] = tuple(str(col.key) for col in stmt.selected_columns)
        """Column labels, in the order of `values` rows."""
        self.index = {name: i for i, name in enumerate(self.names)}
        self._by_dialect: weakref.WeakKeyDictionary[Dialect, _Compiled] = (
            weakref.WeakKeyDictionary()
        )

    def values(
        self, raw: sqlite3.Connection, dialect: Dialect, params: Mapping[str, Any]
    ) -> list[Sequence[Any]]:
        """All result rows as value sequences in `names` order, converted as Core would."""
        compiled = self._by_dialect.get(dialect)
        if compiled is None:
            compiled = self._by_dialect[dialect] = _Compiled(self.stmt, dialect)
        args = [
            params[name] if process is None else process(params[name])
            for name, process in compiled.binds
        ]
        rows: list[Sequence[Any]] = raw.execute(compiled.sql, args).fetchall()
        converters = compiled.converters
        if converters:
            for i, found in enumerate(rows):
                row = list(found)
                for index, process in converters:
                    if (value := row[index]) is not None:
                        row[index] = process(value)
                rows[i] = row
        return rows

    def rows(
        self, raw: sqlite3.Connection, dialect: Dialect, params: Mapping[str, Any]
    ) -> list[Row]:
        """All result rows as {column label: value}, values converted as Core would."""
        names = self.names
        return [dict(zip(names, row, strict=True)) for row in self.values(raw, dialect, params)]
