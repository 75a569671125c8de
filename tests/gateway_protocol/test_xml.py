"""S3 XML: documents we build are read back by botocore's own parser; bodies botocore serializes
are read by ours; malformed and hostile bodies get the right S3 error."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from types import SimpleNamespace
from typing import Any

import botocore.handlers
import botocore.session
import pytest
from botocore.parsers import RestXMLParser
from botocore.serialize import create_serializer

from residency.gateway import errors, xml
from residency.gateway.errors import S3Error

MODEL = botocore.session.get_session().get_service_model("s3")
WHEN = dt.datetime(2026, 11, 23, 9, 21, 26, 123456, tzinfo=dt.UTC)
OWNER = xml.Owner("owner-id", "owner-name")


def parse(operation: str, body: bytes, status: int = 200) -> dict[str, Any]:
    """What boto3 would hand its caller for this response body."""
    shape = MODEL.operation_model(operation).output_shape
    response = {"body": body, "headers": {}, "status_code": status}
    return RestXMLParser().parse(response, shape)  # type: ignore[no-any-return]


def serialize(operation: str, params: dict[str, Any]) -> bytes:
    request = create_serializer("rest-xml").serialize_to_request(
        params, MODEL.operation_model(operation)
    )
    return request["body"]  # type: ignore[no-any-return]


# --- formats --------------------------------------------------------------------------------


def test_iso8601_is_milliseconds_utc_z() -> None:
    assert xml.iso8601(WHEN) == "2026-11-23T09:21:26.123Z"
    naive = dt.datetime(2026, 1, 2, 3, 4, 5)
    assert xml.iso8601(naive) == "2026-01-02T03:04:05.000Z"
    plus2 = dt.datetime(2026, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert xml.iso8601(plus2) == "2026-01-02T03:04:05.000Z"


# --- responses through botocore's parser ----------------------------------------------------


def test_list_all_my_buckets() -> None:
    body = xml.list_all_my_buckets(
        [xml.BucketEntry("alpha", WHEN), xml.BucketEntry("beta", WHEN, region="eu-west-1")], OWNER
    )
    assert b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"' in body
    parsed = parse("ListBuckets", body)
    assert [b["Name"] for b in parsed["Buckets"]] == ["alpha", "beta"]
    assert parsed["Buckets"][0]["CreationDate"] == WHEN.replace(microsecond=123000)
    assert parsed["Owner"] == {"ID": "owner-id", "DisplayName": "owner-name"}


def _objects() -> list[xml.ObjectEntry]:
    return [
        xml.ObjectEntry("a/ü b&c<d>.txt", WHEN, '"etag1"', 10, owner=OWNER),
        xml.ObjectEntry("a/plain", WHEN, '"etag2-3"', 0),
    ]


def test_list_objects_v2_plain() -> None:
    body = xml.list_objects_v2(
        bucket="bkt",
        prefix="a/",
        delimiter="/",
        max_keys=2,
        is_truncated=True,
        contents=_objects(),
        common_prefixes=["a/sub/"],
        continuation_token="tok-in",
        next_continuation_token="tok-out",
        start_after="a/",
    )
    parsed = parse("ListObjectsV2", body)
    assert [o["Key"] for o in parsed["Contents"]] == ["a/ü b&c<d>.txt", "a/plain"]
    assert parsed["Contents"][0]["ETag"] == '"etag1"'
    assert parsed["Contents"][0]["Size"] == 10
    assert "Owner" not in parsed["Contents"][0]  # only with fetch-owner
    assert parsed["CommonPrefixes"] == [{"Prefix": "a/sub/"}]
    assert parsed["KeyCount"] == 3
    assert parsed["IsTruncated"] is True
    assert parsed["NextContinuationToken"] == "tok-out"
    assert parsed["ContinuationToken"] == "tok-in"
    assert parsed["StartAfter"] == "a/"
    assert parsed["Delimiter"] == "/"


def test_list_objects_v2_url_encoding() -> None:
    key = "dir/\x01ctrl ü+%.txt"
    body = xml.list_objects_v2(
        bucket="bkt",
        prefix="dir/ ",
        delimiter="\x01",
        max_keys=1000,
        is_truncated=False,
        contents=[xml.ObjectEntry(key, WHEN, '"e"', 1)],
        common_prefixes=["dir/ x\x01"],
        start_after="dir/ a",
        encoding_type="url",
        fetch_owner=True,
    )
    assert b"\x01" not in body  # a control character is not even legal in XML 1.0
    parsed = parse("ListObjectsV2", body)
    assert parsed["EncodingType"] == "url"
    assert urllib.parse.unquote(parsed["Contents"][0]["Key"]) == key
    assert urllib.parse.unquote(parsed["Prefix"]) == "dir/ "
    assert urllib.parse.unquote(parsed["Delimiter"]) == "\x01"
    assert urllib.parse.unquote(parsed["StartAfter"]) == "dir/ a"
    assert urllib.parse.unquote(parsed["CommonPrefixes"][0]["Prefix"]) == "dir/ x\x01"


def test_list_objects_v1_with_markers() -> None:
    body = xml.list_objects_v1(
        bucket="bkt",
        prefix="",
        marker="a b",
        max_keys=2,
        is_truncated=True,
        contents=_objects(),
        common_prefixes=["c/"],
        delimiter="/",
        next_marker="a/plain",
        encoding_type="url",
    )
    parsed = parse("ListObjects", body)
    assert parsed["Marker"] == "a%20b"
    assert parsed["NextMarker"] == "a/plain"
    assert parsed["Contents"][0]["Owner"]["ID"] == "owner-id"
    assert urllib.parse.unquote(parsed["Contents"][0]["Key"]) == "a/ü b&c<d>.txt"


@pytest.mark.parametrize(
    ("region", "expected"), [(None, None), ("us-east-1", None), ("eu-central-1", "eu-central-1")]
)
def test_location_constraint(region: str | None, expected: str | None) -> None:
    # boto3 reads GetBucketLocation with a custom handler, not the generic parser
    parsed: dict[str, Any] = {}
    http_response = SimpleNamespace(raw=b"", content=xml.location_constraint(region))
    botocore.handlers.parse_get_bucket_location(parsed, http_response)
    assert parsed["LocationConstraint"] == expected


def test_copy_results() -> None:
    parsed = parse("CopyObject", xml.copy_object_result('"e"', WHEN, {"CRC32": "AAAAAA=="}))
    assert parsed["CopyObjectResult"]["ETag"] == '"e"'
    assert parsed["CopyObjectResult"]["ChecksumCRC32"] == "AAAAAA=="
    parsed = parse("UploadPartCopy", xml.copy_part_result('"p"', WHEN))
    assert parsed["CopyPartResult"]["ETag"] == '"p"'
    assert parsed["CopyPartResult"]["LastModified"] == WHEN.replace(microsecond=123000)


def test_multipart_documents() -> None:
    parsed = parse("CreateMultipartUpload", xml.initiate_multipart_upload_result("b", "k&", "u1"))
    assert (parsed["Bucket"], parsed["Key"], parsed["UploadId"]) == ("b", "k&", "u1")

    parsed = parse(
        "CompleteMultipartUpload",
        xml.complete_multipart_upload_result(
            location="http://h/b/k", bucket="b", key="k", etag='"x-2"', checksums={"SHA256": "s"}
        ),
    )
    assert parsed["ETag"] == '"x-2"'
    assert parsed["ChecksumSHA256"] == "s"

    parts = [xml.PartEntry(i, WHEN, f'"p{i}"', 5 * 2**20, {"CRC32C": "AAAAAA=="}) for i in (1, 2)]
    parsed = parse(
        "ListParts",
        xml.list_parts_result(
            bucket="b",
            key="k",
            upload_id="u",
            part_number_marker=0,
            next_part_number_marker=2,
            max_parts=2,
            is_truncated=True,
            parts=parts,
            owner=OWNER,
        ),
    )
    assert [p["PartNumber"] for p in parsed["Parts"]] == [1, 2]
    assert parsed["Parts"][0]["ChecksumCRC32C"] == "AAAAAA=="
    assert parsed["NextPartNumberMarker"] == 2
    assert parsed["Initiator"]["ID"] == "owner-id"

    uploads = [xml.UploadEntry("k 1", "u1", WHEN, OWNER), xml.UploadEntry("k2", "u2", WHEN)]
    parsed = parse(
        "ListMultipartUploads",
        xml.list_multipart_uploads_result(
            bucket="b",
            key_marker="",
            upload_id_marker="",
            max_uploads=1000,
            is_truncated=False,
            uploads=uploads,
            common_prefixes=["p/"],
            delimiter="/",
        ),
    )
    assert [u["UploadId"] for u in parsed["Uploads"]] == ["u1", "u2"]
    assert parsed["CommonPrefixes"] == [{"Prefix": "p/"}]


@pytest.mark.parametrize("quiet", [False, True])
def test_delete_result(quiet: bool) -> None:
    body = xml.delete_result(
        [xml.Deleted("gone"), xml.Deleted("v", version_id="1")],
        [xml.DeleteError("locked", "AccessDenied", "Access Denied")],
        quiet=quiet,
    )
    parsed = parse("DeleteObjects", body)
    assert parsed["Errors"] == [
        {"Key": "locked", "Code": "AccessDenied", "Message": "Access Denied"}
    ]
    assert parsed.get("Deleted", []) == (
        [] if quiet else [{"Key": "gone"}, {"Key": "v", "VersionId": "1"}]
    )


def test_tagging_round_trip() -> None:
    tags = [("class", "personal.health"), ("subject", "EU & <friends>")]
    parsed = parse("GetObjectTagging", xml.tagging(tags))
    assert [(t["Key"], t["Value"]) for t in parsed["TagSet"]] == tags
    assert xml.parse_tagging(xml.tagging(tags)) == tags
    assert xml.parse_tagging(xml.tagging(dict(tags))) == tags


def test_error_document() -> None:
    err = errors.no_such_key("a/b&c")
    body = xml.error_document(err, request_id="req-1", resource="/bkt/a/b&c")
    parsed = RestXMLParser().parse(
        {"body": body, "headers": {}, "status_code": err.status},
        MODEL.operation_model("GetObject").output_shape,
    )
    assert parsed["Error"]["Code"] == "NoSuchKey"
    assert parsed["Error"]["Message"] == "The specified key does not exist."
    assert parsed["Error"]["Key"] == "a/b&c"
    assert b"<RequestId>req-1</RequestId>" in body
    assert b"<Key>a/b&amp;c</Key>" in body
    assert b"<Resource>/bkt/a/b&amp;c</Resource>" in body
    assert err.status == 404


def test_not_modified_has_no_body_but_validators() -> None:
    err = errors.not_modified(etag='"e"', last_modified="Mon, 23 Nov 2026 09:21:26 GMT")
    assert err.status == 304
    assert not err.has_body
    assert xml.error_document(err, request_id="r") == b""
    assert err.headers == {"ETag": '"e"', "Last-Modified": "Mon, 23 Nov 2026 09:21:26 GMT"}


def test_error_table_statuses() -> None:
    expected = {
        "AccessDenied": 403, "InvalidAccessKeyId": 403, "SignatureDoesNotMatch": 403,
        "RequestTimeTooSkewed": 403, "NoSuchBucket": 404, "NoSuchKey": 404, "NoSuchUpload": 404,
        "BucketAlreadyExists": 409, "BucketAlreadyOwnedByYou": 409, "BucketNotEmpty": 409,
        "InvalidBucketName": 400, "InvalidArgument": 400, "InvalidRange": 416,
        "InvalidPart": 400, "InvalidPartOrder": 400, "EntityTooSmall": 400,
        "EntityTooLarge": 400, "BadDigest": 400, "InvalidDigest": 400,
        "XAmzContentSHA256Mismatch": 400, "IncompleteBody": 400, "MalformedXML": 400,
        "MissingContentLength": 411, "PreconditionFailed": 412, "NotModified": 304,
        "MethodNotAllowed": 405, "NotImplemented": 501, "InternalError": 500,
        "InvalidRequest": 400, "KeyTooLongError": 400, "MetadataTooLarge": 400,
        "InvalidTag": 400, "ResidencyViolation": 403, "RequestHeaderSectionTooLarge": 400,
        "AuthorizationHeaderMalformed": 400, "AuthorizationQueryParametersError": 400,
    }  # fmt: skip
    for code, status in expected.items():
        assert errors.STATUS[code] == status, code
        assert S3Error(code).status == status
        assert S3Error(code).message == errors.DEFAULT_MESSAGES[code]


def test_error_helpers_carry_s3_fields() -> None:
    assert errors.invalid_range(10, "bytes=20-").fields == {
        "RangeRequested": "bytes=20-",
        "ActualObjectSize": "10",
    }
    assert errors.invalid_range(10).headers["Content-Range"] == "bytes */10"
    assert errors.no_such_upload("u").fields == {"UploadId": "u"}
    assert errors.no_such_bucket("b").fields == {"BucketName": "b"}
    err = errors.invalid_argument("bad", name="max-keys", value="-1")
    assert err.fields == {"ArgumentName": "max-keys", "ArgumentValue": "-1"}
    rv = errors.residency_violation("No location in EEA", rule="eu-personal")
    assert (rv.code, rv.status, rv.message, rv.fields) == (
        "ResidencyViolation",
        403,
        "No location in EEA",
        {"Rule": "eu-personal"},
    )
    assert errors.method_not_allowed("POST", "OBJECT", allow="GET").headers == {"Allow": "GET"}
    assert errors.no_such_key("k").with_fields(resource="/b/k").fields == {
        "Key": "k",
        "Resource": "/b/k",
    }


# --- request bodies: botocore's serializer -> our parser ------------------------------------


def test_parse_complete_multipart_upload_from_botocore() -> None:
    body = serialize(
        "CompleteMultipartUpload",
        {
            "Bucket": "b",
            "Key": "k",
            "UploadId": "u",
            "MultipartUpload": {
                "Parts": [
                    {"PartNumber": 1, "ETag": '"aaa"', "ChecksumCRC32": "AAAAAA=="},
                    {"PartNumber": 3, "ETag": "bbb"},
                ]
            },
        },
    )
    parts = xml.parse_complete_multipart_upload(body)
    assert parts == [
        xml.CompletedPart(1, "aaa", {"CRC32": "AAAAAA=="}),
        xml.CompletedPart(3, "bbb", {}),
    ]


def test_parse_delete_from_botocore() -> None:
    keys = [f"k{i} &<>ü" for i in range(1000)]
    body = serialize(
        "DeleteObjects",
        {
            "Bucket": "b",
            "Delete": {
                "Objects": [{"Key": k} for k in keys[:-1]] + [{"Key": keys[-1], "VersionId": "v"}],
                "Quiet": True,
            },
        },
    )
    request = xml.parse_delete(body)
    assert request.quiet is True
    assert [o.key for o in request.objects] == keys
    assert request.objects[-1].version_id == "v"


def test_parse_tagging_and_bucket_configuration_from_botocore() -> None:
    body = serialize(
        "PutObjectTagging",
        {"Bucket": "b", "Key": "k", "Tagging": {"TagSet": [{"Key": "a", "Value": ""}]}},
    )
    assert xml.parse_tagging(body) == [("a", "")]
    body = serialize(
        "CreateBucket",
        {"Bucket": "b", "CreateBucketConfiguration": {"LocationConstraint": "eu-central-1"}},
    )
    assert xml.parse_create_bucket_configuration(body) == "eu-central-1"
    assert xml.parse_create_bucket_configuration(b"") is None
    assert (
        xml.parse_create_bucket_configuration(
            b"<CreateBucketConfiguration><LocationConstraint/></CreateBucketConfiguration>"
        )
        is None
    )


# --- hostile and malformed bodies -----------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<Delete><Object><Key>&lol2;</Key></Object></Delete>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Delete><Object><Key>&xxe;</Key></Object></Delete>"""


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        b"<Delete><Object><Key>k</Key></Object>",
        b"<Tagging><TagSet/></Tagging>",
        BILLION_LAUGHS,
        XXE,
        b"<Delete><Quiet>maybe</Quiet><Object><Key>k</Key></Object></Delete>",
        b"<Delete><Quiet>true</Quiet></Delete>",
        b"<Delete><Object><Key></Key></Object></Delete>",
        b"<Delete><Object><VersionId>1</VersionId></Object></Delete>",
        b"<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>",
        b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>",
    ],
    ids=[
        "empty",
        "text",
        "unclosed",
        "wrong-root",
        "billion-laughs",
        "xxe",
        "quiet-value",
        "no-objects",
        "empty-key",
        "no-key",
        "two-keys",
        "1001-keys",
    ],
)
def test_malformed_delete(body: bytes) -> None:
    with pytest.raises(S3Error) as exc:
        xml.parse_delete(body)
    assert (exc.value.code, exc.value.status) == ("MalformedXML", 400)


