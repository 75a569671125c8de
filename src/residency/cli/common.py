"""Plumbing shared by the commands that read settings and touch the metadata database.

Every CLI module is imported for each run (Typer needs their signatures), so the command
modules import settings (pydantic), the database (SQLAlchemy), storage (OpenDAL) and
the rest inside the functions that use them: `residency --help` pays for none of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from residency.cli.output import fail

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from residency.config import Settings
    from residency.meta import Database

T = TypeVar("T")


def cli_settings(
    config: Path | None, data_dir: Path | None = None, *, default_locations: bool = False
) -> Settings:
    """Settings for a command; a bad or missing file is one error line (exit 2).

    With `default_locations`, a config without locations gets the embedded default's, the ones
    `residency serve` uses, so plan/report/sweep see the same places as the gateway.
    """
    from residency.config import ConfigError, load_settings

    try:
        settings = load_settings(config, data_dir=data_dir)
    except ConfigError as exc:
        fail(str(exc))
    if default_locations and not settings.locations:
        from residency.defaults import default_locations as defaults

        settings = settings.model_copy(update={"locations": defaults(settings.data_dir)})
    return settings


def on_database(
    settings: Settings, work: Callable[[Database], Awaitable[T]], *, create: bool = True
) -> T:
    """`asyncio.run` of `work(db)` on the migrated database, disposed of afterwards.

    Callers turn the errors `work` raises into one line. `create=False` for commands that
    only read: a database that is not there is one error line naming where it was looked
    for (exit 2), never a fresh, empty store that answers "all clear". Commands that may
    create it (writers) also sign audit checkpoints every `audit_checkpoint_every` entries.
    A database URL that does not work or a schema this version cannot migrate (one written
    by a newer version) is one error line here.
    """
    import asyncio

    from residency.meta import Database, MetaError

    async def main() -> T:
        if create:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            db = Database(
                settings.db_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms, create=create
            )
        except MetaError as exc:
            fail(exc.message)
        try:
            try:
                await db.migrate()
            except MetaError as exc:
                fail(exc.message)
            if create:
                _sign_checkpoints(settings, db)
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


def _sign_checkpoints(settings: Settings, db: Database) -> None:
    """Appends made by this command sign a checkpoint every `audit_checkpoint_every` entries."""
    from residency.audit import SigningKeyError, configure_checkpoints

    try:
        configure_checkpoints(settings, db)
    except SigningKeyError as exc:
        fail(str(exc))


def run_in_session(
    settings: Settings, work: Callable[[AsyncSession], Awaitable[T]], *, create: bool = True
) -> T:
    """`work(session)` in one write transaction on the migrated database; errors -> one line.

    `create=False` for commands that only read, or that need rows a new database cannot
    have (a tenant, a key): see `on_database`.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from residency.access import AccessError
    from residency.meta import MetaError

    async def in_session(db: Database) -> T:
        async with db.session() as session:
            return await work(session)

    try:
        return on_database(settings, in_session, create=create)
    except (MetaError, AccessError) as exc:
        fail(exc.message)
    except SQLAlchemyError as exc:
        fail(f"database: {getattr(exc, 'orig', None) or exc}")
