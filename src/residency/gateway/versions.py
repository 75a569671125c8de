"""Version ids on requests, while versioning is not implemented.

Every object has exactly one version, which S3 calls `null` in an unversioned bucket. So
`?versionId=null` addresses the object itself, and any other version id names nothing: the
answer is NoSuchVersion (404), and the request never touches the current object (a DELETE
with a made-up id must not delete it). A copy source's `?versionId=` follows the same rule
(`check_copy_source_version`).
"""

from __future__ import annotations

from collections.abc import Mapping

from residency.gateway import errors
from residency.gateway.routing import Route

__all__ = ["NULL_VERSION", "check_copy_source_version", "refuse_versions"]

NULL_VERSION = "null"

_TAKES_VERSION_ID = frozenset(
    {
        "GetObject",
        "HeadObject",
        "DeleteObject",
        "GetObjectTagging",
        "PutObjectTagging",
        "DeleteObjectTagging",
    }
)


def _check(version_id: str, key: str) -> None:
    if not version_id:
        raise errors.invalid_argument(
            "Version id cannot be the empty string", name="versionId", value=version_id
        )
    if version_id != NULL_VERSION:
        raise errors.no_such_version(key, version_id)


def refuse_versions(route: Route, query: Mapping[str, str]) -> None:
    """Raise NoSuchVersion for a `versionId` other than `null` on an object operation."""
    version_id = query.get("versionId")
    if version_id is None or route.operation not in _TAKES_VERSION_ID:
        return
    _check(version_id, route.key or "")


def check_copy_source_version(version_id: str | None, key: str) -> None:
    """`x-amz-copy-source: bucket/key?versionId=…`: only `null` (the object itself)."""
    if version_id is not None:
        _check(version_id, key)
