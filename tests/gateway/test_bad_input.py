"""Bad input gets the right S3 XML error, never a traceback, and never a torn object."""

from __future__ import annotations

import base64
import hashlib
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import botocore.exceptions
import httpx
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from gwserver import Gateway, run_residency

from residency.gateway.auth import KEY_CACHE_SECONDS


def new_bucket(s3: Any) -> str:
    name = f"b-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def code_of(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def signed_headers(
    gateway: Gateway, method: str, url: str, headers: dict[str, str], body: bytes = b""
) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, headers=headers, data=body)
    creds = Credentials(gateway.access_key, gateway.secret_key)
    S3SigV4Auth(creds, "s3", gateway.region).add_auth(request)
    return dict(request.headers.items())


def test_wrong_secret_is_signature_does_not_match(gateway: Gateway) -> None:
    s3 = gateway.s3(secret_key="x" * 40)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.list_buckets()
    assert code_of(exc) == "SignatureDoesNotMatch"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unknown_key_is_invalid_access_key_id(gateway: Gateway) -> None:
    s3 = gateway.s3(access_key="AKIAUNKNOWNUNKNOWN00", secret_key="x" * 40)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.list_buckets()
    assert code_of(exc) == "InvalidAccessKeyId"


def test_revoked_key_stops_working(gateway: Gateway) -> None:
    import json

    created = run_residency(
        "key",
        "create",
        "--tenant",
        "acme",
        "--name",
        "temp",
        "--json",
        "--config",
        str(gateway.config),
        cwd=gateway.data_dir,
    )
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    s3 = gateway.s3(key["access_key_id"], key["secret_access_key"])
    s3.list_buckets()
    revoked = run_residency(
        "key", "revoke", key["access_key_id"], "--config", str(gateway.config), cwd=gateway.data_dir
    )
    assert revoked.returncode == 0, revoked.stderr
    time.sleep(KEY_CACHE_SECONDS + 0.5)  # the documented bound of the gateway's key cache
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.list_buckets()
    assert code_of(exc) == "InvalidAccessKeyId"


def test_anonymous_request_is_access_denied(gateway: Gateway) -> None:
    response = httpx.get(f"{gateway.endpoint}/")
    assert response.status_code == 403
    assert b"<Code>AccessDenied</Code>" in response.content
    assert response.headers["content-type"].startswith("application/xml")
    assert response.headers["x-amz-request-id"]


@pytest.mark.parametrize(
    ("method", "path", "kind"), [("PATCH", "/b/k", "OBJECT"), ("OPTIONS", "/b", "BUCKET")]
)
def test_unknown_method_is_method_not_allowed(
    gateway: Gateway, method: str, path: str, kind: str
) -> None:
    response = httpx.request(method, f"{gateway.endpoint}{path}")
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("application/xml")
    assert b"<Code>MethodNotAllowed</Code>" in response.content
    assert f"<Method>{method}</Method>".encode() in response.content
    assert f"<ResourceType>{kind}</ResourceType>".encode() in response.content
    assert response.headers["allow"] == "GET, HEAD, PUT, POST, DELETE"
    assert response.headers["x-amz-request-id"]


def test_malformed_xml(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    url = f"{gateway.endpoint}/{bucket}?delete"
    body = b"<Delete><Object><Key>unterminated"
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()  # DeleteObjects requires one
    headers = signed_headers(
        gateway, "POST", url, {"Content-Type": "application/xml", "Content-MD5": md5}, body
    )
    response = httpx.post(url, content=body, headers=headers)
    assert response.status_code == 400
    assert b"<Code>MalformedXML</Code>" in response.content
    upload = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="k", UploadId=upload, MultipartUpload={"Parts": []}
        )
    assert code_of(exc) == "MalformedXML"


def test_bad_range_is_invalid_range(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"0123456789")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", Range="bytes=20-30")
    assert code_of(exc) == "InvalidRange"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416


def test_missing_bucket_and_key(gateway: Gateway) -> None:
    s3 = gateway.s3()
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket="no-such-bucket-here", Key="k")
    assert code_of(exc) == "NoSuchBucket"
    bucket = new_bucket(s3)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="nope")
    assert code_of(exc) == "NoSuchKey"


def test_content_md5_mismatch_is_bad_digest_and_stores_nothing(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    before = gateway.blob_files()
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.put_object(
            Bucket=bucket, Key="k", Body=b"hello", ContentMD5="XrY7u+Ae7tCTyyK7j1rNww=="
        )  # md5 of "hello world"
    assert code_of(exc) == "BadDigest"
    assert gateway.blob_files() == before
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_object(Bucket=bucket, Key="k")


def test_truncated_body_leaves_no_object_and_no_blob(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    before = gateway.blob_files()
    url = f"{gateway.endpoint}/{bucket}/truncated"
    declared, sent = 200_000, 50_000
    headers = signed_headers(
        gateway,
        "PUT",
        url,
        {
            "Content-Length": str(declared),
            "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
        },
    )
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        head = (
            f"PUT {parts.path} HTTP/1.1\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        )
        sock.sendall(head.encode() + b"y" * sent)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(30)
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass
    # The server finishes handling the aborted request on its own schedule: wait for its log.
    deadline = time.monotonic() + 30
    while f"PUT /{bucket}/truncated" not in gateway.server_log():
        assert time.monotonic() < deadline, "the gateway never logged the truncated PUT"
        time.sleep(0.1)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="truncated")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    from test_residency import run_sweep

    run_sweep(gateway)
    assert gateway.blob_files() == before


def test_huge_header_is_refused_cleanly(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", Metadata={"big": "v" * 9000})
    status = exc.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert status in (400, 431)
    if status == 400:
        assert code_of(exc) in ("RequestHeaderSectionTooLarge", "MetadataTooLarge")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", Metadata={"m": "v" * 2100})
    assert code_of(exc) == "MetadataTooLarge"
    assert "Traceback" not in gateway.server_log()


def test_key_too_long(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"x")
    assert code_of(exc) == "KeyTooLongError"


def test_bad_max_keys_and_continuation_token(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.list_objects_v2(Bucket=bucket, ContinuationToken="!!!not-a-token")
    assert code_of(exc) == "InvalidArgument"


def test_no_tracebacks_in_the_log(gateway: Gateway) -> None:
    """Every bad request above was answered as S3 XML; none reached the catch-all."""
    log = gateway.server_log()
    assert "Traceback" not in log
    assert "internal error" not in log