def test_oversized_body() -> None:
    body = b"<Delete>" + b" " * xml.MAX_XML_BODY + b"</Delete>"
    with pytest.raises(S3Error) as exc:
        xml.parse_delete(body)
    assert exc.value.code == "MaxMessageLengthExceeded"


async def test_read_body_stops_at_the_limit() -> None:
    pulled = 0

    async def endless() -> Any:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"x" * 1024

    with pytest.raises(S3Error) as exc:
        await xml.read_body(endless(), limit=10 * 1024)
    assert exc.value.code == "MaxMessageLengthExceeded"
    assert pulled == 11
    assert await xml.read_body(_agen([b"<a/>", b""]), limit=10) == b"<a/>"


async def _agen(pieces: list[bytes]) -> Any:
    for piece in pieces:
        yield piece


@pytest.mark.parametrize(
    ("parts", "code"),
    [
        ("", "MalformedXML"),
        ("<Part><PartNumber>1</PartNumber></Part>", "MalformedXML"),
        ("<Part><PartNumber>0</PartNumber><ETag>e</ETag></Part>", "InvalidArgument"),
        ("<Part><PartNumber>10001</PartNumber><ETag>e</ETag></Part>", "InvalidArgument"),
        ("<Part><PartNumber>x</PartNumber><ETag>e</ETag></Part>", "InvalidArgument"),
        (
            "<Part><PartNumber>2</PartNumber><ETag>e</ETag></Part>"
            "<Part><PartNumber>1</PartNumber><ETag>e</ETag></Part>",
            "InvalidPartOrder",
        ),
        (
            "<Part><PartNumber>2</PartNumber><ETag>e</ETag></Part>"
            "<Part><PartNumber>2</PartNumber><ETag>e</ETag></Part>",
            "InvalidPartOrder",
        ),
    ],
    ids=["no-parts", "no-etag", "zero", "too-big", "nan", "descending", "duplicate"],
)
def test_malformed_complete_multipart_upload(parts: str, code: str) -> None:
    body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
    with pytest.raises(S3Error) as exc:
        xml.parse_complete_multipart_upload(body)
    assert exc.value.code == code


