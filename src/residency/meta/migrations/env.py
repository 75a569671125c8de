"""Alembic environment for the metadata DB.

`Database.migrate()` hands over an open connection in `config.attributes["connection"]`.
Developers may also run Alembic by hand with `-x url=...` (sync or async driver URL), e.g. to
autogenerate a new revision against a scratch SQLite file; without it the `database_url` setting
from the environment (`RESIDENCY_DATABASE_URL`, read by `residency.config`) is used.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection, create_engine, pool
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from residency.config import settings_from_environment
from residency.meta.models import Base
from residency.meta.schema import full_metadata

config = context.config
target_metadata = Base.metadata


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        **kwargs,  # type: ignore[arg-type]
    )


def _run(connection: Connection) -> None:
    # SQLite cannot ALTER most things in place: future revisions use batch mode there.
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or settings_from_environment().get("database_url")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise SystemExit("give the database URL: alembic -x url=sqlite:///path/to.db ...")
    return url


async def _run_async(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.begin() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


def main() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    full_metadata()  # by hand (autogenerate): see every package's tables
    url = _url()
    if context.is_offline_mode():
        _configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"})
        with context.begin_transaction():
            context.run_migrations()
    elif make_url(url).get_dialect().is_async:
        asyncio.run(_run_async(url))
    else:
        engine = create_engine(url, poolclass=pool.NullPool)
        with engine.begin() as conn:
            _run(conn)
        engine.dispose()


main()
