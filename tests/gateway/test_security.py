"""The security holes of issue #13, each through a real client or raw HTTP against a real server.

Presigned URLs cannot gain unsigned `x-amz-*` headers; a made-up version id never deletes the
current object; out-of-range dates and numbers are S3 errors, not 500s; a key cannot forge a
log line; keys are valid UTF-8 and listings are always well-formed XML; half an UploadPart is
not a PutObject; DeleteObjects needs an integrity header and is one short transaction; slow
bodies time out; an anonymous PUT gets no `100 Continue`; SigV2 presigned URLs (boto3's
default) work.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import time
import uuid
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import botocore.exceptions
import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from gwserver import REGION, Gateway, create_key, start_server, write_config

from residency.gateway.xml import ObjectEntry, list_objects_v1, list_objects_v2

S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def new_bucket(s3: Any) -> str:
    name = f"sec-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def code_of(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def status_of(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> int:
    return int(exc.value.response["ResponseMetadata"]["HTTPStatusCode"])


def xml_code(response: httpx.Response) -> str:
    match = re.search(rb"<Code>([^<]*)</Code>", response.content)
    return match.group(1).decode() if match else ""


def signed(
    gateway: Gateway, method: str, url: str, headers: dict[str, str], body: bytes = b""
) -> dict[str, str]:
    """Headers of a SigV4-signed request (botocore's own signer), for what clients cannot send."""
    request = AWSRequest(method=method, url=url, headers=headers, data=body)
    S3SigV4Auth(Credentials(gateway.access_key, gateway.secret_key), "s3", REGION).add_auth(request)
    return dict(request.headers.items())


def signed_request(
    gateway: Gateway,
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> httpx.Response:
    all_headers = {"x-amz-content-sha256": hashlib.sha256(body).hexdigest(), **(headers or {})}
    return httpx.request(
        method, url, content=body, headers=signed(gateway, method, url, all_headers, body)
    )


def body_of(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


# --- 1. presigned requests refuse unsigned x-amz-* headers ------------------------------------


def test_presigned_put_cannot_gain_a_copy_source_or_classification(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="secret", Body=b"the signer's secret")
    v4 = gateway.s3(signature_version="s3v4")
    url = v4.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "upload"}, ExpiresIn=300
    )
    for extra in (
        {"x-amz-copy-source": f"{bucket}/secret"},
        {"x-amz-meta-residency-class": "public"},
        {"x-amz-tagging": "residency-class=public"},
    ):
        response = httpx.put(url, content=b"", headers=extra)
        assert response.status_code == 403, response.text
        assert xml_code(response) == "AccessDenied"
        assert b"There were headers present in the request which were not signed" in (
            response.content
        )
        assert f"<HeadersNotSigned>{next(iter(extra))}</HeadersNotSigned>".encode() in (
            response.content
        )
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="upload")
    assert status_of(exc) == 404  # neither a copy nor a reclassified upload happened
    # The URL still does what it was signed for.
    assert httpx.put(url, content=b"as signed").status_code == 200
    assert body_of(s3, bucket, "upload") == b"as signed"


def test_presigned_urls_cannot_gain_residency_headers(gateway: Gateway) -> None:
    """The gateway's own headers change decisions (a bucket's default class or policy, the
    purpose a read is judged by): a SigV4 signature must cover them like `x-amz-*` ones."""
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    v4 = gateway.s3(signature_version="s3v4")
    get_url = v4.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    response = httpx.get(get_url, headers={"x-residency-purpose": "audit"})
    assert response.status_code == 403, response.text
    assert b"<HeadersNotSigned>x-residency-purpose</HeadersNotSigned>" in response.content
    fresh = f"sec-{uuid.uuid4().hex[:12]}"
    create_url = v4.generate_presigned_url("create_bucket", Params={"Bucket": fresh})
    for extra in ({"x-residency-default-class": "public"}, {"x-residency-policy": "preset:none"}):
        response = httpx.put(create_url, headers=extra)
        assert response.status_code == 403, response.text
        assert xml_code(response) == "AccessDenied"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.head_bucket(Bucket=fresh)
    assert status_of(exc) == 404  # no bucket with an unsigned default was made
    assert httpx.get(get_url).content == b"x"  # the URL still does what it was signed for


