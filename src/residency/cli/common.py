"""Plumbing shared by the commands that read settings and touch the metadata database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from residency.cli.output import fail
from residency.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


def cli_settings(
    config: Path | None, data_dir: Path | None = None, *, default_locations: bool = False
) -> Settings:
    """Settings for a command; a bad or missing file is one error line (exit 2).

    With `default_locations`, a config without locations gets the embedded default's, the ones
    `residency serve` uses, so plan/report/sweep see the same places as the gateway.
    """
    try:
        settings = load_settings(config, data_dir=data_dir)
    except ConfigError as exc:
        fail(str(exc))
    if default_locations and not settings.locations:
        from residency.defaults import default_locations as defaults

        settings = settings.model_copy(update={"locations": defaults(settings.data_dir)})
    return settings


def run_in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """`work(session)` in one write transaction on the migrated database; errors -> one line."""
    from sqlalchemy.exc import SQLAlchemyError

    from residency.access import AccessError
    from residency.meta import Database, MetaError

    async def main() -> T:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.db_url)
        try:
            await db.migrate()
            async with db.session() as session:
                return await work(session)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except (MetaError, AccessError) as exc:
        fail(exc.message)
    except SQLAlchemyError as exc:
        fail(f"database: {getattr(exc, 'orig', None) or exc}")
