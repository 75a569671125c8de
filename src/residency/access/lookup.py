"""Build the access layer's references from metadata rows (gateway and CLI share these)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from residency.access.entities import BucketRef, ObjectRef, PrincipalRef
from residency.meta.models import Bucket, ObjectVersion, Principal, Tenant


async def tenant_name(session: AsyncSession, tenant_id: int) -> str:
    """The tenant's name (served from the session's identity map after the first call)."""
    tenant = await session.get(Tenant, tenant_id)
    if tenant is None:  # pragma: no cover - foreign keys make this impossible
        raise LookupError(f"no tenant with id {tenant_id}")
    return tenant.name


async def principal_ref(session: AsyncSession, principal: Principal) -> PrincipalRef:
    tenant = await session.get(Tenant, principal.tenant_id)
    if tenant is None:  # pragma: no cover - foreign keys make this impossible
        raise LookupError(f"no tenant with id {principal.tenant_id}")
    return PrincipalRef.from_meta(principal, tenant)


async def bucket_ref(session: AsyncSession, bucket: Bucket) -> BucketRef:
    return BucketRef(name=bucket.name, tenant=await tenant_name(session, bucket.tenant_id))


async def object_ref(
    session: AsyncSession,
    bucket: Bucket,
    version: ObjectVersion,
    *,
    countries: Iterable[str] = (),
) -> ObjectRef:
    """An existing version as an access resource; `countries` of the locations holding it."""
    return ObjectRef(
        bucket=bucket.name,
        key=version.key,
        tenant=await tenant_name(session, bucket.tenant_id),
        data_class=version.data_class,
        subject=version.subject,
        subject_count=version.subject_count,
        countries=frozenset(countries),
        version_id=version.version_id,
    )