def test_presigned_url_with_signed_metadata_still_works(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    v4 = gateway.s3(signature_version="s3v4")
    url = v4.generate_presigned_url(
        "put_object",
        Params={"Bucket": bucket, "Key": "m", "Metadata": {"residency-class": "public"}},
        ExpiresIn=300,
    )
    response = httpx.put(url, content=b"m", headers={"x-amz-meta-residency-class": "public"})
    assert response.status_code == 200, response.text
    assert s3.head_object(Bucket=bucket, Key="m")["Metadata"] == {"residency-class": "public"}


# --- 2. versionId never deletes the current object --------------------------------------------


def test_a_version_id_never_deletes_the_current_object(gateway: Gateway) -> None:
    """A made-up version id addresses nothing: malformed is InvalidArgument (400), well-formed
    but unknown deletes nothing (204, as S3) and reads are NoSuchVersion; the object stays."""
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"keep me")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.delete_object(Bucket=bucket, Key="k", VersionId="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
    assert code_of(exc) == "InvalidArgument"
    assert status_of(exc) == 400
    unknown = "0123456789abcdef0123456789abcdef"
    assert s3.delete_object(Bucket=bucket, Key="k", VersionId=unknown)["VersionId"] == unknown
    assert body_of(s3, bucket, "k") == b"keep me"
    for call in (s3.get_object, s3.head_object, s3.get_object_tagging):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            call(Bucket=bucket, Key="k", VersionId=unknown)
        assert status_of(exc) == 404
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            call(Bucket=bucket, Key="k", VersionId="not-a-version")
        assert status_of(exc) == 400
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.put_object_tagging(
            Bucket=bucket,
            Key="k",
            VersionId=unknown,
            Tagging={"TagSet": [{"Key": "a", "Value": "b"}]},
        )
    assert code_of(exc) == "NoSuchVersion"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.delete_object_tagging(Bucket=bucket, Key="k", VersionId=unknown)
    assert code_of(exc) == "NoSuchVersion"
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.copy_object(
            Bucket=bucket,
            Key="copy",
            CopySource={"Bucket": bucket, "Key": "k", "VersionId": unknown},
        )
    assert code_of(exc) == "NoSuchVersion"
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k", "VersionId": "v1"}]})
    assert [e["Code"] for e in result["Errors"]] == ["NoSuchVersion"]
    result = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": "k", "VersionId": unknown}]}
    )
    assert [d["VersionId"] for d in result["Deleted"]] == [unknown]
    assert body_of(s3, bucket, "k") == b"keep me"
    # `null` is the version id of an object in an unversioned bucket: it addresses the object.
    assert s3.get_object(Bucket=bucket, Key="k", VersionId="null")["Body"].read() == b"keep me"
    s3.delete_object(Bucket=bucket, Key="k", VersionId="null")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="k")
    assert status_of(exc) == 404


# --- 3. dates and numbers at the edge ---------------------------------------------------------

FAR_DATE = "Fri, 31 Dec 9999 23:59:59 -2359"  # past datetime.max once converted to UTC


def test_out_of_range_date_header_is_access_denied_not_500(gateway: Gateway) -> None:
    response = httpx.get(
        f"{gateway.endpoint}/some-bucket",
        headers={
            "Authorization": (
                "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20261201/us-east-1/s3/aws4_request, "
                f"SignedHeaders=date;host, Signature={'0' * 64}"
            ),
            "Date": FAR_DATE,
            "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
        },
    )
    assert response.status_code == 403, response.text
    assert xml_code(response) == "AccessDenied"


