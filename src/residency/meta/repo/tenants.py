"""Tenants, their principals and the principals' access keys."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from residency.meta import ids
from residency.meta.errors import (
    AlreadyExists,
    InvalidName,
    NoSuchAccessKey,
    NoSuchPrincipal,
    NoSuchTenant,
)
from residency.meta.models import AccessKey, Principal, Tenant
from residency.meta.types import utcnow

TENANT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
PRINCIPAL_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
ACCESS_KEY_ID = re.compile(r"[A-Z0-9]{16,128}")
SECRET_KEY = re.compile(r"[\x21-\x7e]{16,128}")


@dataclass(frozen=True, slots=True)
class NewAccessKey:
    """The only moment the secret is handed out; show it once."""

    access_key_id: str
    secret: str
    principal_id: int


@dataclass(frozen=True, slots=True)
class KeyContext:
    """What the gateway needs to verify a request and name the caller: one query."""

    key: AccessKey
    principal: Principal
    tenant: Tenant


# --- tenants -------------------------------------------------------------------------------


async def create_tenant(session: AsyncSession, name: str) -> Tenant:
    if not TENANT_NAME.fullmatch(name):
        raise InvalidName(
            f"invalid tenant name {name!r}: use 1-63 lowercase letters, digits and '-', "
            "starting with a letter or digit"
        )
    if await find_tenant(session, name) is not None:
        raise AlreadyExists(f"tenant {name!r} already exists")
    tenant = Tenant(name=name, created=utcnow())
    session.add(tenant)
    await session.flush()
    return tenant


async def find_tenant(session: AsyncSession, name: str) -> Tenant | None:
    return await session.scalar(select(Tenant).where(Tenant.name == name))


async def get_tenant(session: AsyncSession, name: str) -> Tenant:
    tenant = await find_tenant(session, name)
    if tenant is None:
        raise NoSuchTenant(f"no tenant named {name!r}")
    return tenant


async def list_tenants(session: AsyncSession) -> Sequence[Tenant]:
    return (await session.scalars(select(Tenant).order_by(Tenant.name))).all()


# --- principals ----------------------------------------------------------------------------


async def create_principal(
    session: AsyncSession,
    tenant: Tenant,
    name: str,
    attributes: Mapping[str, Any] | None = None,
) -> Principal:
    if not PRINCIPAL_NAME.fullmatch(name):
        raise InvalidName(
            f"invalid principal name {name!r}: use 1-64 letters, digits and any of _+=,.@-"
        )
    if await find_principal(session, tenant, name) is not None:
        raise AlreadyExists(f"principal {name!r} already exists in tenant {tenant.name!r}")
    principal = Principal(
        tenant_id=tenant.id, name=name, attributes=dict(attributes or {}), created=utcnow()
    )
    session.add(principal)
    await session.flush()
    return principal


async def find_principal(session: AsyncSession, tenant: Tenant, name: str) -> Principal | None:
    return await session.scalar(
        select(Principal).where(Principal.tenant_id == tenant.id, Principal.name == name)
    )


async def get_principal(session: AsyncSession, tenant: Tenant, name: str) -> Principal:
    principal = await find_principal(session, tenant, name)
    if principal is None:
        raise NoSuchPrincipal(f"no principal named {name!r} in tenant {tenant.name!r}")
    return principal


async def list_principals(session: AsyncSession, tenant: Tenant) -> Sequence[Principal]:
    return (
        await session.scalars(
            select(Principal).where(Principal.tenant_id == tenant.id).order_by(Principal.name)
        )
    ).all()


async def set_principal_attributes(
    session: AsyncSession, principal: Principal, attributes: Mapping[str, Any]
) -> Principal:
    """Replace the attribute document (a new dict, so the JSON column sees the change)."""
    principal.attributes = dict(attributes)
    await session.flush()
    return principal


# --- access keys ---------------------------------------------------------------------------


async def create_access_key(
    session: AsyncSession,
    principal: Principal,
    *,
    access_key_id: str | None = None,
    secret: str | None = None,
) -> NewAccessKey:
    """Issue a key pair; explicit values let an operator import existing credentials."""
    key_id = access_key_id or ids.new_access_key_id()
    secret = secret or ids.new_secret_key()
    if not ACCESS_KEY_ID.fullmatch(key_id):
        raise InvalidName(
            f"invalid access key id {key_id!r}: use 16-128 uppercase letters and digits"
        )
    if not SECRET_KEY.fullmatch(secret):
        raise InvalidName("invalid secret key: use 16-128 printable ASCII characters")
    if await session.get(AccessKey, key_id) is not None:
        raise AlreadyExists(f"access key {key_id} already exists")
    session.add(
        AccessKey(
            access_key_id=key_id,
            secret=secret,
            principal_id=principal.id,
            status="active",
            created=utcnow(),
        )
    )
    await session.flush()
    return NewAccessKey(access_key_id=key_id, secret=secret, principal_id=principal.id)


async def list_access_keys(
    session: AsyncSession, *, tenant: Tenant | None = None, principal: Principal | None = None
) -> Sequence[tuple[AccessKey, Principal]]:
    """Keys with their principals (secrets included: callers must not print them)."""
    stmt = (
        select(AccessKey, Principal)
        .join(Principal, Principal.id == AccessKey.principal_id)
        .order_by(Principal.name, AccessKey.created, AccessKey.access_key_id)
    )
    if tenant is not None:
        stmt = stmt.where(Principal.tenant_id == tenant.id)
    if principal is not None:
        stmt = stmt.where(AccessKey.principal_id == principal.id)
    return [(row.AccessKey, row.Principal) for row in await session.execute(stmt)]


async def revoke_access_key(session: AsyncSession, access_key_id: str) -> AccessKey:
    key = await session.get(AccessKey, access_key_id)
    if key is None:
        raise NoSuchAccessKey(f"no access key {access_key_id}")
    key.status = "revoked"
    await session.flush()
    return key


def lookup_access_key(session: Session, access_key_id: str) -> KeyContext | None:
    """The active key with its principal and tenant, in one query; None if unknown/revoked.

    Synchronous, for `Database.read` (the gateway's per-request hop).
    """
    row = session.execute(
        select(AccessKey, Principal, Tenant)
        .join(Principal, Principal.id == AccessKey.principal_id)
        .join(Tenant, Tenant.id == Principal.tenant_id)
        .where(AccessKey.access_key_id == access_key_id, AccessKey.status == "active")
    ).first()
    if row is None:
        return None
    return KeyContext(key=row.AccessKey, principal=row.Principal, tenant=row.Tenant)


async def resolve_access_key(session: AsyncSession, access_key_id: str) -> KeyContext | None:
    """`lookup_access_key` inside an async session."""
    return await session.run_sync(lambda s: lookup_access_key(s, access_key_id))


async def record_key_use(
    session: AsyncSession,
    access_key_id: str,
    *,
    now: datetime | None = None,
    resolution: timedelta = timedelta(minutes=5),
) -> bool:
    """Stamp `last_used`, at most once per `resolution`, so GETs don't all become writes."""
    now = now or utcnow()
    result = await session.execute(
        update(AccessKey)
        .where(
            AccessKey.access_key_id == access_key_id,
            (AccessKey.last_used.is_(None)) | (AccessKey.last_used < now - resolution),
        )
        .values(last_used=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
