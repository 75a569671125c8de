"""Everything the gateway opens once per process: database, catalog, locations, policy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from residency.catalog import Catalog, load_catalog
from residency.config import Settings
from residency.meta import Database
from residency.policy import Policy, load_policy
from residency.storage import Location, open_locations

DEFAULT_POLICY = "preset:default"


@dataclass
class Gateway:
    """Process-wide state shared by every request; immutable after startup except the DB pool."""

    settings: Settings
    db: Database
    catalog: Catalog
    locations: Mapping[str, Location]
    policy: Policy
    base_domains: tuple[str, ...]

    @classmethod
    async def open(cls, settings: Settings, base_domains: tuple[str, ...]) -> Gateway:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        catalog = load_catalog()
        policy = load_policy(str(settings.policy) if settings.policy else DEFAULT_POLICY)
        locations = open_locations(settings, catalog)
        db = Database(settings.db_url)
        try:
            await db.migrate()
        except BaseException:
            await db.dispose()
            raise
        return cls(settings, db, catalog, locations, policy, base_domains)

    async def close(self) -> None:
        await self.db.dispose()
