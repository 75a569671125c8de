"""Bucket operations: list, create (with residency defaults), head, delete, location."""

from __future__ import annotations

from starlette.responses import Response

from residency.audit.kinds import ADMIN, DELETE
from residency.gateway import authorize, errors
from residency.gateway.context import RequestContext
from residency.gateway.handlers.common import empty_response, owner, xml_response
from residency.gateway.handlers.listing import decode_token, encode_token
from residency.gateway.payload import request_body
from residency.gateway.xml import (
    BucketEntry,
    list_all_my_buckets,
    location_constraint,
    parse_create_bucket_configuration,
    parse_public_access_block,
    parse_versioning_configuration,
    public_access_block,
    read_body,
    versioning_configuration,
)
from residency.meta.models import Tenant
from residency.meta.repo import buckets as bucket_repo
from residency.policy import ClassificationError, PolicyError, load_policy, preset_names
from residency.policy.classify import normalize_class, normalize_subject
from residency.policy.effective import effective_policy

DEFAULT_CLASS_HEADER = "x-residency-default-class"
DEFAULT_SUBJECT_HEADER = "x-residency-default-subject"
POLICY_HEADER = "x-residency-policy"


MAX_BUCKETS = 10_000


def _max_buckets(ctx: RequestContext) -> int:
    value = ctx.query.get("max-buckets")
    if value is None:
        return MAX_BUCKETS
    number = int(value) if value.isascii() and value.isdigit() and len(value) <= 9 else 0
    if not 1 <= number <= MAX_BUCKETS:
        raise errors.invalid_argument(
            f"Argument max-buckets must be an integer between 1 and {MAX_BUCKETS}",
            name="max-buckets",
            value=value,
        )
    return number


async def list_buckets(ctx: RequestContext) -> Response:
    """ListBuckets with S3's `max-buckets`, `continuation-token` (the last name listed,
    opaque to clients) and `prefix`."""
    limit = _max_buckets(ctx)
    prefix = ctx.query.get("prefix", "")
    token = ctx.query.get("continuation-token")
    after = decode_token(token) if token else ""
    async with ctx.gw.db.session(write=False) as session:
        await authorize.tenant(ctx, session)
        tenant = await session.get(Tenant, ctx.identity.tenant_id)
        assert tenant is not None
        rows = await bucket_repo.list_buckets(
            session, tenant, prefix=prefix, after=after, limit=limit + 1
        )
        entries = [BucketEntry(b.name, b.created) for b in rows[:limit]]
    more = len(rows) > limit
    body = list_all_my_buckets(
        entries,
        owner(ctx),
        continuation_token=encode_token(entries[-1].name) if more else None,
        prefix=prefix if "prefix" in ctx.query else None,
    )
    return xml_response(body)


def _bucket_policy(value: str | None) -> str | None:
    """`x-residency-policy` may only name a preset: a header must never read server files."""
    if value is None or not value.strip():
        return None
    name = value.strip().removeprefix("preset:")
    if name not in preset_names():
        raise errors.invalid_argument(
            f"{POLICY_HEADER} must name a policy preset ({', '.join(sorted(preset_names()))}).",
            name=POLICY_HEADER,
            value=value,
        )
    spec = f"preset:{name}"
    try:
        load_policy(spec)
    except PolicyError as exc:
        raise errors.invalid_argument(str(exc), name=POLICY_HEADER, value=value) from None
    return spec


