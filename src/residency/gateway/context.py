"""Per-request context handed to every handler."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from residency.access import PrincipalRef
from residency.audit import append as audit_append
from residency.audit.kinds import AuditKind
from residency.gateway import errors
from residency.gateway.routing import Route
from residency.gateway.sigv4 import VerifiedAuth
from residency.gateway.state import Gateway


@dataclass(frozen=True, slots=True)
class Identity:
    """Who signed the request: an access key of a principal of a tenant."""

    tenant_id: int
    tenant: str
    principal_id: int
    principal: str
    access_key_id: str
    attributes: Mapping[str, Any] | None = None
    """The principal's access attributes when authentication loaded them (None: not loaded)."""

    @property
    def actor(self) -> str:
        """How the audit log names this caller (never the secret)."""
        return f"{self.tenant}/{self.principal} ({self.access_key_id})"


@dataclass
class RequestContext:
    gw: Gateway
    request: Request
    route: Route
    request_id: str
    identity: Identity
    auth: VerifiedAuth
    """What SigV4 verified: payload mode, seed signature and signing key (aws-chunked bodies)."""
    query: Mapping[str, str]
    """The query parameters (the last value of a repeated one), parsed once per request."""
    caller: PrincipalRef | None = None
    """The signer as an access principal, resolved once by `authorize.caller`."""

    async def audit(
        self,
        session: AsyncSession,
        kind: AuditKind | str,
        target: str,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Append an audit entry on behalf of this request's caller, in `session`'s
        transaction (it commits, or rolls back, with the change it records)."""
        await audit_append(
            session,
            kind,
            actor=self.identity.actor,
            tenant=self.identity.tenant,
            target=target,
            detail=detail,
        )

    @property
    def bucket(self) -> str:
        if self.route.bucket is None:  # routing never sends bucket operations here without one
            raise errors.invalid_request("This operation needs a bucket.")
        return self.route.bucket

    @property
    def key(self) -> str:
        if not self.route.key:
            raise errors.invalid_request("This operation needs an object key.")
        return self.route.key

    @property
    def headers(self) -> Any:
        return self.request.headers
