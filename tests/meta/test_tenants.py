"""Tenants, principals and access keys."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from residency.meta import Database
from residency.meta.errors import AlreadyExists, InvalidName, NoSuchAccessKey, NoSuchPrincipal
from residency.meta.models import Tenant
from residency.meta.repo import tenants
from residency.meta.types import utcnow


async def test_tenant_names(db: Database) -> None:
    async with db.session() as s:
        await tenants.create_tenant(s, "acme-2")
        with pytest.raises(AlreadyExists, match="acme-2"):
            await tenants.create_tenant(s, "acme-2")
        for bad in ("", "Acme", "-x", "a" * 64, "a_b", "a b"):
            with pytest.raises(InvalidName):
                await tenants.create_tenant(s, bad)
        assert [t.name for t in await tenants.list_tenants(s)] == ["acme-2"]


async def test_principals_and_attributes(db: Database, tenant: Tenant) -> None:
    async with db.session() as s:
        p = await tenants.create_principal(s, tenant, "alice@example.com", {"country": "US"})
        await tenants.create_principal(s, tenant, "batch-job")
        with pytest.raises(AlreadyExists):
            await tenants.create_principal(s, tenant, "batch-job")
        with pytest.raises(InvalidName):
            await tenants.create_principal(s, tenant, "no spaces")
        other = await tenants.create_tenant(s, "other")
        # The same name in another tenant is a different principal.
        await tenants.create_principal(s, other, "batch-job")
        await tenants.set_principal_attributes(s, p, {"country": "DE", "covered_person": True})
    async with db.session(write=False) as s:
        got = await tenants.get_principal(s, tenant, "alice@example.com")
        assert got.attributes == {"country": "DE", "covered_person": True}
        assert [x.name for x in await tenants.list_principals(s, tenant)] == [
            "alice@example.com",
            "batch-job",
        ]
        with pytest.raises(NoSuchPrincipal):
            await tenants.get_principal(s, tenant, "nobody")


async def test_access_key_lifecycle(db: Database, tenant: Tenant) -> None:
    async with db.session() as s:
        p = await tenants.create_principal(s, tenant, "alice")
        new = await tenants.create_access_key(s, p)
    assert re.fullmatch(r"AKIA[A-Z2-7]{16}", new.access_key_id)
    assert len(new.secret) == 40

    async with db.session(write=False) as s:
        ctx = await tenants.resolve_access_key(s, new.access_key_id)
    assert ctx is not None
    assert ctx.key.secret == new.secret
    assert (ctx.principal.name, ctx.tenant.name) == ("alice", "acme")

    async with db.session() as s:
        await tenants.revoke_access_key(s, new.access_key_id)
        with pytest.raises(NoSuchAccessKey):
            await tenants.revoke_access_key(s, "AKIANOSUCHKEY0000000")
    async with db.session(write=False) as s:
        assert await tenants.resolve_access_key(s, new.access_key_id) is None
        assert await tenants.resolve_access_key(s, "AKIANOSUCHKEY0000000") is None
        [(key, principal)] = await tenants.list_access_keys(s, tenant=tenant)
    assert (key.status, principal.name) == ("revoked", "alice")


async def test_imported_keys_and_their_rules(db: Database, tenant: Tenant) -> None:
    async with db.session() as s:
        p = await tenants.create_principal(s, tenant, "ci")
        new = await tenants.create_access_key(
            s, p, access_key_id="AKIAIOSFODNN7EXAMPLE", secret="wJalrXUtnFEMI/K7MDENG/bPxRfiCY"
        )
        assert new.access_key_id == "AKIAIOSFODNN7EXAMPLE"
        with pytest.raises(AlreadyExists):
            await tenants.create_access_key(s, p, access_key_id="AKIAIOSFODNN7EXAMPLE")
        with pytest.raises(InvalidName, match="access key id"):
            await tenants.create_access_key(s, p, access_key_id="short")
        with pytest.raises(InvalidName, match="secret"):
            await tenants.create_access_key(s, p, secret="tiny")
        second = await tenants.create_access_key(s, p)
        keys = await tenants.list_access_keys(s, principal=p)
    assert {k.access_key_id for k, _ in keys} == {new.access_key_id, second.access_key_id}


async def test_record_key_use_writes_at_most_once_per_resolution(
    db: Database, tenant: Tenant
) -> None:
    async with db.session() as s:
        p = await tenants.create_principal(s, tenant, "alice")
        new = await tenants.create_access_key(s, p)
    t0 = utcnow()
    async with db.session() as s:
        assert await tenants.record_key_use(s, new.access_key_id, now=t0)
        assert not await tenants.record_key_use(s, new.access_key_id, now=t0 + timedelta(minutes=1))
        assert await tenants.record_key_use(s, new.access_key_id, now=t0 + timedelta(minutes=6))
    async with db.session(write=False) as s:
        ctx = await tenants.resolve_access_key(s, new.access_key_id)
    assert ctx is not None
    assert ctx.key.last_used == t0 + timedelta(minutes=6)
