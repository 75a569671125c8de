"""Object tagging: get, put, delete. Tags that would reclassify an object are refused."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from residency.gateway import authorize, errors
from residency.gateway.context import RequestContext
from residency.gateway.handlers.common import empty_response, xml_response
from residency.gateway.payload import request_body
from residency.gateway.writes import CLASS_KEY, COUNT_KEY, SUBJECT_KEY
from residency.gateway.xml import parse_tagging, read_body, tagging
from residency.meta.errors import MetaError
from residency.meta.models import Bucket, ObjectVersion
from residency.meta.repo.objects import find_latest, put_tags


def _refuse_reclassification(version: ObjectVersion, tags: dict[str, str]) -> None:
    """Placement was decided from the class and subject at write time; changing them by tag
    would leave bytes where the new class may not live. Re-write (copy) to reclassify."""
    current = {
        CLASS_KEY: version.data_class,
        SUBJECT_KEY: version.subject,
        COUNT_KEY: str(version.subject_count) if version.subject_count is not None else None,
    }
    for name, value in current.items():
        if name in tags and tags[name].strip().lower() != (value or "").lower():
            raise errors.invalid_request(
                f"Tag {name} would reclassify the object (currently {value or 'unset'}); "
                "residency placement is decided at write time: copy the object onto itself "
                f"with x-amz-meta-{name} to reclassify it."
            )


async def _tagged(session: AsyncSession, ctx: RequestContext) -> tuple[Bucket, ObjectVersion]:
    """The object whose tags the request is about, if the caller may manage them."""
    bucket = await authorize.object_bucket(session, ctx)
    version = await find_latest(session, bucket, ctx.key)
    if version is not None and version.is_delete_marker:
        version = None
    await authorize.check_object(ctx, bucket, ctx.key, version, session=session)
    if version is None:
        raise errors.no_such_key(ctx.key)
    return bucket, version


async def get_object_tagging(ctx: RequestContext) -> Response:
    async with ctx.gw.db.session(write=False) as session:
        _, version = await _tagged(session, ctx)
        return xml_response(tagging(version.tags))


async def put_object_tagging(ctx: RequestContext) -> Response:
    tags = dict(parse_tagging(await read_body(request_body(ctx.request, ctx.auth))))
    async with ctx.gw.db.session() as session:
        bucket, version = await _tagged(session, ctx)
        _refuse_reclassification(version, tags)
        await put_tags(session, bucket, ctx.key, tags)
    return empty_response()


async def delete_object_tagging(ctx: RequestContext) -> Response:
    async with ctx.gw.db.session() as session:
        bucket, _ = await _tagged(session, ctx)
        try:
            await put_tags(session, bucket, ctx.key, {})
        except MetaError as exc:
            if exc.code == "NoSuchKey":
                raise errors.no_such_key(ctx.key) from None
            raise
    return empty_response(204)
