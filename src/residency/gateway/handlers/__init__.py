"""S3 operation name -> handler coroutine, split by topic.

Every handler is wrapped so that an access denial raised anywhere inside it is audited once,
after the handler's own transaction has ended (see `gateway.authorize`).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping

from starlette.responses import Response

from residency.gateway.authorize import Denied, record_denial
from residency.gateway.context import RequestContext
from residency.gateway.handlers import (
    attributes,
    buckets,
    copy,
    listing,
    multipart,
    objects,
    tagging,
)

Handler = Callable[[RequestContext], Awaitable[Response]]


def _audit_denials(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def run(ctx: RequestContext) -> Response:
        try:
            return await handler(ctx)
        except Denied as denial:
            await record_denial(ctx, denial)
            raise

    return run


_BY_OPERATION: Mapping[str, Handler] = {
    "ListBuckets": buckets.list_buckets,
    "CreateBucket": buckets.create_bucket,
    "HeadBucket": buckets.head_bucket,
    "DeleteBucket": buckets.delete_bucket,
    "GetBucketLocation": buckets.get_bucket_location,
    "GetBucketVersioning": buckets.get_bucket_versioning,
    "PutBucketVersioning": buckets.put_bucket_versioning,
    "GetPublicAccessBlock": buckets.get_public_access_block,
    "PutPublicAccessBlock": buckets.put_public_access_block,
    "DeletePublicAccessBlock": buckets.delete_public_access_block,
    "ListObjects": listing.list_objects_v1_handler,
    "ListObjectsV2": listing.list_objects_v2_handler,
    "ListObjectVersions": listing.list_object_versions_handler,
    "PutObject": objects.put_object,
    "GetObject": objects.get_object,
    "HeadObject": objects.head_object,
    "GetObjectAttributes": attributes.get_object_attributes,
    "DeleteObject": objects.delete_object_handler,
    "DeleteObjects": objects.delete_objects,
    "CopyObject": copy.copy_object,
    "CreateMultipartUpload": multipart.create_multipart_upload,
    "UploadPart": multipart.upload_part,
    "UploadPartCopy": multipart.upload_part_copy,
    "CompleteMultipartUpload": multipart.complete_multipart_upload,
    "AbortMultipartUpload": multipart.abort_multipart_upload,
    "ListParts": multipart.list_parts,
    "ListMultipartUploads": multipart.list_multipart_uploads,
    "GetObjectTagging": tagging.get_object_tagging,
    "PutObjectTagging": tagging.put_object_tagging,
    "DeleteObjectTagging": tagging.delete_object_tagging,
}

HANDLERS: Mapping[str, Handler] = {op: _audit_denials(h) for op, h in _BY_OPERATION.items()}
