"""Access control on every gateway request: Cedar decides, the 28 CFR 202 ledger counts.

Each handler makes one call here where it resolves its target; the S3 operation -> Cedar
action mapping (`residency.access.S3_OPERATIONS`) and the resource built for it live in this
module only. Cedar's default `tenant-ownership` policy is what keeps tenants apart: there is no
second ownership check in the handlers.

A refusal is a `Denied` (S3 `AccessDenied`, message naming the deciding policy). Its audit
entry is written by `record_denial` once the handler's own transaction has ended (the handler
wrapper in `handlers/__init__.py` calls it), so a rolled-back request still leaves its denial
in the log.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from residency.access import (
    S3_OPERATIONS,
    AccessDecision,
    Action,
    BucketRef,
    ObjectRef,
    PrincipalRef,
    RequestError,
    Resource,
    TenantRef,
)
from residency.access import RequestContext as AccessContext
from residency.access.lookup import tenant_name
from residency.audit import append_many
from residency.audit.kinds import ACCESS_DENIED, THRESHOLD_HIT
from residency.gateway import errors
from residency.gateway.context import RequestContext
from residency.gateway.errors import S3Error
from residency.meta.models import Bucket, MultipartUpload, ObjectVersion, Principal
from residency.meta.repo.buckets import bucket_row, find_bucket
from residency.policy import Classification

log = logging.getLogger("residency.gateway")

PURPOSE_HEADER = "x-residency-purpose"

UNCLASSIFIED = "unclassified"


class Denied(S3Error):
    """AccessDenied carrying the audit entry it owes.

    `audited` tells the app not to add its own generic access-denied entry for this error.
    `pending` is False once the entry was written (in the transaction that decided).
    """

    audited = True

    def __init__(
        self, message: str, *, kind: str, target: str, detail: dict[str, Any], pending: bool = True
    ) -> None:
        super().__init__("AccessDenied", message)
        self.kind = kind
        self.target = target
        self.detail = detail
        self.pending = pending


async def record_denial(ctx: RequestContext, denial: Denied) -> None:
    """Write a denial's audit entry in its own transaction; a failure is logged, not raised."""
    if not denial.pending:
        return
    try:
        await ctx.gw.db.write(ctx.audit, denial.kind, denial.target, denial.detail)
        denial.pending = False
    except Exception:
        log.exception("could not audit an access denial for %s", ctx.identity.actor)


# --------------------------------------------------------------------------- decisions


def operation_action(ctx: RequestContext) -> Action:
    return S3_OPERATIONS[ctx.route.operation]


def _target(resource: Resource) -> str:
    if isinstance(resource, ObjectRef):
        return f"s3://{resource.bucket}/{resource.key}"
    if isinstance(resource, BucketRef):
        return f"s3://{resource.name}"
    return f"tenant/{resource.name}"


@functools.lru_cache(maxsize=4096)
def _ip(host: str) -> str | None:
    """`host` as an IP address; None when it is none (a Unix socket's peer, an in-process
    client): policies on `context.source_ip` then see no address, never a made-up one."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _source_ip(ctx: RequestContext) -> str | None:
    client = ctx.request.client
    return None if client is None else _ip(client.host)


def _context(ctx: RequestContext) -> AccessContext:
    return AccessContext(
        time=datetime.now(UTC),
        source_ip=_source_ip(ctx),
        purpose=ctx.headers.get(PURPOSE_HEADER, ""),
    )


def _denied(ctx: RequestContext, resource: Resource, decision: AccessDecision) -> Denied:
    return Denied(
        decision.message,
        kind=ACCESS_DENIED,
        target=_target(resource),
        detail={"operation": ctx.route.operation, **decision.audit_detail()},
    )


def _owner_only(ctx: RequestContext, resource: Resource) -> None:
    """Enforcement off: tenants still never touch each other's data."""
    if resource.tenant != ctx.identity.tenant:
        raise Denied(
            "Access Denied",
            kind=ACCESS_DENIED,
            target=_target(resource),
            detail={"operation": ctx.route.operation, "reason": "another tenant's resource"},
        )


