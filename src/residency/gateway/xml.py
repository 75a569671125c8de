"""S3 XML documents: build responses, parse request bodies safely.

Building uses the standard library's ElementTree (nothing untrusted goes in as markup, only as
text). Parsing goes through defusedxml with DTDs forbidden and a size cap, and turns every
malformed or out-of-schema body into the S3 error a client expects (MalformedXML, InvalidTag,
InvalidPartOrder, ...), never a traceback.
"""

from __future__ import annotations

import itertools
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from residency.gateway import errors
from residency.gateway.errors import S3Error
from residency.gateway.http import decimal as _decimal

__all__ = [
    "MAX_DELETE_KEYS",
    "MAX_TAGS",
    "MAX_XML_BODY",
    "S3_NS",
    "BucketEntry",
    "CompletedPart",
    "DeleteError",
    "DeleteRequest",
    "Deleted",
    "ObjectEntry",
    "ObjectIdentifier",
    "ObjectPartEntry",
    "Owner",
    "PartEntry",
    "UploadEntry",
    "complete_multipart_upload_result",
    "copy_object_result",
    "copy_part_result",
    "delete_result",
    "error_document",
    "initiate_multipart_upload_result",
    "iso8601",
    "list_all_my_buckets",
    "list_multipart_uploads_result",
    "list_objects_v1",
    "list_objects_v2",
    "list_parts_result",
    "location_constraint",
    "object_attributes_result",
    "parse_complete_multipart_upload",
    "parse_create_bucket_configuration",
    "parse_delete",
    "parse_public_access_block",
    "parse_tagging",
    "parse_tagging_header",
    "public_access_block",
    "read_body",
    "tagging",
    "validate_tags",
    "xml_safe",
]

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_XML_BODY = 4 * 1024 * 1024
"""Largest XML request body accepted (a 10,000-part CompleteMultipartUpload fits)."""
MAX_DELETE_KEYS = 1000
MAX_TAGS = 10
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
MAX_PART_NUMBER = 10000

_XML_DECL = b'<?xml version="1.0" encoding="UTF-8"?>\n'


# --- value types ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Owner:
    id: str
    display_name: str


@dataclass(frozen=True, slots=True)
class BucketEntry:
    name: str
    creation_date: datetime
    region: str | None = None


@dataclass(frozen=True, slots=True)
class ObjectEntry:
    """One `<Contents>` row of a listing. `etag` is given with its quotes, as S3 sends it."""

    key: str
    last_modified: datetime
    etag: str
    size: int
    storage_class: str = "STANDARD"
    owner: Owner | None = None
    checksum_algorithm: str | None = None


@dataclass(frozen=True, slots=True)
class VersionEntry:
    """One `<Version>` or `<DeleteMarker>` row of ListObjectVersions (`etag` with quotes)."""

    key: str
    version_id: str
    is_latest: bool
    last_modified: datetime
    owner: Owner
    delete_marker: bool = False
    etag: str = ""
    size: int = 0
    storage_class: str = "STANDARD"


@dataclass(frozen=True, slots=True)
class PartEntry:
    part_number: int
    last_modified: datetime
    etag: str
    size: int
    checksums: Mapping[str, str] = field(default_factory=dict)
    """Algorithm name (`CRC32`, `CRC32C`, `SHA256`, ...) -> base64 value."""


@dataclass(frozen=True, slots=True)
class UploadEntry:
    key: str
    upload_id: str
    initiated: datetime
    owner: Owner | None = None
    storage_class: str = "STANDARD"


@dataclass(frozen=True, slots=True)
class Deleted:
    key: str
    version_id: str | None = None
    delete_marker: bool = False
    """The request deleted a delete marker, or (without a version id) made one."""
    delete_marker_version_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteError:
    key: str
    code: str
    message: str
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class CompletedPart:
    part_number: int
    etag: str
    """As the client sent it, quotes stripped (compare against the part's md5 hex)."""
    checksums: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ObjectIdentifier:
    key: str
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    objects: tuple[ObjectIdentifier, ...]
    quiet: bool


# --- formatting helpers ---------------------------------------------------------------------


