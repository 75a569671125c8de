"""Who is calling: SigV4 (header or presigned) checked against the access keys in meta.

Anonymous requests are refused: every bucket belongs to a tenant and nothing is public.
"""

from __future__ import annotations

import logging

from starlette.requests import Request

from residency.audit import append as audit_append
from residency.audit.kinds import ACCESS_DENIED
from residency.gateway import errors, sigv4
from residency.gateway.context import Identity
from residency.gateway.state import Gateway
from residency.meta.repo.tenants import resolve_access_key

log = logging.getLogger("residency.gateway")


async def _lookup(gw: Gateway, access_key_id: str) -> tuple[str, Identity] | None:
    async with gw.db.session(write=False) as session:
        found = await resolve_access_key(session, access_key_id)
    if found is None:
        return None
    identity = Identity(
        tenant_id=found.tenant.id,
        tenant=found.tenant.name,
        principal_id=found.principal.id,
        principal=found.principal.name,
        access_key_id=access_key_id,
    )
    return found.key.secret, identity


async def authenticate(gw: Gateway, request: Request) -> tuple[Identity, sigv4.VerifiedAuth]:
    """Verify the request's signature; raise the S3 error a client expects otherwise."""
    parts = sigv4.RequestParts.from_scope(request.scope)
    parsed = sigv4.parse(parts)
    if parsed is None:
        raise errors.access_denied("Anonymous access is not allowed; sign the request (SigV4).")
    found = await _lookup(gw, parsed.credential.access_key_id)
    if found is None:
        raise errors.invalid_access_key_id(parsed.credential.access_key_id)
    secret, identity = found
    verified = sigv4.verify(parsed, parts, secret)
    return identity, verified


async def audit_denial(gw: Gateway, identity: Identity, operation: str, target: str) -> None:
    """Record an authenticated caller being refused (e.g. another tenant's bucket).

    Runs in its own transaction after the request's own one ended; a failure to audit is
    logged, never turned into a different answer for the client.
    """
    try:
        async with gw.db.session() as session:
            await audit_append(
                session,
                ACCESS_DENIED,
                actor=identity.actor,
                tenant=identity.tenant,
                target=target,
                detail={"operation": operation},
            )
    except Exception:
        log.exception("could not audit an access denial for %s", identity.actor)