async def caller(ctx: RequestContext, session: AsyncSession | None = None) -> PrincipalRef:
    """The signer as an access principal (attributes read once per request)."""
    if ctx.caller is not None:
        return ctx.caller
    attributes = ctx.identity.attributes
    if attributes is None:
        if session is None:
            async with ctx.gw.db.session(write=False) as own:
                row = await own.get(Principal, ctx.identity.principal_id)
        else:
            row = await session.get(Principal, ctx.identity.principal_id)
        attributes = row.attributes if row is not None else {}
    try:
        ctx.caller = PrincipalRef.from_attributes(
            ctx.identity.tenant, ctx.identity.principal, attributes
        )
    except RequestError as exc:  # stored attributes the CLI would not accept: fail closed
        raise Denied(
            exc.message,
            kind=ACCESS_DENIED,
            target=f"principal/{ctx.identity.tenant}/{ctx.identity.principal}",
            detail={"operation": ctx.route.operation, "reason": exc.message},
        ) from None
    return ctx.caller


async def check(
    ctx: RequestContext,
    resource: Resource,
    *,
    action: Action | None = None,
    session: AsyncSession | None = None,
) -> None:
    """Raise `Denied` unless Cedar allows the caller `action` (default: the request's)."""
    access = ctx.gw.access
    if not access.enforce:
        _owner_only(ctx, resource)
        return
    who = await caller(ctx, session)
    decision = access.authorizer.authorize(
        who, action or operation_action(ctx), resource, _context(ctx)
    )
    if not decision.allowed:
        raise _denied(ctx, resource, decision)


async def _tenant_of(ctx: RequestContext, bucket: Bucket, session: AsyncSession | None) -> str:
    if bucket.tenant_id == ctx.identity.tenant_id:
        return ctx.identity.tenant
    if session is None:
        async with ctx.gw.db.session(write=False) as own:
            return await tenant_name(own, bucket.tenant_id)
    return await tenant_name(session, bucket.tenant_id)


# --------------------------------------------------------------------------- per resource kind


async def tenant(ctx: RequestContext, session: AsyncSession | None = None) -> None:
    """ListBuckets: on the caller's own tenant."""
    await check(ctx, TenantRef(ctx.identity.tenant), session=session)


async def new_bucket(ctx: RequestContext) -> None:
    """CreateBucket: the bucket would belong to the caller's tenant."""
    await check(ctx, BucketRef(ctx.bucket, ctx.identity.tenant))


async def bucket(
    session: AsyncSession,
    ctx: RequestContext,
    name: str | None = None,
    *,
    action: Action | None = None,
) -> Bucket:
    """The named bucket (NoSuchBucket if none) for a bucket-level operation, if allowed."""
    row = await find_bucket(session, name if name is not None else ctx.bucket)
    if row is None:
        raise errors.no_such_bucket(name if name is not None else ctx.bucket)
    ref = BucketRef(row.name, await _tenant_of(ctx, row, session))
    await check(ctx, ref, action=action, session=session)
    return row


async def object_bucket(
    session: AsyncSession, ctx: RequestContext, name: str | None = None
) -> Bucket:
    """The bucket of an object operation (NoSuchBucket if none), unchecked: the caller must
    then `check_object` before revealing anything about the object. The bucket is a detached
    copy (object operations only read it)."""
    row = await bucket_row(session, name if name is not None else ctx.bucket)
    if row is None:
        raise errors.no_such_bucket(name if name is not None else ctx.bucket)
    if ctx.caller is None and ctx.gw.access.enforce:
        await caller(ctx, session)
    return row


Facts = ObjectVersion | MultipartUpload | Classification | None


async def object_ref(
    ctx: RequestContext,
    bucket: Bucket,
    key: str,
    facts: Facts,
    *,
    locations: Iterable[str] = (),
    session: AsyncSession | None = None,
    tenant: str | None = None,
) -> ObjectRef:
    """An object as a Cedar resource, from whatever the handler knows about it.

    `None` (no such object yet) is judged as the bucket's default class, so whether a key
    exists is never revealed to a caller who may not act on it. `tenant`: the bucket's
    tenant name when the caller already knows it.
    """
    version_id = None
    if isinstance(facts, MultipartUpload):
        locations = facts.locations
    if isinstance(facts, ObjectVersion):
        version_id = facts.version_id
    if facts is None:
        data_class, subject, count = bucket.default_class or UNCLASSIFIED, None, None
    else:
        data_class, subject, count = facts.data_class, facts.subject, facts.subject_count
    countries = {
        loc.facts.country
        for name in locations
        if (loc := ctx.gw.locations.get(name)) is not None and loc.facts.country
    }
    return ObjectRef(
        bucket=bucket.name,
        key=key,
        tenant=tenant if tenant is not None else await _tenant_of(ctx, bucket, session),
        data_class=data_class,
        subject=subject,
        subject_count=count,
        countries=frozenset(countries),
        version_id=version_id,
    )


