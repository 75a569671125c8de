"""Everything the gateway opens once per process: database, catalog, locations, policies."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from residency.access import (
    AccessError,
    Authorizer,
    BulkRulesError,
    Ledger,
    PolicyFileError,
    load_authorizer,
)
from residency.audit import configure_checkpoints, seal
from residency.catalog import Catalog, load_catalog
from residency.config import Settings
from residency.meta import Database
from residency.policy import Policy, load_policy
from residency.storage import Location, open_locations

if TYPE_CHECKING:
    from residency.gateway.telemetry import Telemetry

log = logging.getLogger("residency.gateway")

DEFAULT_POLICY = "preset:default"


@dataclass(frozen=True, slots=True)
class AccessControl:
    """The Cedar policies and 28 CFR 202 thresholds, parsed and validated once per process."""

    authorizer: Authorizer
    ledger: Ledger
    enforce: bool = True

    @classmethod
    def load(cls, settings: Settings) -> AccessControl:
        """`AccessError` with one readable line when a policy or threshold file is bad."""
        try:
            authorizer = load_authorizer(
                settings.access_policies, rules_path=settings.bulk_thresholds
            )
        except PolicyFileError as exc:
            first = exc.problems[0] if exc.problems else exc.message
            more = len(exc.problems) - 1
            suffix = f" (and {more} more: run `residency access check`)" if more > 0 else ""
            raise AccessError(f"access policies: {first}{suffix}") from None
        except BulkRulesError as exc:
            raise AccessError(f"bulk thresholds: {exc.message}") from None
        enforce = settings.access_enforcement
        if not enforce:
            # For measuring Cedar's and the ledger's cost only: tenants stay isolated by a
            # plain ownership comparison, nothing else is enforced.
            log.warning(
                "access_enforcement is off: access policies and bulk thresholds are NOT enforced"
            )
        return cls(authorizer, Ledger(authorizer.rules), enforce)


@dataclass
class Gateway:
    """Process-wide state shared by every request; immutable after startup except the DB pool."""

    settings: Settings
    db: Database
    catalog: Catalog
    locations: Mapping[str, Location]
    policy: Policy
    base_domains: tuple[str, ...]
    access: AccessControl
    signing_key: Ed25519PrivateKey | None = None
    """Signs an audit checkpoint every `audit_checkpoint_every` entries and at `close`."""
    telemetry: Telemetry | None = None
    """This process's metrics when the server keeps them (`residency serve --admin-port`)."""

    @classmethod
    async def open(cls, settings: Settings, base_domains: tuple[str, ...]) -> Gateway:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        catalog = load_catalog()
        policy = load_policy(str(settings.policy) if settings.policy else DEFAULT_POLICY)
        access = AccessControl.load(settings)
        locations = open_locations(settings, catalog)
        db = Database(settings.db_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        try:
            await db.migrate()
            key = configure_checkpoints(settings, db)
        except BaseException:
            await db.dispose()
            raise
        return cls(settings, db, catalog, locations, policy, base_domains, access, key)

    async def close(self) -> None:
        """Sign the chain head (a clean shutdown leaves no unsigned tail), then let go."""
        try:
            if self.signing_key is not None:
                await self.db.write(seal, self.signing_key)
        except Exception:
            log.exception("could not sign an audit checkpoint at shutdown")
        finally:
            await self.db.dispose()
