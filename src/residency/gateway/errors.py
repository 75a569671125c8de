"""S3 errors as one exception type, plus one constructor per code so handlers read like prose.

Every failure a client can cause ends as an `S3Error`; the app turns it into the S3 XML error
document (`residency.gateway.xml.error_document`) with the status from `STATUS`. Extra fields
(`key=`, `bucket_name=`, `upload_id=`, ...) become extra XML elements, named the way S3 names
them (`Key`, `BucketName`, `UploadId`), so clients that parse them keep working.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = [
    "DEFAULT_MESSAGES",
    "STATUS",
    "S3Error",
    "access_denied",
    "authorization_header_malformed",
    "authorization_query_parameters_error",
    "bad_digest",
    "bucket_already_exists",
    "bucket_already_owned_by_you",
    "bucket_not_empty",
    "content_sha256_mismatch",
    "entity_too_large",
    "entity_too_small",
    "incomplete_body",
    "internal_error",
    "invalid_access_key_id",
    "invalid_argument",
    "invalid_bucket_name",
    "invalid_digest",
    "invalid_part",
    "invalid_part_order",
    "invalid_range",
    "invalid_request",
    "invalid_tag",
    "invalid_uri",
    "key_too_long",
    "malformed_trailer",
    "malformed_xml",
    "max_message_length_exceeded",
    "metadata_too_large",
    "method_not_allowed",
    "missing_content_length",
    "no_such_bucket",
    "no_such_key",
    "no_such_upload",
    "no_such_version",
    "not_implemented",
    "not_modified",
    "precondition_failed",
    "request_expired",
    "request_header_section_too_large",
    "request_time_too_skewed",
    "request_timeout",
    "residency_violation",
    "signature_does_not_match",
]

STATUS: Mapping[str, int] = MappingProxyType(
    {
        "AccessDenied": 403,
        "InvalidAccessKeyId": 403,
        "SignatureDoesNotMatch": 403,
        "RequestTimeTooSkewed": 403,
        "ResidencyViolation": 403,
        "NoSuchBucket": 404,
        "NoSuchKey": 404,
        "NoSuchUpload": 404,
        "NoSuchVersion": 404,
        "BucketAlreadyExists": 409,
        "BucketAlreadyOwnedByYou": 409,
        "BucketNotEmpty": 409,
        "InvalidBucketName": 400,
        "InvalidArgument": 400,
        "InvalidRange": 416,
        "InvalidPart": 400,
        "InvalidPartOrder": 400,
        "EntityTooSmall": 400,
        "EntityTooLarge": 400,
        "BadDigest": 400,
        "InvalidDigest": 400,
        "XAmzContentSHA256Mismatch": 400,
        "IncompleteBody": 400,
        "MalformedXML": 400,
        "MalformedTrailerError": 400,
        "MaxMessageLengthExceeded": 400,
        "MissingContentLength": 411,
        "PreconditionFailed": 412,
        "NotModified": 304,
        "MethodNotAllowed": 405,
        "NotImplemented": 501,
        "InternalError": 500,
        "InvalidRequest": 400,
        "InvalidURI": 400,
        "RequestTimeout": 400,
        "KeyTooLongError": 400,
        "MetadataTooLarge": 400,
        "InvalidTag": 400,
        "RequestHeaderSectionTooLarge": 400,
        "AuthorizationHeaderMalformed": 400,
        "AuthorizationQueryParametersError": 400,
    }
)
"""HTTP status of every S3 error code this gateway emits."""

DEFAULT_MESSAGES: Mapping[str, str] = MappingProxyType(
    {
        "AccessDenied": "Access Denied",
        "InvalidAccessKeyId": "The AWS Access Key Id you provided does not exist in our records.",
        "SignatureDoesNotMatch": (
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method."
        ),
        "RequestTimeTooSkewed": (
            "The difference between the request time and the current time is too large."
        ),
        "NoSuchBucket": "The specified bucket does not exist",
        "NoSuchKey": "The specified key does not exist.",
        "NoSuchUpload": (
            "The specified upload does not exist. The upload ID may be invalid, or the upload "
            "may have been aborted or completed."
        ),
        "BucketAlreadyExists": (
            "The requested bucket name is not available. The bucket namespace is shared by all "
            "users of the system. Please select a different name and try again."
        ),
        "BucketAlreadyOwnedByYou": (
            "Your previous request to create the named bucket succeeded and you already own it."
        ),
        "BucketNotEmpty": "The bucket you tried to delete is not empty",
        "InvalidBucketName": "The specified bucket is not valid.",
        "InvalidArgument": "Invalid Argument",
        "InvalidRange": "The requested range is not satisfiable",
        "InvalidPart": (
            "One or more of the specified parts could not be found. The part may not have been "
            "uploaded, or the specified entity tag may not match the part's entity tag."
        ),
        "InvalidPartOrder": (
            "The list of parts was not in ascending order. The parts list must be specified in "
            "order by part number."
        ),
        "EntityTooSmall": "Your proposed upload is smaller than the minimum allowed object size.",
        "EntityTooLarge": "Your proposed upload exceeds the maximum allowed object size.",
        "BadDigest": "The Content-MD5 you specified did not match what we received.",
        "InvalidDigest": "The Content-MD5 you specified is not valid.",
        "XAmzContentSHA256Mismatch": (
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        ),
        "IncompleteBody": "You did not provide the number of bytes specified by the "
        "Content-Length HTTP header.",
        "MalformedXML": (
            "The XML you provided was not well-formed or did not validate against our "
            "published schema."
        ),
        "MaxMessageLengthExceeded": "Your request was too big.",
        "MalformedTrailerError": (
            "The request contained trailing data that was not well-formed or did not conform "
            "to our published schema."
        ),
        "MissingContentLength": "You must provide the Content-Length HTTP header.",
        "PreconditionFailed": "At least one of the pre-conditions you specified did not hold",
        "NotModified": "Not Modified",
        "MethodNotAllowed": "The specified method is not allowed against this resource.",
        "NotImplemented": "A header you provided implies functionality that is not implemented.",
        "InternalError": "We encountered an internal error. Please try again.",
        "InvalidRequest": "Invalid Request",
        "InvalidURI": "Couldn't parse the specified URI.",
        "NoSuchVersion": "The specified version does not exist.",
        "RequestTimeout": (
            "Your socket connection to the server was not read from or written to within the "
            "timeout period. Idle connections will be closed."
        ),
        "KeyTooLongError": "Your key is too long",
        "MetadataTooLarge": "Your metadata headers exceed the maximum allowed metadata size.",
        "InvalidTag": "The tag provided was not a valid tag.",
        "RequestHeaderSectionTooLarge": "Your request header section exceeds the maximum size.",
        "AuthorizationHeaderMalformed": "The authorization header is malformed.",
        "AuthorizationQueryParametersError": "Error parsing the X-Amz-Credential parameter.",
        "ResidencyViolation": "No storage location allowed by the residency policy.",
    }
)

# snake_case keyword -> the element name S3 uses in its error documents.
_FIELD_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "aws_access_key_id": "AWSAccessKeyId",
        "x_amz_expires": "X-Amz-Expires",
        "client_computed_content_sha256": "ClientComputedContentSHA256",
        "s3_computed_content_sha256": "S3ComputedContentSHA256",
        "max_allowed_skew_milliseconds": "MaxAllowedSkewMilliseconds",
        "e_tag": "ETag",
        "etag": "ETag",
    }
)


def _element_name(field: str) -> str:
    return _FIELD_NAMES.get(field) or "".join(part.capitalize() for part in field.split("_"))


class S3Error(Exception):
    """One S3 error response: code, message, HTTP status, extra XML fields, extra headers.

    `fields` keeps insertion order and maps S3 element names (`Key`, `BucketName`, ...) to text;
    pass them as snake_case keywords (`key=`, `bucket_name=`); `None` values are dropped.
    `headers` are extra response headers (e.g. `ETag` on 304, `Allow` on 405).
    """

    code: str
    message: str
    status: int
    fields: dict[str, str]
    headers: dict[str, str]

    def __init__(
        self,
        code: str,
        message: str | None = None,
        status: int | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **fields: object,
    ) -> None:
        self.code = code
        self.message = message if message is not None else DEFAULT_MESSAGES.get(code, code)
        self.status = status if status is not None else STATUS.get(code, 400)
        self.fields = {_element_name(k): str(v) for k, v in fields.items() if v is not None}
        self.headers = dict(headers or {})
        super().__init__(f"{self.code}: {self.message}")

    @property
    def has_body(self) -> bool:
        """False for 304: HTTP forbids a body there (HEAD responses never carry one either)."""
        return self.status not in (204, 304) and self.status >= 200

    def with_fields(self, **fields: object) -> S3Error:
        """Add fields (e.g. `resource=`) the raiser did not know; returns self for chaining."""
        for k, v in fields.items():
            if v is not None:
                self.fields.setdefault(_element_name(k), str(v))
        return self

    def __repr__(self) -> str:
        return f"S3Error({self.code!r}, {self.message!r}, {self.status}, fields={self.fields!r})"


# --- authentication -------------------------------------------------------------------------


def access_denied(message: str | None = None, **fields: object) -> S3Error:
    return S3Error("AccessDenied", message).with_fields(**fields)


def request_expired(*, expires: str, server_time: str, x_amz_expires: int | str) -> S3Error:
    """A presigned URL used after X-Amz-Date + X-Amz-Expires: S3 answers AccessDenied."""
    return S3Error(
        "AccessDenied",
        "Request has expired",
        x_amz_expires=x_amz_expires,
        expires=expires,
        server_time=server_time,
    )


def invalid_access_key_id(access_key_id: str) -> S3Error:
    return S3Error("InvalidAccessKeyId", aws_access_key_id=access_key_id)


def signature_does_not_match(
    *,
    access_key_id: str | None = None,
    string_to_sign: str | None = None,
    signature_provided: str | None = None,
    canonical_request: str | None = None,
    message: str | None = None,
) -> S3Error:
    """Carries StringToSign and CanonicalRequest like S3 does, so clients can debug signing."""
    return S3Error(
        "SignatureDoesNotMatch",
        message,
        aws_access_key_id=access_key_id,
        string_to_sign=string_to_sign,
        signature_provided=signature_provided,
        canonical_request=canonical_request,
    )


def request_time_too_skewed(
    *, request_time: str, server_time: str, max_allowed_skew_milliseconds: int
) -> S3Error:
    return S3Error(
        "RequestTimeTooSkewed",
        request_time=request_time,
        server_time=server_time,
        max_allowed_skew_milliseconds=max_allowed_skew_milliseconds,
    )


def authorization_header_malformed(message: str, **fields: object) -> S3Error:
    return S3Error("AuthorizationHeaderMalformed", message).with_fields(**fields)


def authorization_query_parameters_error(message: str) -> S3Error:
    return S3Error("AuthorizationQueryParametersError", message)


def content_sha256_mismatch(*, client: str, computed: str) -> S3Error:
    return S3Error(
        "XAmzContentSHA256Mismatch",
        client_computed_content_sha256=client,
        s3_computed_content_sha256=computed,
    )


# --- buckets and keys -----------------------------------------------------------------------


def no_such_bucket(bucket: str) -> S3Error:
    return S3Error("NoSuchBucket", bucket_name=bucket)


def no_such_key(key: str) -> S3Error:
    return S3Error("NoSuchKey", key=key)


def no_such_upload(upload_id: str) -> S3Error:
    return S3Error("NoSuchUpload", upload_id=upload_id)


def no_such_version(key: str, version_id: str) -> S3Error:
    """Versioning is not implemented: every version id but `null` names nothing."""
    return S3Error("NoSuchVersion", key=key, version_id=version_id)


def bucket_already_exists(bucket: str) -> S3Error:
    return S3Error("BucketAlreadyExists", bucket_name=bucket)


def bucket_already_owned_by_you(bucket: str) -> S3Error:
    return S3Error("BucketAlreadyOwnedByYou", bucket_name=bucket)


def bucket_not_empty(bucket: str) -> S3Error:
    return S3Error("BucketNotEmpty", bucket_name=bucket)


def invalid_bucket_name(bucket: str, reason: str | None = None) -> S3Error:
    message = f"The specified bucket is not valid: {reason}" if reason else None
    return S3Error("InvalidBucketName", message, bucket_name=bucket)


def key_too_long(key_length: int, max_length: int = 1024) -> S3Error:
    return S3Error("KeyTooLongError", size=key_length, max_size_allowed=max_length)


def metadata_too_large(size: int, max_size: int = 2048) -> S3Error:
    return S3Error("MetadataTooLarge", size=size, max_size_allowed=max_size)


# --- request shape --------------------------------------------------------------------------


def invalid_argument(message: str, *, name: str | None = None, value: str | None = None) -> S3Error:
    return S3Error("InvalidArgument", message, argument_name=name, argument_value=value)


def invalid_request(message: str) -> S3Error:
    return S3Error("InvalidRequest", message)


def invalid_uri(uri: str | None = None) -> S3Error:
    """A request path S3 cannot read as a key, e.g. percent-encoded bytes that are not UTF-8."""
    return S3Error("InvalidURI", uri=uri)


def request_timeout() -> S3Error:
    """The client stopped sending its body; the answer closes the connection."""
    return S3Error("RequestTimeout", headers={"Connection": "close"})


def invalid_range(actual_object_size: int, range_requested: str | None = None) -> S3Error:
    return S3Error(
        "InvalidRange",
        range_requested=range_requested,
        actual_object_size=actual_object_size,
        headers={"Content-Range": f"bytes */{actual_object_size}"},
    )


def invalid_part(part_number: int | None = None, etag: str | None = None) -> S3Error:
    return S3Error("InvalidPart", part_number=part_number, e_tag=etag)


def invalid_part_order() -> S3Error:
    return S3Error("InvalidPartOrder")


def entity_too_small(
    *, proposed_size: int, min_size_allowed: int, part_number: int | None = None
) -> S3Error:
    return S3Error(
        "EntityTooSmall",
        proposed_size=proposed_size,
        min_size_allowed=min_size_allowed,
        part_number=part_number,
    )


def entity_too_large(*, proposed_size: int, max_size_allowed: int) -> S3Error:
    return S3Error("EntityTooLarge", proposed_size=proposed_size, max_size_allowed=max_size_allowed)


def bad_digest(
    message: str | None = None, *, expected: str | None = None, calculated: str | None = None
) -> S3Error:
    return S3Error("BadDigest", message, expected_digest=expected, calculated_digest=calculated)


def invalid_digest(message: str | None = None, **fields: object) -> S3Error:
    return S3Error("InvalidDigest", message).with_fields(**fields)


def incomplete_body(message: str | None = None) -> S3Error:
    return S3Error("IncompleteBody", message)


def malformed_xml(message: str | None = None) -> S3Error:
    return S3Error("MalformedXML", message)


def malformed_trailer(detail: str) -> S3Error:
    return S3Error(
        "MalformedTrailerError",
        "The request contained trailing data that was not well-formed or did not conform to "
        f"our published schema: {detail}",
    )


def max_message_length_exceeded(max_length: int) -> S3Error:
    return S3Error(
        "MaxMessageLengthExceeded",
        f"Your request was too big: the limit for this body is {max_length} bytes.",
    )


def missing_content_length(message: str | None = None) -> S3Error:
    return S3Error("MissingContentLength", message)


def invalid_tag(message: str) -> S3Error:
    return S3Error("InvalidTag", message)


def request_header_section_too_large(message: str | None = None) -> S3Error:
    return S3Error("RequestHeaderSectionTooLarge", message)


# --- conditionals, methods, server ----------------------------------------------------------


def precondition_failed(condition: str) -> S3Error:
    """`condition` names the header that failed, e.g. `If-Match` (S3's `Condition` element)."""
    return S3Error("PreconditionFailed", condition=condition)


def not_modified(*, etag: str | None = None, last_modified: str | None = None) -> S3Error:
    """304: no body; the validators go back as headers so caches can refresh."""
    headers = {}
    if etag is not None:
        headers["ETag"] = etag
    if last_modified is not None:
        headers["Last-Modified"] = last_modified
    return S3Error("NotModified", headers=headers)


def method_not_allowed(method: str, resource_type: str, allow: str | None = None) -> S3Error:
    return S3Error(
        "MethodNotAllowed",
        method=method,
        resource_type=resource_type,
        headers={"Allow": allow} if allow else None,
    )


def not_implemented(what: str) -> S3Error:
    return S3Error("NotImplemented", f"{what} is not implemented by this gateway.")


def internal_error(message: str | None = None) -> S3Error:
    return S3Error("InternalError", message)


def residency_violation(message: str, *, rule: str | None = None) -> S3Error:
    """Refuse a write no allowed location can take; `message` is `Decision.message` verbatim."""
    return S3Error("ResidencyViolation", message, rule=rule)