def test_presigned_url_from_year_9999_is_refused_not_500(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    url = gateway.s3(signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=604800
    )
    far = re.sub(r"X-Amz-Date=\d{8}T\d{6}Z", "X-Amz-Date=99991231T235959Z", url)
    far = re.sub(r"(X-Amz-Credential=[^&]*?)%2F\d{8}%2F", r"\1%2F99991231%2F", far)
    response = httpx.get(far)
    assert response.status_code == 403, response.text
    assert xml_code(response) == "AccessDenied"


def test_out_of_range_conditional_dates_are_ignored(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"conditional")
    url = f"{gateway.endpoint}/{bucket}/k"
    for header in ("If-Modified-Since", "If-Unmodified-Since"):
        response = signed_request(gateway, "GET", url, {header: FAR_DATE})
        assert response.status_code == 200, response.text
        assert response.content == b"conditional"
    for header in ("x-amz-copy-source-if-modified-since", "x-amz-copy-source-if-unmodified-since"):
        response = signed_request(
            gateway,
            "PUT",
            f"{gateway.endpoint}/{bucket}/copy",
            {"x-amz-copy-source": f"{bucket}/k", header: FAR_DATE},
        )
        assert response.status_code == 200, response.text
    assert body_of(s3, bucket, "copy") == b"conditional"


def test_numbers_that_are_not_plain_decimals_are_400(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"0123456789")
    huge = "9" * 5000  # int() refuses more than 4300 digits
    for query in (f"list-type=2&max-keys={quote('²')}", f"list-type=2&max-keys={huge}"):
        response = signed_request(gateway, "GET", f"{gateway.endpoint}/{bucket}?{query}")
        assert response.status_code == 400, response.text
        assert xml_code(response) == "InvalidArgument"
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    for number in (quote("²"), huge):
        response = signed_request(
            gateway,
            "PUT",
            f"{gateway.endpoint}/{bucket}/mp?partNumber={number}&uploadId={upload}",
            body=b"part",
        )
        assert response.status_code == 400, response.text
        assert xml_code(response) == "InvalidArgument"
    complete = (
        "<CompleteMultipartUpload><Part><PartNumber>²</PartNumber><ETag>x</ETag></Part>"
        "</CompleteMultipartUpload>"
    ).encode()
    response = signed_request(
        gateway, "POST", f"{gateway.endpoint}/{bucket}/mp?uploadId={upload}", body=complete
    )
    assert response.status_code == 400, response.text
    assert xml_code(response) == "InvalidArgument"
    response = signed_request(
        gateway, "GET", f"{gateway.endpoint}/{bucket}/k", {"Range": f"bytes={'1' * 5000}-"}
    )
    assert response.status_code == 416, response.text
    response = signed_request(
        gateway, "GET", f"{gateway.endpoint}/{bucket}/k", {"Range": f"bytes=-{'1' * 5000}"}
    )
    assert response.status_code == 206
    assert response.content == b"0123456789"


def test_subject_count_above_2_63_is_invalid_argument_without_entity_json(
    gateway: Gateway,
) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.put_object(
            Bucket=bucket,
            Key="people.csv",
            Body=b"x",
            Metadata={
                "residency-class": "personal",
                "residency-subject": "US",
                "residency-subjects": str(2**64),
            },
        )
    assert code_of(exc) == "InvalidArgument"
    assert status_of(exc) == 400
    message = exc.value.response["Error"]["Message"]
    assert "{" not in message
    assert "__entity" not in message
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket=bucket, Key="people.csv")


# --- 4. log injection -------------------------------------------------------------------------


