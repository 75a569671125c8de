"""The actions a principal can take: one per S3 operation family, plus administration.

The names are the Cedar action ids of `cedar/residency.cedarschema`; `S3_OPERATIONS` maps
every S3 API operation the gateway serves to its family, so policies stay short and stable
when the gateway learns new operations.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    LIST_BUCKETS = "ListBuckets"
    CREATE_BUCKET = "CreateBucket"
    DELETE_BUCKET = "DeleteBucket"
    LIST_OBJECTS = "ListObjects"
    READ_OBJECT = "ReadObject"
    WRITE_OBJECT = "WriteObject"
    DELETE_OBJECT = "DeleteObject"
    MANAGE_MULTIPART = "ManageMultipart"
    MANAGE_TAGGING = "ManageTagging"
    MANAGE_TENANT = "ManageTenant"
    MANAGE_PRINCIPALS = "ManagePrincipals"
    MANAGE_KEYS = "ManageKeys"
    MANAGE_POLICIES = "ManagePolicies"
    READ_AUDIT_LOG = "ReadAuditLog"


# Which resource kind each action applies to ("tenant", "bucket", "object"; both for the last two).
RESOURCE_KINDS: dict[Action, frozenset[str]] = {
    Action.LIST_BUCKETS: frozenset({"tenant"}),
    Action.CREATE_BUCKET: frozenset({"bucket"}),
    Action.DELETE_BUCKET: frozenset({"bucket"}),
    Action.LIST_OBJECTS: frozenset({"bucket"}),
    Action.READ_OBJECT: frozenset({"object"}),
    Action.WRITE_OBJECT: frozenset({"object"}),
    Action.DELETE_OBJECT: frozenset({"object"}),
    Action.MANAGE_MULTIPART: frozenset({"bucket", "object"}),
    Action.MANAGE_TAGGING: frozenset({"bucket", "object"}),
    Action.MANAGE_TENANT: frozenset({"tenant"}),
    Action.MANAGE_PRINCIPALS: frozenset({"tenant"}),
    Action.MANAGE_KEYS: frozenset({"tenant"}),
    Action.MANAGE_POLICIES: frozenset({"tenant"}),
    Action.READ_AUDIT_LOG: frozenset({"tenant"}),
}

# S3 API operation name -> action. CopyObject/UploadPartCopy need two checks: ReadObject on
# the source and WriteObject (or ManageMultipart) on the destination.
S3_OPERATIONS: dict[str, Action] = {
    "ListBuckets": Action.LIST_BUCKETS,
    "CreateBucket": Action.CREATE_BUCKET,
    "DeleteBucket": Action.DELETE_BUCKET,
    "HeadBucket": Action.LIST_OBJECTS,
    "GetBucketLocation": Action.LIST_OBJECTS,
    "GetBucketVersioning": Action.LIST_OBJECTS,
    "GetPublicAccessBlock": Action.LIST_OBJECTS,
    # Configuring a bucket is its creator's right (there is no finer Cedar action yet).
    "PutPublicAccessBlock": Action.CREATE_BUCKET,
    "PutBucketVersioning": Action.CREATE_BUCKET,
    "DeletePublicAccessBlock": Action.CREATE_BUCKET,
    "ListObjects": Action.LIST_OBJECTS,
    "ListObjectsV2": Action.LIST_OBJECTS,
    "ListObjectVersions": Action.LIST_OBJECTS,
    "GetObject": Action.READ_OBJECT,
    "HeadObject": Action.READ_OBJECT,
    "GetObjectAttributes": Action.READ_OBJECT,
    "PutObject": Action.WRITE_OBJECT,
    "CopyObject": Action.WRITE_OBJECT,
    "DeleteObject": Action.DELETE_OBJECT,
    "DeleteObjects": Action.DELETE_OBJECT,
    "CreateMultipartUpload": Action.MANAGE_MULTIPART,
    "UploadPart": Action.MANAGE_MULTIPART,
    "UploadPartCopy": Action.MANAGE_MULTIPART,
    "CompleteMultipartUpload": Action.MANAGE_MULTIPART,
    "AbortMultipartUpload": Action.MANAGE_MULTIPART,
    "ListParts": Action.MANAGE_MULTIPART,
    "ListMultipartUploads": Action.MANAGE_MULTIPART,
    "GetObjectTagging": Action.MANAGE_TAGGING,
    "PutObjectTagging": Action.MANAGE_TAGGING,
    "DeleteObjectTagging": Action.MANAGE_TAGGING,
    "GetBucketTagging": Action.MANAGE_TAGGING,
    "PutBucketTagging": Action.MANAGE_TAGGING,
    "DeleteBucketTagging": Action.MANAGE_TAGGING,
}


def parse_action(name: str) -> Action:
    """The action called `name` (case-insensitive); a ValueError listing them otherwise."""
    for action in Action:
        if action.value.lower() == name.lower():
            return action
    raise ValueError(f"unknown action {name!r}; use one of {', '.join(a.value for a in Action)}")