async def create_bucket(ctx: RequestContext) -> Response:
    await authorize.new_bucket(ctx)
    parse_create_bucket_configuration(await read_body(request_body(ctx.request, ctx.auth)))
    policy_spec = _bucket_policy(ctx.headers.get(POLICY_HEADER))
    policy = effective_policy(ctx.gw.policy, policy_spec)
    try:
        default_class = normalize_class(
            policy, ctx.headers.get(DEFAULT_CLASS_HEADER), DEFAULT_CLASS_HEADER
        )
        default_subject = normalize_subject(
            policy, ctx.headers.get(DEFAULT_SUBJECT_HEADER), DEFAULT_SUBJECT_HEADER
        )
    except ClassificationError as exc:
        raise errors.invalid_argument(str(exc)) from None
    async with ctx.gw.db.session() as session:
        tenant = await session.get(Tenant, ctx.identity.tenant_id)
        assert tenant is not None
        bucket = await bucket_repo.create_bucket(
            session,
            tenant,
            ctx.bucket,
            default_class=default_class,
            default_subject=default_subject,
            policy=policy_spec,
        )
        await ctx.audit(
            session,
            ADMIN,
            f"s3://{bucket.name}",
            {
                "action": "create_bucket",
                "default_class": default_class,
                "default_subject": default_subject,
                "policy": policy_spec,
            },
        )
    return empty_response(headers={"Location": f"/{ctx.bucket}"})


async def head_bucket(ctx: RequestContext) -> Response:
    async with ctx.gw.db.session(write=False) as session:
        await authorize.bucket(session, ctx)
    return empty_response(headers={"x-amz-bucket-region": ctx.gw.settings.region_name})


async def delete_bucket(ctx: RequestContext) -> Response:
    async with ctx.gw.db.session() as session:
        bucket = await authorize.bucket(session, ctx)
        await bucket_repo.delete_bucket(session, bucket)
        await ctx.audit(
            session,
            DELETE,
            f"s3://{ctx.bucket}",
            {"action": "delete_bucket"},
        )
    return empty_response(204)


async def get_bucket_location(ctx: RequestContext) -> Response:
    async with ctx.gw.db.session(write=False) as session:
        await authorize.bucket(session, ctx)
    return xml_response(location_constraint(ctx.gw.settings.region_name))


async def get_bucket_versioning(ctx: RequestContext) -> Response:
    async with ctx.gw.db.session(write=False) as session:
        bucket = await authorize.bucket(session, ctx)
        status = bucket.versioning
    return xml_response(versioning_configuration(status))


async def put_bucket_versioning(ctx: RequestContext) -> Response:
    """Enable or suspend versioning (audited). Every version keeps its own placement: turning
    versioning on keeps old versions' bytes, which plans and reports then count too."""
    status = parse_versioning_configuration(await read_body(request_body(ctx.request, ctx.auth)))
    async with ctx.gw.db.session() as session:
        bucket = await authorize.bucket(session, ctx)
        before = bucket.versioning
        await bucket_repo.set_versioning(session, bucket, status)
        await ctx.audit(
            session,
            ADMIN,
            f"s3://{ctx.bucket}",
            {"action": "put_bucket_versioning", "status": status, "before": before},
        )
    return empty_response()


async def get_public_access_block(ctx: RequestContext) -> Response:
    async with ctx.gw.db.session(write=False) as session:
        bucket = await authorize.bucket(session, ctx)
        flags = bucket.public_access_block
    if flags is None:
        raise errors.S3Error(
            "NoSuchPublicAccessBlockConfiguration",
            "The public access block configuration was not found",
            404,
            bucket_name=ctx.bucket,
        )
    return xml_response(public_access_block(flags))


async def put_public_access_block(ctx: RequestContext) -> Response:
    """Stored and shown as set. Residency serves no anonymous request at all (every request
    is signed by a tenant's key), so every bucket is already what these flags ask for."""
    flags = parse_public_access_block(await read_body(request_body(ctx.request, ctx.auth)))
    await _set_public_access_block(ctx, flags)
    return empty_response()


async def delete_public_access_block(ctx: RequestContext) -> Response:
    await _set_public_access_block(ctx, None)
    return empty_response(204)


async def _set_public_access_block(ctx: RequestContext, flags: dict[str, bool] | None) -> None:
    async with ctx.gw.db.session() as session:
        bucket = await authorize.bucket(session, ctx)
        bucket.public_access_block = flags
        await ctx.audit(
            session,
            ADMIN,
            f"s3://{ctx.bucket}",
            {"action": "put_public_access_block", "flags": flags},
        )