def test_a_key_cannot_forge_a_log_line(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    forged = "12:00:00 INFO residency.gateway: forged line"
    s3.put_object(Bucket=bucket, Key=f"a\n{forged}\r\u2028x", Body=b"x")
    deadline = time.monotonic() + 10
    while f"PUT /{bucket}/a" not in gateway.server_log():
        assert time.monotonic() < deadline, "the gateway never logged the PUT"
        time.sleep(0.1)
    lines = gateway.server_log().splitlines()
    assert not any(line.startswith(forged) for line in lines)
    assert any(f"PUT /{bucket}/a\\x0a{forged}\\x0d\\u2028x 200" in line for line in lines)


# --- 5. keys: valid UTF-8, and listings that always parse ------------------------------------


def test_invalid_utf8_in_a_key_is_invalid_uri(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="a\ufffd", Body=b"replacement character")
    for method in ("GET", "PUT", "DELETE"):
        response = signed_request(gateway, method, f"{gateway.endpoint}/{bucket}/a%FF")
        assert response.status_code == 400, response.text
        assert xml_code(response) == "InvalidURI"
    anonymous = httpx.get(f"{gateway.endpoint}/{bucket}/a%C3")
    assert anonymous.status_code == 400
    assert xml_code(anonymous) == "InvalidURI"
    assert body_of(s3, bucket, "a\ufffd") == b"replacement character"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["a\ufffd"]


def listed_keys(gateway: Gateway, bucket: str, query: str = "list-type=2") -> list[str]:
    response = signed_request(gateway, "GET", f"{gateway.endpoint}/{bucket}?{query}")
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.content)  # must be well-formed XML 1.0
    return [el.text or "" for el in root.iter(f"{S3_NS}Key")]


def test_keys_with_cr_lf_tab_round_trip_through_listings(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    keys = sorted(["cr\rkey", "crlf\r\nkey", "lf\nkey", "tab\tkey", "plain"])
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    assert listed_keys(gateway, bucket) == keys
    assert listed_keys(gateway, bucket, "") == keys  # ListObjects V1
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == keys
    for key in keys:
        assert body_of(s3, bucket, key) == key.encode()


def test_keys_xml_cannot_carry_are_refused(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    for key in ("nul\x00key", "bell\x07key", "esc\x1bkey"):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        assert code_of(exc) == "InvalidArgument"
        assert "control character" in exc.value.response["Error"]["Message"]
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert listed_keys(gateway, bucket) == []
    # A NoSuchKey naming such a key is still a document a client can parse.
    response = signed_request(gateway, "GET", f"{gateway.endpoint}/{bucket}/nul%00key")
    assert response.status_code == 404
    ET.fromstring(response.content)


@pytest.mark.parametrize("listing", [list_objects_v1, list_objects_v2])
def test_listing_of_a_key_xml_cannot_carry_switches_to_url_encoding(listing: Any) -> None:
    """Keys adopted from elsewhere may hold anything: the document still parses."""
    entry = ObjectEntry("bad\x01key\r", datetime.now(UTC), '"e"', 1)
    common = {"bucket": "b", "prefix": "", "max_keys": 1000, "is_truncated": False}
    extra = {"marker": ""} if listing is list_objects_v1 else {}
    body = listing(**common, **extra, contents=[entry])
    root = ET.fromstring(body)
    assert root.findtext(f"{S3_NS}EncodingType") == "url"
    assert root.findtext(f"{S3_NS}Contents/{S3_NS}Key") == "bad%01key%0D"


# --- 6. half an UploadPart; DeleteObjects integrity ------------------------------------------


def test_put_with_upload_id_but_no_part_number_does_not_overwrite(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"original")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    for query in (f"uploadId={upload}", "partNumber=1"):
        response = signed_request(
            gateway, "PUT", f"{gateway.endpoint}/{bucket}/k?{query}", body=b"overwritten"
        )
        assert response.status_code == 400, response.text
        assert xml_code(response) == "InvalidArgument"
    assert body_of(s3, bucket, "k") == b"original"


def delete_body(*keys: str) -> bytes:
    objects = "".join(f"<Object><Key>{key}</Key></Object>" for key in keys)
    return f"<Delete>{objects}</Delete>".encode()


def test_delete_objects_needs_content_md5_or_a_checksum(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    for key in ("a", "b"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    url = f"{gateway.endpoint}/{bucket}?delete"
    body = delete_body("a")
    response = signed_request(gateway, "POST", url, body=body)
    assert response.status_code == 400, response.text
    assert xml_code(response) == "InvalidRequest"
    assert b"Missing required header for this request: Content-MD5" in response.content
    assert body_of(s3, bucket, "a") == b"x"
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    response = signed_request(gateway, "POST", url, {"Content-MD5": wrong}, body)
    assert xml_code(response) == "BadDigest"
    assert body_of(s3, bucket, "a") == b"x"
    response = signed_request(gateway, "POST", url, {"Content-MD5": md5}, body)
    assert response.status_code == 200, response.text
    crc = base64.b64encode(zlib.crc32(delete_body("b")).to_bytes(4, "big"))
    response = signed_request(
        gateway, "POST", url, {"x-amz-checksum-crc32": crc.decode()}, delete_body("b")
    )
    assert response.status_code == 200, response.text
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    # What boto3 sends today (a flexible checksum or Content-MD5) is accepted.
    s3.put_object(Bucket=bucket, Key="c", Body=b"x")
    assert s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "c"}]})["Deleted"]