async def object_refs(
    ctx: RequestContext,
    bucket: Bucket,
    objects: Sequence[tuple[str, Facts, Iterable[str]]],
    *,
    session: AsyncSession | None = None,
) -> list[ObjectRef]:
    """`object_ref` for many (key, facts, locations) of one bucket (DeleteObjects): the
    bucket's tenant is resolved once."""
    if not objects:
        return []
    key, facts, locations = objects[0]
    first = await object_ref(ctx, bucket, key, facts, locations=locations, session=session)
    refs = [first]
    for key, facts, locations in objects[1:]:
        # Same bucket, same tenant: resolved once above.
        refs.append(
            await object_ref(ctx, bucket, key, facts, locations=locations, tenant=first.tenant)
        )
    return refs


async def check_object(
    ctx: RequestContext,
    bucket: Bucket,
    key: str,
    facts: Facts,
    *,
    locations: Iterable[str] = (),
    action: Action | None = None,
    session: AsyncSession | None = None,
) -> ObjectRef:
    """Raise `Denied` unless the caller may do `action` (default: the request's) on the object."""
    ref = await object_ref(ctx, bucket, key, facts, locations=locations, session=session)
    await check(ctx, ref, action=action, session=session)
    return ref


async def charge_read(ctx: RequestContext, obj: ObjectRef) -> None:
    """Count a read of `obj` in the bulk-data ledger; `Denied` past a threshold.

    Only covered principals reading covered US data open a write transaction; the charge,
    and a threshold-hit entry (allowed or not), commit together before the answer is sent.
    """
    access = ctx.gw.access
    if not access.enforce:
        return
    who = await caller(ctx)
    if not access.ledger.applies(who, obj):
        return
    async with ctx.gw.db.session() as session:
        decision = await access.ledger.charge(session, who, obj)
        if decision.audit_kind:
            await ctx.audit(
                session,
                THRESHOLD_HIT,
                _target(obj),
                {"operation": ctx.route.operation, **decision.audit_detail()},
            )
    if decision.audit_kind and ctx.gw.telemetry is not None:
        ctx.gw.telemetry.threshold_hit(decision.category, decision.kind, decision.allowed)
    if not decision.allowed:
        raise Denied(
            decision.reason,
            kind=THRESHOLD_HIT,
            target=_target(obj),
            detail=decision.audit_detail(),
            pending=False,
        )


DECISION_CHUNK = 100
"""Cedar decisions per call when deciding a batch: the event loop gets a turn between calls."""


async def decide_deletes(
    ctx: RequestContext,
    objects: Sequence[ObjectRef],
    *,
    session: AsyncSession | None = None,
    whole_request: bool = True,
) -> list[AccessDecision | None]:
    """DeleteObjects: one decision per key (None: allowed, not evaluated).

    Cedar decides in chunks of `DECISION_CHUNK`; between them, unless `session` is given
    (inside a `Database.write`, which must not suspend), the event loop serves other
    requests. With `whole_request`, no key allowed at all refuses the whole request, as for
    any other operation on a resource the caller may not use. Refused keys are audited by
    `audit_refused_deletes` in the transaction that deletes the others.
    """
    access = ctx.gw.access
    if not objects:
        return []
    if not access.enforce:
        for obj in objects[:1]:
            _owner_only(ctx, obj)
        return [None] * len(objects)
    who = await caller(ctx, session)
    context = _context(ctx)
    decisions: list[AccessDecision] = []
    for start in range(0, len(objects), DECISION_CHUNK):
        if start and session is None:
            await asyncio.sleep(0)
        chunk = objects[start : start + DECISION_CHUNK]
        decisions.extend(
            access.authorizer.authorize_batch(
                who, [(Action.DELETE_OBJECT, obj) for obj in chunk], context
            )
        )
    refused = [(obj, d) for obj, d in zip(objects, decisions, strict=True) if not d.allowed]
    if whole_request and len(refused) == len(objects):
        raise _denied(ctx, refused[0][0], refused[0][1])
    return [None if d.allowed else d for d in decisions]


async def audit_refused_deletes(
    session: AsyncSession,
    ctx: RequestContext,
    refused: Sequence[tuple[ObjectRef, AccessDecision]],
) -> None:
    """One access-denied entry per refused key, written in one statement."""
    await append_many(
        session,
        ACCESS_DENIED,
        [
            (_target(obj), {"operation": ctx.route.operation, **d.audit_detail()})
            for obj, d in refused
        ],
        actor=ctx.identity.actor,
        tenant=ctx.identity.tenant,
    )
