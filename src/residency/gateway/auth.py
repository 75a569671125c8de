"""Who is calling: SigV4 or SigV2 (header or presigned), checked against the access keys in
meta.

Anonymous requests are refused: every bucket belongs to a tenant and nothing is public.

Access keys are cached per process for `KEY_CACHE_SECONDS` (derived signing keys are cached by
`sigv4.signing_key`), so a busy client costs no database read per request. The price is a
bound on revocation: a revoked or deleted key keeps working for at most `KEY_CACHE_SECONDS`
in a process that used it just before, and a principal's changed access attributes take as
long to apply. Unknown keys are not cached, so a new key works at once.

A key that signs a request correctly gets its `last_used` stamped (`residency key list`), at
most once per `KEY_USE_RESOLUTION` per process, by a write that runs beside the request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session
from starlette.requests import Request

from residency.audit import append as audit_append
from residency.audit.kinds import ACCESS_DENIED
from residency.gateway import errors, sigv2, sigv4
from residency.gateway.context import Identity
from residency.gateway.routing import virtual_bucket
from residency.gateway.state import Gateway
from residency.meta.db import Database
from residency.meta.repo.tenants import lookup_access_key, record_key_use

log = logging.getLogger("residency.gateway")

KEY_CACHE_SECONDS = 5.0
"""Upper bound on how long a revoked access key keeps working (per gateway process)."""
KEY_CACHE_ENTRIES = 10_000
KEY_USE_RESOLUTION = timedelta(minutes=5)
"""`last_used` (shown by `residency key list`) is stamped at most this often per key, so a busy
client's reads do not all become writes."""


@dataclass(frozen=True, slots=True)
class KnownKey:
    secret: str
    identity: Identity


class AccessKeyCache:
    """Active access keys looked up in the last `ttl` seconds (bounded, oldest dropped first)."""

    def __init__(
        self,
        ttl: float = KEY_CACHE_SECONDS,
        max_entries: int = KEY_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[str, tuple[float, KnownKey]] = {}
        self._stamped: dict[str, float] = {}

    async def get(self, db: Database, access_key_id: str) -> KnownKey | None:
        now = self.clock()
        hit = self._entries.get(access_key_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        found = await db.read(_load, access_key_id)
        if found is None:
            self._entries.pop(access_key_id, None)
            return None
        if len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries.pop(access_key_id, None)  # re-insert: keep the dict in expiry order
        self._entries[access_key_id] = (now + self.ttl, found)
        return found

    def use_due(self, access_key_id: str) -> bool:
        """True at most once per `KEY_USE_RESOLUTION` per key: time to stamp `last_used`."""
        now = self.clock()
        last = self._stamped.get(access_key_id)
        if last is not None and now - last < KEY_USE_RESOLUTION.total_seconds():
            return False
        if len(self._stamped) >= self.max_entries:
            self._stamped.pop(next(iter(self._stamped)))
        self._stamped.pop(access_key_id, None)  # re-insert: keep the dict oldest-first
        self._stamped[access_key_id] = now
        return True


_stamps: set[asyncio.Task[None]] = set()  # running `last_used` writes (kept referenced)


def stamp_key_use(gw: Gateway, access_key_id: str) -> None:
    """Record that a key was just used, off the request's path: a failure is only logged."""

    async def stamp() -> None:
        try:
            await gw.db.write(record_key_use, access_key_id, resolution=KEY_USE_RESOLUTION)
        except Exception:
            log.warning("could not record the use of access key %s", access_key_id, exc_info=True)

    task = asyncio.get_running_loop().create_task(stamp())
    _stamps.add(task)
    task.add_done_callback(_stamps.discard)


def _load(session: Session, access_key_id: str) -> KnownKey | None:
    found = lookup_access_key(session, access_key_id)
    if found is None:
        return None
    return KnownKey(
        found.key.secret,
        Identity(
            tenant_id=found.tenant.id,
            tenant=found.tenant.name,
            principal_id=found.principal.id,
            principal=found.principal.name,
            access_key_id=access_key_id,
            attributes=dict(found.principal.attributes or {}),
        ),
    )


def key_cache(request: Request) -> AccessKeyCache:
    """The app's cache (made by the lifespan); one per worker process."""
    cache: AccessKeyCache | None = getattr(request.app.state, "access_keys", None)
    if cache is None:
        cache = request.app.state.access_keys = AccessKeyCache()
    return cache


async def authenticate(
    gw: Gateway, request: Request, parts: sigv4.RequestParts
) -> tuple[Identity, sigv4.VerifiedAuth]:
    """Verify the request's signature (`parts`: the request's, made once per request);
    raise the S3 error a client expects otherwise.

    SigV4 and SigV2, each in an `Authorization` header or presigned (SigV2 presigned URLs are
    what boto3's `generate_presigned_url` makes by default), are accepted.
    """
    cache = key_cache(request)
    v2 = sigv2.parse(parts)
    if v2 is not None:
        key_id = v2.access_key_id
        found = await cache.get(gw.db, key_id)
        if found is None:
            raise errors.invalid_access_key_id(key_id)
        bucket = virtual_bucket(request.headers.get("host", ""), gw.base_domains)
        verified = sigv2.verify(
            v2, parts, found.secret, bucket=bucket, region=gw.settings.region_name
        )
    else:
        parsed = sigv4.parse(parts)
        if parsed is None:
            raise errors.access_denied("Anonymous access is not allowed; sign the request (SigV4).")
        key_id = parsed.credential.access_key_id
        found = await cache.get(gw.db, key_id)
        if found is None:
            raise errors.invalid_access_key_id(key_id)
        verified = sigv4.verify(parsed, parts, found.secret)
    if cache.use_due(key_id):
        stamp_key_use(gw, key_id)
    return found.identity, verified


async def audit_denial(gw: Gateway, identity: Identity, operation: str, target: str) -> None:
    """Record an authenticated caller being refused (e.g. another tenant's bucket).

    Runs in its own transaction after the request's own one ended; a failure to audit is
    logged, never turned into a different answer for the client.
    """
    try:
        await gw.db.write(
            audit_append,
            ACCESS_DENIED,
            actor=identity.actor,
            tenant=identity.tenant,
            target=target,
            detail={"operation": operation},
        )
    except Exception:
        log.exception("could not audit an access denial for %s", identity.actor)