# --- 7. slow clients, big batches, Expect: 100-continue ---------------------------------------


def test_delete_objects_of_1000_keys_is_one_audit_entry(gateway: Gateway) -> None:
    s3 = gateway.s3(max_pool_connections=16)
    bucket = new_bucket(s3)
    keys = [f"k/{i:04d}" for i in range(999)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b"x"), keys))
    result = s3.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": k} for k in [*keys, "never-was"]]}
    )
    assert len(result["Deleted"]) == 1000
    assert not result.get("Errors")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    entries = gateway.audit_entries("delete", f"s3://{bucket}")
    assert len(entries) == 1
    assert entries[0]["detail"]["action"] == "delete_objects"
    assert sorted(d["key"] for d in entries[0]["detail"]["deleted"]) == keys


def test_anonymous_put_with_expect_100_continue_gets_no_100(gateway: Gateway) -> None:
    parts = urlsplit(gateway.endpoint)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.settimeout(10)
        sock.sendall(
            b"PUT /some-bucket/k HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 403"), answer[:100]
    assert b"100 Continue" not in answer
    assert b"connection: close" in answer.lower()


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory, moto_server: Any) -> Iterator[Gateway]:
    """A gateway that waits at most 1 s for a body to move (`body_idle_timeout`)."""
    root = tmp_path_factory.mktemp("impatient")
    config, dirs = write_config(root, moto_server, moto_server.new_bucket())
    access, secret = create_key(config, root, "acme")
    server = start_server(
        ["--config", str(config)],
        root,
        env={"RESIDENCY_BODY_IDLE_TIMEOUT": "1", "RESIDENCY_BODY_MIN_RATE": "1024"},
    )
    try:
        yield Gateway(
            endpoint=server.endpoint,
            access_key=access,
            secret_key=secret,
            region=REGION,
            data_dir=root / "data",
            config=config,
            server=server,
            moto_bucket="",
            _locations=dirs,
        )
    finally:
        server.stop()


def _slow_put(gateway: Gateway, bucket: str, key: str, trickle: bool) -> tuple[float, bytes]:
    url = f"{gateway.endpoint}/{bucket}/{key}"
    headers = signed(
        gateway,
        "PUT",
        url,
        {"Content-Length": "100000", "x-amz-content-sha256": "UNSIGNED-PAYLOAD"},
    )
    parts = urlsplit(url)
    started = time.monotonic()
    answer = b""
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        head = f"PUT {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        sock.sendall(head.encode() + b"\r\n" + b"x" * 10)
        sock.settimeout(0.3)
        while time.monotonic() - started < 15:
            try:
                if trickle:
                    sock.sendall(b"x")
                piece = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not piece:
                break
            answer += piece
        sock.settimeout(5)
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
        except OSError:  # reset: closed as well
            closed = True
    assert closed, "the gateway kept the connection open"
    return time.monotonic() - started, answer