def _tags(pairs: list[tuple[str, str]]) -> bytes:
    inner = "".join(f"<Tag><Key>{k}</Key><Value>{v}</Value></Tag>" for k, v in pairs)
    return f"<Tagging><TagSet>{inner}</TagSet></Tagging>".encode()


@pytest.mark.parametrize(
    "pairs",
    [
        [(f"k{i}", "v") for i in range(11)],
        [("dup", "1"), ("dup", "2")],
        [("k" * 129, "v")],
        [("k", "v" * 257)],
        [("", "v")],
        [("aws:reserved", "v")],
    ],
    ids=["eleven", "duplicate", "long-key", "long-value", "empty-key", "aws-prefix"],
)
def test_invalid_tags(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(S3Error) as exc:
        xml.parse_tagging(_tags(pairs))
    assert (exc.value.code, exc.value.status) == ("InvalidTag", 400)


def test_tag_limits_are_inclusive() -> None:
    pairs = [(f"k{i}", "v") for i in range(9)] + [("k" * 128, "v" * 256)]
    assert xml.parse_tagging(_tags(pairs)) == pairs


def test_tagging_header() -> None:
    assert xml.parse_tagging_header("class=personal&subject=EU%20%26%20UK") == [
        ("class", "personal"),
        ("subject", "EU & UK"),
    ]
    assert xml.parse_tagging_header("") == []
    assert xml.parse_tagging_header("flag=") == [("flag", "")]
    with pytest.raises(S3Error) as exc:
        xml.parse_tagging_header("a=1&a=2")
    assert exc.value.code == "InvalidTag"
    with pytest.raises(S3Error) as exc:
        xml.parse_tagging_header("novalue&&=")
    assert exc.value.code in ("InvalidArgument", "InvalidTag")