def iso8601(moment: datetime) -> str:
    """S3's XML timestamp: UTC, millisecond precision, `Z` suffix (2026-11-23T09:21:26.000Z)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _url(value: str, encode: bool) -> str:
    # S3 percent-encodes like this for encoding-type=url; '/' stays readable.
    return urllib.parse.quote(value, safe="/") if encode else value


def _root(tag: str) -> ET.Element:
    return ET.Element(tag, xmlns=S3_NS)


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters XML 1.0 cannot carry, not even as character references."""


def xml_safe(*texts: str | None) -> bool:
    """Whether every text can appear in an XML 1.0 document (as itself or a reference)."""
    return not any(text and _NOT_XML.search(text) for text in texts)


def _sub(parent: ET.Element, tag: str, text: str | int | bool | None = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if isinstance(text, bool):
        el.text = "true" if text else "false"
    elif text is not None:
        # Last line of defence: a document must parse. Listings never get here with such
        # text (they switch to encoding-type=url); error messages and the like may.
        el.text = _NOT_XML.sub("\ufffd", str(text))
    return el


def _opt(parent: ET.Element, tag: str, text: str | int | None) -> None:
    if text is not None:
        _sub(parent, tag, text)


def _owner(parent: ET.Element, tag: str, owner: Owner | None) -> None:
    if owner is not None:
        el = _sub(parent, tag)
        _sub(el, "ID", owner.id)
        _sub(el, "DisplayName", owner.display_name)


def _checksums(parent: ET.Element, checksums: Mapping[str, str] | None) -> None:
    for algorithm, value in (checksums or {}).items():
        _sub(parent, f"Checksum{algorithm.upper()}", value)


def _render(root: ET.Element) -> bytes:
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    # A literal CR in text would come back as LF (XML end-of-line handling): a key with CR
    # must travel as a reference, as S3 sends it. Our markup itself never holds a CR.
    return _XML_DECL + body.replace(b"\r", b"&#13;")


def _needs_url_encoding(encoding_type: str | None, *texts: Iterable[str | None]) -> bool:
    """`encoding-type=url` asked for, or forced because a key or prefix holds a character
    XML 1.0 cannot carry (the response then says `<EncodingType>url</EncodingType>`)."""
    if encoding_type == "url":
        return True
    return not all(xml_safe(*group) for group in texts)


def _common_prefixes(root: ET.Element, prefixes: Iterable[str], encode: bool) -> None:
    for prefix in prefixes:
        _sub(_sub(root, "CommonPrefixes"), "Prefix", _url(prefix, encode))


def _contents(root: ET.Element, entries: Iterable[ObjectEntry], encode: bool, owner: bool) -> None:
    for obj in entries:
        el = _sub(root, "Contents")
        _sub(el, "Key", _url(obj.key, encode))
        _sub(el, "LastModified", iso8601(obj.last_modified))
        _sub(el, "ETag", obj.etag)
        if obj.checksum_algorithm:
            _sub(el, "ChecksumAlgorithm", obj.checksum_algorithm)
        _sub(el, "Size", obj.size)
        _sub(el, "StorageClass", obj.storage_class)
        if owner:
            _owner(el, "Owner", obj.owner)


# --- response documents ---------------------------------------------------------------------


def error_document(
    err: S3Error, *, request_id: str, resource: str | None = None, host_id: str | None = None
) -> bytes:
    """`<Error>` body. Returns b"" when the status forbids a body (304)."""
    if not err.has_body:
        return b""
    root = ET.Element("Error")
    _sub(root, "Code", err.code)
    _sub(root, "Message", err.message)
    fields = dict(err.fields)
    if resource is not None:
        fields.setdefault("Resource", resource)
    for name, value in fields.items():
        _sub(root, name, value)
    _sub(root, "RequestId", request_id)
    _sub(root, "HostId", host_id if host_id is not None else request_id)
    return _render(root)


def list_all_my_buckets(
    buckets: Iterable[BucketEntry],
    owner: Owner,
    *,
    continuation_token: str | None = None,
    prefix: str | None = None,
) -> bytes:
    root = _root("ListAllMyBucketsResult")
    _owner(root, "Owner", owner)
    container = _sub(root, "Buckets")
    for bucket in buckets:
        el = _sub(container, "Bucket")
        _sub(el, "Name", bucket.name)
        _sub(el, "CreationDate", iso8601(bucket.creation_date))
        _opt(el, "BucketRegion", bucket.region)
    _opt(root, "ContinuationToken", continuation_token)
    _opt(root, "Prefix", prefix)
    return _render(root)


def list_objects_v1(
    *,
    bucket: str,
    prefix: str,
    marker: str,
    max_keys: int,
    is_truncated: bool,
    contents: Iterable[ObjectEntry],
    common_prefixes: Iterable[str] = (),
    delimiter: str | None = None,
    next_marker: str | None = None,
    encoding_type: str | None = None,
) -> bytes:
    """ListBucketResult (V1). `next_marker` is only sent by S3 when a delimiter is used."""
    contents = list(contents)
    common_prefixes = list(common_prefixes)
    enc = _needs_url_encoding(
        encoding_type,
        (prefix, marker, next_marker, delimiter),
        (obj.key for obj in contents),
        common_prefixes,
    )
    root = _root("ListBucketResult")
    _sub(root, "Name", bucket)
    # V1 sends Prefix as the client sent it even with encoding-type=url (SDKs decode only
    # Delimiter, Marker, NextMarker and the keys of a V1 listing).
    _sub(root, "Prefix", prefix)
    _sub(root, "Marker", _url(marker, enc))
    if next_marker is not None:
        _sub(root, "NextMarker", _url(next_marker, enc))
    _sub(root, "MaxKeys", max_keys)
    if delimiter is not None:
        _sub(root, "Delimiter", _url(delimiter, enc))
    if enc:
        _sub(root, "EncodingType", "url")
    _sub(root, "IsTruncated", is_truncated)
    _contents(root, contents, enc, owner=True)
    _common_prefixes(root, common_prefixes, enc)
    return _render(root)


def list_objects_v2(
    *,
    bucket: str,
    prefix: str,
    max_keys: int,
    is_truncated: bool,
    contents: Sequence[ObjectEntry],
    common_prefixes: Sequence[str] = (),
    delimiter: str | None = None,
    start_after: str | None = None,
    continuation_token: str | None = None,
    next_continuation_token: str | None = None,
    encoding_type: str | None = None,
    fetch_owner: bool = False,
) -> bytes:
    """ListBucketResult (V2). KeyCount counts keys plus common prefixes, as S3 does."""
    enc = _needs_url_encoding(
        encoding_type,
        (prefix, delimiter, start_after),
        (obj.key for obj in contents),
        common_prefixes,
    )
    root = _root("ListBucketResult")
    _sub(root, "Name", bucket)
    _sub(root, "Prefix", _url(prefix, enc))
    if delimiter is not None:
        _sub(root, "Delimiter", _url(delimiter, enc))
    _sub(root, "MaxKeys", max_keys)
    _sub(root, "KeyCount", len(contents) + len(common_prefixes))
    if enc:
        _sub(root, "EncodingType", "url")
    _sub(root, "IsTruncated", is_truncated)
    _opt(root, "ContinuationToken", continuation_token)
    _opt(root, "NextContinuationToken", next_continuation_token)
    if start_after is not None:
        _sub(root, "StartAfter", _url(start_after, enc))
    _contents(root, contents, enc, owner=fetch_owner)
    _common_prefixes(root, common_prefixes, enc)
    return _render(root)


def list_versions_result(
    *,
    bucket: str,
    prefix: str,
    key_marker: str,
    version_id_marker: str,
    max_keys: int,
    is_truncated: bool,
    entries: Sequence[VersionEntry],
    common_prefixes: Sequence[str] = (),
    delimiter: str | None = None,
    next_key_marker: str | None = None,
    next_version_id_marker: str | None = None,
    encoding_type: str | None = None,
) -> bytes:
    """ListVersionsResult: versions and delete markers interleaved in key order, newest
    first within a key, as S3 lists them."""
    enc = _needs_url_encoding(
        encoding_type,
        (prefix, key_marker, next_key_marker, delimiter),
        (e.key for e in entries),
        common_prefixes,
    )
    root = _root("ListVersionsResult")
    _sub(root, "Name", bucket)
    _sub(root, "Prefix", _url(prefix, enc))
    _sub(root, "KeyMarker", _url(key_marker, enc))
    _sub(root, "VersionIdMarker", version_id_marker)
    if next_key_marker is not None:
        _sub(root, "NextKeyMarker", _url(next_key_marker, enc))
    _opt(root, "NextVersionIdMarker", next_version_id_marker)
    _sub(root, "MaxKeys", max_keys)
    if delimiter is not None:
        _sub(root, "Delimiter", _url(delimiter, enc))
    if enc:
        _sub(root, "EncodingType", "url")
    _sub(root, "IsTruncated", is_truncated)
    for entry in entries:
        el = _sub(root, "DeleteMarker" if entry.delete_marker else "Version")
        _sub(el, "Key", _url(entry.key, enc))
        _sub(el, "VersionId", entry.version_id)
        _sub(el, "IsLatest", entry.is_latest)
        _sub(el, "LastModified", iso8601(entry.last_modified))
        if not entry.delete_marker:
            _sub(el, "ETag", entry.etag)
            _sub(el, "Size", entry.size)
            _sub(el, "StorageClass", entry.storage_class)
        _owner(el, "Owner", entry.owner)
    _common_prefixes(root, common_prefixes, enc)
    return _render(root)


def versioning_configuration(status: str | None) -> bytes:
    """GetBucketVersioning: no Status at all for a bucket whose versioning was never set."""
    root = _root("VersioningConfiguration")
    _opt(root, "Status", status)
    return _render(root)


def parse_versioning_configuration(body: bytes) -> str:
    """PutBucketVersioning's Status (`Enabled` or `Suspended`). MFA delete cannot be turned
    on: it needs a device serial and code this gateway has no way to check."""
    root = _parse(body, "VersioningConfiguration")
    mfa = _text(root, "MfaDelete", required=False)
    if mfa is not None and mfa.strip() == "Enabled":
        raise errors.not_implemented("MFA delete")
    if mfa is not None and mfa.strip() != "Disabled":
        raise errors.malformed_xml()
    status = (_text(root, "Status", required=False) or "").strip()
    if status not in ("Enabled", "Suspended"):
        raise errors.malformed_xml(
            "The XML you provided was not well-formed or did not validate against our "
            "published schema: Status must be Enabled or Suspended."
        )
    return status


def location_constraint(region: str | None) -> bytes:
    """us-east-1 (or no region) is the empty constraint, as S3 reports it."""
    root = _root("LocationConstraint")
    if region and region != "us-east-1":
        root.text = region
    return _render(root)


def copy_object_result(
    etag: str, last_modified: datetime, checksums: Mapping[str, str] | None = None
) -> bytes:
    root = _root("CopyObjectResult")
    _sub(root, "ETag", etag)
    _sub(root, "LastModified", iso8601(last_modified))
    _checksums(root, checksums)
    return _render(root)


def copy_part_result(
    etag: str, last_modified: datetime, checksums: Mapping[str, str] | None = None
) -> bytes:
    root = _root("CopyPartResult")
    _sub(root, "ETag", etag)
    _sub(root, "LastModified", iso8601(last_modified))
    _checksums(root, checksums)
    return _render(root)


def initiate_multipart_upload_result(bucket: str, key: str, upload_id: str) -> bytes:
    root = _root("InitiateMultipartUploadResult")
    _sub(root, "Bucket", bucket)
    _sub(root, "Key", key)
    _sub(root, "UploadId", upload_id)
    return _render(root)


def complete_multipart_upload_result(
    *,
    location: str,
    bucket: str,
    key: str,
    etag: str,
    checksums: Mapping[str, str] | None = None,
    checksum_type: str | None = None,
) -> bytes:
    root = _root("CompleteMultipartUploadResult")
    _sub(root, "Location", location)
    _sub(root, "Bucket", bucket)
    _sub(root, "Key", key)
    _sub(root, "ETag", etag)
    _checksums(root, checksums)
    if checksums:
        _opt(root, "ChecksumType", checksum_type)
    return _render(root)


def list_parts_result(
    *,
    bucket: str,
    key: str,
    upload_id: str,
    part_number_marker: int,
    next_part_number_marker: int | None,
    max_parts: int,
    is_truncated: bool,
    parts: Iterable[PartEntry],
    owner: Owner | None = None,
    storage_class: str = "STANDARD",
    checksum_algorithm: str | None = None,
    checksum_type: str | None = None,
) -> bytes:
    root = _root("ListPartsResult")
    _sub(root, "Bucket", bucket)
    _sub(root, "Key", key)
    _sub(root, "UploadId", upload_id)
    _owner(root, "Initiator", owner)
    _owner(root, "Owner", owner)
    _sub(root, "StorageClass", storage_class)
    _sub(root, "PartNumberMarker", part_number_marker)
    _opt(root, "NextPartNumberMarker", next_part_number_marker)
    _sub(root, "MaxParts", max_parts)
    _sub(root, "IsTruncated", is_truncated)
    _opt(root, "ChecksumAlgorithm", checksum_algorithm)
    _opt(root, "ChecksumType", checksum_type)
    for part in parts:
        el = _sub(root, "Part")
        _sub(el, "PartNumber", part.part_number)
        _sub(el, "LastModified", iso8601(part.last_modified))
        _sub(el, "ETag", part.etag)
        _sub(el, "Size", part.size)
        _checksums(el, part.checksums)
    return _render(root)


@dataclass(frozen=True, slots=True)
class ObjectPartEntry:
    part_number: int
    size: int
    checksums: Mapping[str, str] = field(default_factory=dict)


def object_attributes_result(
    *,
    etag: str | None = None,
    checksums: Mapping[str, str] | None = None,
    checksum_type: str | None = None,
    parts: Sequence[ObjectPartEntry] | None = None,
    parts_count: int | None = None,
    part_number_marker: int = 0,
    next_part_number_marker: int | None = None,
    max_parts: int = 1000,
    is_truncated: bool = False,
    storage_class: str | None = None,
    object_size: int | None = None,
) -> bytes:
    """GetObjectAttributesResponse with the asked-for elements (None: not asked for). The
    ETag goes without quotes and the part count as `PartsCount`, as S3 sends them."""
    root = _root("GetObjectAttributesResponse")
    _opt(root, "ETag", etag)
    if checksums:
        el = _sub(root, "Checksum")
        _checksums(el, checksums)
        _opt(el, "ChecksumType", checksum_type)
    if parts_count is not None:
        el = _sub(root, "ObjectParts")
        _sub(el, "IsTruncated", is_truncated)
        _sub(el, "MaxParts", max_parts)
        _opt(el, "NextPartNumberMarker", next_part_number_marker)
        _sub(el, "PartNumberMarker", part_number_marker)
        for part in parts or ():
            p = _sub(el, "Part")
            _checksums(p, part.checksums)
            _sub(p, "PartNumber", part.part_number)
            _sub(p, "Size", part.size)
        _sub(el, "PartsCount", parts_count)
    _opt(root, "StorageClass", storage_class)
    _opt(root, "ObjectSize", object_size)
    return _render(root)


PUBLIC_ACCESS_BLOCK_FLAGS = (
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
)


def public_access_block(flags: Mapping[str, bool]) -> bytes:
    root = _root("PublicAccessBlockConfiguration")
    for name in PUBLIC_ACCESS_BLOCK_FLAGS:
        _sub(root, name, bool(flags.get(name, False)))
    return _render(root)


def parse_public_access_block(body: bytes) -> dict[str, bool]:
    """PutPublicAccessBlock's body: each flag `true` or `false` (absent: false)."""
    root = _parse(body, "PublicAccessBlockConfiguration")
    flags: dict[str, bool] = {}
    for name in PUBLIC_ACCESS_BLOCK_FLAGS:
        text = _text(root, name, required=False)
        if text is None:
            flags[name] = False
            continue
        value = text.strip().lower()
        if value not in ("true", "false"):
            raise errors.malformed_xml()
        flags[name] = value == "true"
    return flags


def list_multipart_uploads_result(
    *,
    bucket: str,
    key_marker: str,
    upload_id_marker: str,
    max_uploads: int,
    is_truncated: bool,
    uploads: Iterable[UploadEntry],
    common_prefixes: Iterable[str] = (),
    prefix: str = "",
    delimiter: str | None = None,
    next_key_marker: str | None = None,
    next_upload_id_marker: str | None = None,
    encoding_type: str | None = None,
) -> bytes:
    uploads = list(uploads)
    common_prefixes = list(common_prefixes)
    enc = _needs_url_encoding(
        encoding_type,
        (key_marker, next_key_marker, prefix, delimiter),
        (upload.key for upload in uploads),
        common_prefixes,
    )
    root = _root("ListMultipartUploadsResult")
    _sub(root, "Bucket", bucket)
    _sub(root, "KeyMarker", _url(key_marker, enc))
    _sub(root, "UploadIdMarker", upload_id_marker)
    if next_key_marker is not None:
        _sub(root, "NextKeyMarker", _url(next_key_marker, enc))
    _opt(root, "NextUploadIdMarker", next_upload_id_marker)
    _sub(root, "Prefix", _url(prefix, enc))
    if delimiter is not None:
        _sub(root, "Delimiter", _url(delimiter, enc))
    _sub(root, "MaxUploads", max_uploads)
    if enc:
        _sub(root, "EncodingType", "url")
    _sub(root, "IsTruncated", is_truncated)
    for upload in uploads:
        el = _sub(root, "Upload")
        _sub(el, "Key", _url(upload.key, enc))
        _sub(el, "UploadId", upload.upload_id)
        _owner(el, "Initiator", upload.owner)
        _owner(el, "Owner", upload.owner)
        _sub(el, "StorageClass", upload.storage_class)
        _sub(el, "Initiated", iso8601(upload.initiated))
    _common_prefixes(root, common_prefixes, enc)
    return _render(root)


def delete_result(
    deleted: Iterable[Deleted], errors_: Iterable[DeleteError], *, quiet: bool = False
) -> bytes:
    """DeleteResult; in quiet mode S3 reports only the failures."""
    root = _root("DeleteResult")
    if not quiet:
        for d in deleted:
            el = _sub(root, "Deleted")
            _sub(el, "Key", d.key)
            _opt(el, "VersionId", d.version_id)
            if d.delete_marker:
                _sub(el, "DeleteMarker", "true")
            _opt(el, "DeleteMarkerVersionId", d.delete_marker_version_id)
    for e in errors_:
        el = _sub(root, "Error")
        _sub(el, "Key", e.key)
        _opt(el, "VersionId", e.version_id)
        _sub(el, "Code", e.code)
        _sub(el, "Message", e.message)
    return _render(root)


def tagging(tags: Iterable[tuple[str, str]] | Mapping[str, str]) -> bytes:
    root = _root("Tagging")
    tag_set = _sub(root, "TagSet")
    pairs = tags.items() if isinstance(tags, Mapping) else tags
    for key, value in pairs:
        el = _sub(tag_set, "Tag")
        _sub(el, "Key", key)
        _sub(el, "Value", value)
    return _render(root)


# --- request bodies -------------------------------------------------------------------------


async def read_body(chunks: AsyncIterable[bytes], limit: int = MAX_XML_BODY) -> bytes:
    """Collect a small request body (XML), refusing past `limit` without reading further."""
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        if len(buf) > limit:
            raise errors.max_message_length_exceeded(limit)
    return bytes(buf)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse(body: bytes, root_tag: str) -> ET.Element:
    if len(body) > MAX_XML_BODY:
        raise errors.max_message_length_exceeded(MAX_XML_BODY)
    if not body.strip():
        raise errors.malformed_xml()
    try:
        root: ET.Element = DET.fromstring(body, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise errors.malformed_xml() from exc
    if _local(root.tag) != root_tag:
        raise errors.malformed_xml(
            f"The XML you provided was not well-formed or did not validate against our "
            f"published schema: expected <{root_tag}>, got <{_local(root.tag)}>."
        )
    return root


def _children(el: ET.Element, tag: str) -> list[ET.Element]:
    return [c for c in el if _local(c.tag) == tag]


def _one(el: ET.Element, tag: str, *, required: bool = True) -> ET.Element | None:
    found = _children(el, tag)
    if len(found) > 1 or (required and not found):
        raise errors.malformed_xml()
    return found[0] if found else None


def _text(el: ET.Element, tag: str, *, required: bool = True) -> str | None:
    child = _one(el, tag, required=required)
    if child is None:
        return None
    return child.text or ""


def parse_create_bucket_configuration(body: bytes) -> str | None:
    """The requested LocationConstraint; an empty body means none (us-east-1)."""
    if not body.strip():
        return None
    root = _parse(body, "CreateBucketConfiguration")
    text = _text(root, "LocationConstraint", required=False)
    return text.strip() or None if text is not None else None


def parse_complete_multipart_upload(body: bytes) -> list[CompletedPart]:
    """Parts as listed; ascending part numbers are required (InvalidPartOrder otherwise)."""
    root = _parse(body, "CompleteMultipartUpload")
    parts: list[CompletedPart] = []
    for el in _children(root, "Part"):
        number_text = (_text(el, "PartNumber") or "").strip()
        number = _decimal(number_text)
        if number is None or not 1 <= number <= MAX_PART_NUMBER:
            raise errors.invalid_argument(
                f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive",
                name="PartNumber",
                value=number_text,
            )
        etag = (_text(el, "ETag") or "").strip()
        if etag.startswith("W/"):
            etag = etag[2:]
        etag = etag.strip('"')
        checksums = {
            _local(c.tag)[len("Checksum") :]: (c.text or "").strip()
            for c in el
            if _local(c.tag).startswith("Checksum") and _local(c.tag) != "ChecksumType"
        }
        parts.append(CompletedPart(number, etag, checksums))
    if not parts:
        raise errors.malformed_xml(
            "The XML you provided was not well-formed or did not validate against our "
            "published schema: at least one <Part> is required."
        )
    for before, after in itertools.pairwise(parts):
        if after.part_number <= before.part_number:
            raise errors.invalid_part_order()
    return parts


def parse_delete(body: bytes) -> DeleteRequest:
    root = _parse(body, "Delete")
    quiet_text = (_text(root, "Quiet", required=False) or "false").strip().lower()
    if quiet_text not in ("true", "false"):
        raise errors.malformed_xml()
    objects: list[ObjectIdentifier] = []
    for el in _children(root, "Object"):
        key = _text(el, "Key")
        if not key:
            raise errors.malformed_xml()
        version = _text(el, "VersionId", required=False)
        objects.append(ObjectIdentifier(key, version or None))
    if not objects:
        raise errors.malformed_xml()
    if len(objects) > MAX_DELETE_KEYS:
        raise errors.malformed_xml(
            f"The XML you provided was not well-formed or did not validate against our "
            f"published schema: at most {MAX_DELETE_KEYS} keys per request."
        )
    return DeleteRequest(tuple(objects), quiet_text == "true")


def validate_tags(tags: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """S3 tag rules: ≤10 tags, unique keys, key 1..128 and value 0..256 characters."""
    if len(tags) > MAX_TAGS:
        raise errors.invalid_tag(f"Object tags cannot be greater than {MAX_TAGS}")
    seen: set[str] = set()
    for key, value in tags:
        if not 1 <= len(key) <= MAX_TAG_KEY:
            raise errors.invalid_tag(
                f"The TagKey you have provided is invalid: it must be 1 to {MAX_TAG_KEY} "
                f"characters long ({len(key)} given)"
            )
        if len(value) > MAX_TAG_VALUE:
            raise errors.invalid_tag(
                f"The TagValue you have provided is too long: at most {MAX_TAG_VALUE} characters"
            )
        if key.startswith("aws:"):
            raise errors.invalid_tag("Your TagKey cannot be prefixed with aws:")
        if key in seen:
            raise errors.invalid_tag("Cannot provide multiple Tags with the same key")
        seen.add(key)
    return list(tags)


def parse_tagging(body: bytes) -> list[tuple[str, str]]:
    root = _parse(body, "Tagging")
    tag_set = _one(root, "TagSet")
    assert tag_set is not None
    tags: list[tuple[str, str]] = []
    for el in _children(tag_set, "Tag"):
        key = _text(el, "Key")
        value = _text(el, "Value")
        tags.append((key or "", value or ""))
    return validate_tags(tags)


def parse_tagging_header(value: str) -> list[tuple[str, str]]:
    """`x-amz-tagging: k1=v1&k2=v2` (URL-encoded query syntax) with the same rules."""
    try:
        pairs = urllib.parse.parse_qsl(value, keep_blank_values=True, strict_parsing=bool(value))
    except ValueError as exc:
        raise errors.invalid_argument(
            "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query "
            "parameters without tag name duplicates.",
            name="x-amz-tagging",
            value=value,
        ) from exc
    return validate_tags(pairs)