@pytest.mark.parametrize("trickle", [False, True], ids=["stalled", "trickling"])
def test_slow_body_gets_request_timeout_and_a_closed_connection(
    impatient: Gateway, trickle: bool
) -> None:
    s3 = impatient.s3()
    bucket = new_bucket(s3)
    took, answer = _slow_put(impatient, bucket, "slow", trickle)
    assert answer.startswith(b"HTTP/1.1 400"), answer[-400:]
    assert b"<Code>RequestTimeout</Code>" in answer
    assert b"not read from or written to within the timeout period" in answer
    assert took < 10
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="slow")
    assert status_of(exc) == 404
    s3.put_object(Bucket=bucket, Key="fast", Body=b"x" * 100_000)  # normal clients unaffected
    assert "Traceback" not in impatient.server_log()


# --- 8. SigV2 presigned URLs ------------------------------------------------------------------


def test_boto3_default_presign_is_sigv2_and_works(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="dir/a b+c.txt", Body=b"default presign")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "dir/a b+c.txt"}, ExpiresIn=300
    )
    assert "AWSAccessKeyId=" in url
    assert "X-Amz-Algorithm" not in url
    response = httpx.get(url)
    assert response.status_code == 200, response.text
    assert response.content == b"default presign"
    head = s3.generate_presigned_url(
        "head_object", Params={"Bucket": bucket, "Key": "dir/a b+c.txt"}, ExpiresIn=300
    )
    assert httpx.head(head).status_code == 200


def sigv2(gateway: Gateway, **config: Any) -> Any:
    return gateway.s3(signature_version="s3", **config)


def test_sigv2_presigned_put_get_and_subresources(gateway: Gateway) -> None:
    s3 = sigv2(gateway)
    bucket = new_bucket(gateway.s3())
    put = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "v2.txt"}, ExpiresIn=300
    )
    assert httpx.put(put, content=b"sigv2 body").status_code == 200
    get = s3.generate_presigned_url(
        "get_object",
        Params={"Bucket": bucket, "Key": "v2.txt", "ResponseContentType": "text/x-sigv2"},
        ExpiresIn=300,
    )
    response = httpx.get(get)
    assert response.status_code == 200, response.text
    assert response.content == b"sigv2 body"
    assert response.headers["content-type"] == "text/x-sigv2"
    # Sub-resources are signed: an UploadPart URL carries uploadId and partNumber.
    upload = gateway.s3().create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    part = s3.generate_presigned_url(
        "upload_part",
        Params={"Bucket": bucket, "Key": "mp", "UploadId": upload, "PartNumber": 1},
        ExpiresIn=300,
    )
    response = httpx.put(part, content=b"part one")
    assert response.status_code == 200, response.text
    parts = gateway.s3().list_parts(Bucket=bucket, Key="mp", UploadId=upload)["Parts"]
    assert [p["PartNumber"] for p in parts] == [1]
    other_part = part.replace("partNumber=1", "partNumber=2")
    assert xml_code(httpx.put(other_part, content=b"x")) == "SignatureDoesNotMatch"


def test_sigv2_presigned_put_with_metadata_needs_the_signed_header(gateway: Gateway) -> None:
    s3 = sigv2(gateway)
    bucket = new_bucket(gateway.s3())
    url = s3.generate_presigned_url(
        "put_object",
        Params={"Bucket": bucket, "Key": "m", "Metadata": {"residency-class": "public"}},
        ExpiresIn=300,
    )
    assert xml_code(httpx.put(url, content=b"m")) == "SignatureDoesNotMatch"
    response = httpx.put(url, content=b"m", headers={"x-amz-meta-residency-class": "public"})
    assert response.status_code == 200, response.text
    assert gateway.s3().head_object(Bucket=bucket, Key="m")["Metadata"] == {
        "residency-class": "public"
    }


