"""Version ids on requests and responses.

A request names a version with `?versionId=` (a copy source with `?versionId=` in
`x-amz-copy-source`). `null` is S3's id of what was written while versioning was off or
suspended; every other id is one this gateway handed out. A malformed id is 400
InvalidArgument and a well-formed unknown one NoSuchVersion, as S3 answers; no id ever
addresses a version it does not name (a DELETE with a made-up id deletes nothing).
"""

from __future__ import annotations

from collections.abc import Mapping

from residency.gateway import errors
from residency.gateway.http import http_date
from residency.meta.models import NULL_VERSION, Bucket, ObjectVersion
from residency.meta.repo.versions import is_version_id

__all__ = [
    "NULL_VERSION",
    "check_version_id",
    "delete_marker_error",
    "missing",
    "requested_version",
    "version_headers",
]


def check_version_id(version_id: str) -> str:
    if not version_id:
        raise errors.invalid_argument(
            "Version id cannot be the empty string", name="versionId", value=version_id
        )
    if not is_version_id(version_id):
        raise errors.invalid_argument(
            "Invalid version id specified", name="versionId", value=version_id
        )
    return version_id


def requested_version(query: Mapping[str, str]) -> str | None:
    """The `versionId` a request names (validated: every handler that takes one reads it
    here before anything else), or None for the current version."""
    version_id = query.get("versionId")
    return None if version_id is None else check_version_id(version_id)


def version_headers(bucket: Bucket, version: ObjectVersion) -> dict[str, str]:
    """`x-amz-version-id` on answers about a version, as S3 sends it: only once the bucket's
    versioning was ever configured (`null` for what was written while it was off)."""
    if bucket.versioning is None and version.is_null_version:
        return {}
    return {"x-amz-version-id": version.s3_version_id}


def delete_marker_error(marker: ObjectVersion, key: str, *, addressed: bool) -> errors.S3Error:
    """What S3 answers a GET/HEAD that meets a delete marker: NoSuchKey when it is the key's
    current version, 405 MethodNotAllowed when the request named it by id; both say so in
    `x-amz-delete-marker` and name the marker."""
    headers = {"x-amz-delete-marker": "true", "x-amz-version-id": marker.s3_version_id}
    if not addressed:
        return errors.S3Error("NoSuchKey", headers=headers, key=key)
    return errors.S3Error(
        "MethodNotAllowed",
        "The specified method is not allowed against this resource.",
        405,
        headers={**headers, "Allow": "DELETE", "Last-Modified": http_date(marker.created)},
        resource_type="DeleteMarker",
    )


def missing(marker: ObjectVersion | None, key: str, version_id: str | None) -> errors.S3Error:
    """Why a request has no version to act on: it met a delete marker, named an unknown
    version, or the key has none."""
    if marker is not None:
        return delete_marker_error(marker, key, addressed=version_id is not None)
    if version_id is not None:
        return errors.no_such_version(key, version_id)
    return errors.no_such_key(key)
