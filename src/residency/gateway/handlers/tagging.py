"""Object tagging: get, put, delete. Tags that would reclassify an object are refused."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from residency.gateway import authorize, errors
from residency.gateway.context import RequestContext
from residency.gateway.handlers.common import empty_response, xml_response
from residency.gateway.payload import request_body
from residency.gateway.versions import missing, requested_version, version_headers
from residency.gateway.writes import CLASS_KEY, COUNT_KEY, SUBJECT_KEY
from residency.gateway.xml import parse_tagging, read_body, tagging
from residency.meta.models import Bucket, ObjectVersion
from residency.meta.repo.objects import tag_version
from residency.meta.repo.versions import find_addressed


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


async def _tagged(
    session: AsyncSession, ctx: RequestContext, version_id: str | None
) -> tuple[Bucket, ObjectVersion]:
    """The version whose tags the request is about (`?versionId=`, else the current one), if
    the caller may manage them."""
    bucket = await authorize.object_bucket(session, ctx)
    version = await find_addressed(session, bucket, ctx.key, version_id)
    live = None if version is None or version.is_delete_marker else version
    await authorize.check_object(ctx, bucket, ctx.key, live, session=session)
    if live is None:
        raise missing(version, ctx.key, version_id)  # `version`: None or a delete marker
    return bucket, live


async def get_object_tagging(ctx: RequestContext) -> Response:
    version_id = requested_version(ctx.query)
    async with ctx.gw.db.session(write=False) as session:
        bucket, version = await _tagged(session, ctx, version_id)
        return xml_response(tagging(version.tags), headers=version_headers(bucket, version))


async def put_object_tagging(ctx: RequestContext) -> Response:
    version_id = requested_version(ctx.query)
    tags = dict(parse_tagging(await read_body(request_body(ctx.request, ctx.auth))))
    async with ctx.gw.db.session() as session:
        bucket, version = await _tagged(session, ctx, version_id)
        _refuse_reclassification(version, tags)
        await tag_version(session, version, tags)
        headers = version_headers(bucket, version)
    return empty_response(headers=headers)


async def delete_object_tagging(ctx: RequestContext) -> Response:
    version_id = requested_version(ctx.query)
    async with ctx.gw.db.session() as session:
        bucket, version = await _tagged(session, ctx, version_id)
        await tag_version(session, version, {})
        headers = version_headers(bucket, version)
    return empty_response(204, headers=headers)