def test_sigv2_presigned_url_cannot_gain_headers_or_change_target(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="secret", Body=b"secret")
    url = sigv2(gateway).generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "upload"}, ExpiresIn=300
    )
    for extra in ({"x-amz-copy-source": f"{bucket}/secret"}, {"x-amz-meta-residency-class": "x"}):
        response = httpx.put(url, content=b"", headers=extra)
        assert response.status_code == 403
        assert xml_code(response) == "SignatureDoesNotMatch"
    assert xml_code(httpx.put(url.replace("/upload?", "/other?"), content=b"x")) == (
        "SignatureDoesNotMatch"
    )
    assert xml_code(httpx.delete(url)) == "SignatureDoesNotMatch"  # the method is signed
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="upload")
    assert status_of(exc) == 404


def test_sigv2_expired_bad_and_unknown(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    v2 = sigv2(gateway)
    expired = v2.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=-60
    )
    response = httpx.get(expired)
    assert response.status_code == 403
    assert xml_code(response) == "AccessDenied"
    assert b"Request has expired" in response.content
    url = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    tampered = re.sub(r"Signature=[^&]+", "Signature=AAAAAAAAAAAAAAAAAAAAAAAAAAA%3D", url)
    assert xml_code(httpx.get(tampered)) == "SignatureDoesNotMatch"
    bad_expires = re.sub(r"Expires=\d+", "Expires=soon", url)
    response = httpx.get(bad_expires)
    assert response.status_code == 403
    assert xml_code(response) == "AccessDenied"
    stranger = sigv2(gateway).generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "k"}
    )
    stranger = re.sub(r"AWSAccessKeyId=[^&]+", "AWSAccessKeyId=AKIANOSUCHKEY0000000", stranger)
    assert xml_code(httpx.get(stranger)) == "InvalidAccessKeyId"


def test_sigv2_presigned_virtual_host(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="v/h.txt", Body=b"virtual v2")
    vhost = boto3.client(
        "s3",
        endpoint_url=gateway.endpoint.replace("127.0.0.1", "localhost"),
        aws_access_key_id=gateway.access_key,
        aws_secret_access_key=gateway.secret_key,
        region_name=gateway.region,
        config=Config(s3={"addressing_style": "virtual"}, signature_version="s3"),
    )
    port = gateway.endpoint.rsplit(":", 1)[1]
    for key, expected in (("v/h.txt", b"virtual v2"), ("", None)):
        method = "get_object" if key else "list_objects"
        params = {"Bucket": bucket, "Key": key} if key else {"Bucket": bucket}
        url = vhost.generate_presigned_url(method, Params=params)
        assert url.startswith(f"http://{bucket}.localhost:{port}/")
        path = url.split(f":{port}", 1)[1]
        response = httpx.get(
            f"http://127.0.0.1:{port}{path}", headers={"Host": f"{bucket}.localhost:{port}"}
        )
        assert response.status_code == 200, response.text
        if expected is not None:
            assert response.content == expected
        else:
            assert b"<Key>v/h.txt</Key>" in response.content


def test_no_tracebacks_in_the_log(gateway: Gateway) -> None:
    log = gateway.server_log()
    assert "Traceback" not in log
    assert "internal error" not in log


def test_presigned_create_and_delete_bucket(gateway: Gateway) -> None:
    """A presigned CreateBucket/DeleteBucket carries only auth parameters in its query: that
    is not a sub-resource (it was answered NotImplemented)."""
    s3 = gateway.s3()
    for signer in (gateway.s3(signature_version="s3v4"), s3):  # SigV4, then boto3's SigV2
        name = f"sec-{uuid.uuid4().hex[:12]}"
        url = signer.generate_presigned_url("create_bucket", Params={"Bucket": name})
        response = httpx.put(url)
        assert response.status_code == 200, response.text
        s3.head_bucket(Bucket=name)
        url = signer.generate_presigned_url("delete_bucket", Params={"Bucket": name})
        response = httpx.delete(url)
        assert response.status_code == 204, response.text
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            s3.head_bucket(Bucket=name)
        assert status_of(exc) == 404
