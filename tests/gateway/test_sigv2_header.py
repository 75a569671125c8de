"""SigV2 in an `Authorization: AWS <key>:<signature>` header, through real clients against a
real server: boto3 configured with `signature_version='s3'`, rclone with `--s3-v2-auth`,
and requests botocore's own SigV2 signer (HmacV1Auth) made, sent as signed or tampered with.

Before, such a request was refused (`400 InvalidRequest`: use SigV4).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from email.utils import formatdate
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import pytest
from botocore.auth import HmacV1Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from gwserver import Gateway

RCLONE = "/usr/bin/rclone"
MIB = 1024 * 1024


def new_bucket(s3: Any) -> str:
    name = f"v2-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def error_of(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[int, str]:
    response = exc.value.response
    return int(response["ResponseMetadata"]["HTTPStatusCode"]), str(response["Error"]["Code"])


def xml_code(response: httpx.Response) -> str:
    match = re.search(rb"<Code>([^<]*)</Code>", response.content)
    return match.group(1).decode() if match else ""


@pytest.fixture(scope="module")
def v2(gateway: Gateway) -> Any:
    """boto3 signing every request with SigV2 in the Authorization header; it records them."""
    client = gateway.s3(signature_version="s3")
    client.authorizations = []

    def record(request: Any, **_: Any) -> None:
        value = request.headers.get("Authorization", b"")
        client.authorizations.append(value.decode() if isinstance(value, bytes) else value)

    client.meta.events.register("before-send.s3", record)
    return client


def test_boto3_sigv2_put_get_list_copy_multipart_delete(v2: Any) -> None:
    bucket = new_bucket(v2)
    body = os.urandom(70_000)
    # Classification metadata is an x-amz-* header: signed.
    put = v2.put_object(
        Bucket=bucket, Key="dir/a b+c.txt", Body=body, Metadata={"residency-class": "public"}
    )
    assert put["ETag"]
    got = v2.get_object(Bucket=bucket, Key="dir/a b+c.txt")
    assert got["Body"].read() == body
    assert got["Metadata"] == {"residency-class": "public"}
    assert got["ResponseMetadata"]["HTTPHeaders"]["x-residency-class"] == "public"
    head = v2.head_object(Bucket=bucket, Key="dir/a b+c.txt", ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(body)
    listed = v2.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/a b+c.txt"]
    assert [o["Key"] for o in v2.list_objects(Bucket=bucket)["Contents"]] == ["dir/a b+c.txt"]
    assert bucket in [b["Name"] for b in v2.list_buckets()["Buckets"]]
    # x-amz-copy-source is signed; the copy starts from the source's classification.
    v2.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "dir/a b+c.txt"})
    assert v2.get_object(Bucket=bucket, Key="copy")["Body"].read() == body
    # Sub-resources (uploads, uploadId, partNumber) enter the string to sign.
    parts = [os.urandom(5 * MIB), os.urandom(1000)]
    upload = v2.create_multipart_upload(
        Bucket=bucket, Key="mp", Metadata={"residency-class": "public"}
    )["UploadId"]
    done = [
        {
            "PartNumber": n,
            "ETag": v2.upload_part(
                Bucket=bucket, Key="mp", UploadId=upload, PartNumber=n, Body=data
            )["ETag"],
        }
        for n, data in enumerate(parts, 1)
    ]
    assert len(v2.list_parts(Bucket=bucket, Key="mp", UploadId=upload)["Parts"]) == 2
    v2.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload={"Parts": done}
    )
    assert v2.get_object(Bucket=bucket, Key="mp", PartNumber=2)["Body"].read() == parts[1]
    v2.put_object_tagging(
        Bucket=bucket, Key="copy", Tagging={"TagSet": [{"Key": "team", "Value": "a"}]}
    )
    assert v2.get_object_tagging(Bucket=bucket, Key="copy")["TagSet"] == [
        {"Key": "team", "Value": "a"}
    ]
    v2.delete_object(Bucket=bucket, Key="dir/a b+c.txt")
    deleted = v2.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "copy"}, {"Key": "mp"}]})
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["copy", "mp"]
    assert "Contents" not in v2.list_objects_v2(Bucket=bucket)
    v2.delete_bucket(Bucket=bucket)
    # Every one of those requests was signed with SigV2 in the header.
    assert v2.authorizations
    assert all(a.startswith("AWS ") for a in v2.authorizations), set(v2.authorizations)


def test_boto3_sigv2_with_a_wrong_secret_or_an_unknown_key(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    wrong = gateway.s3(gateway.access_key, "not-the-secret", signature_version="s3")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        wrong.put_object(Bucket=bucket, Key="k", Body=b"overwritten")
    assert error_of(exc) == (403, "SignatureDoesNotMatch")
    stranger = gateway.s3("AKIANOSUCHKEY0000000", gateway.secret_key, signature_version="s3")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        stranger.get_object(Bucket=bucket, Key="k")
    assert error_of(exc) == (403, "InvalidAccessKeyId")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def v2_signed(
    gateway: Gateway,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    signer: type[HmacV1Auth] = HmacV1Auth,
) -> dict[str, str]:
    """The headers botocore's SigV2 signer sends for this request (Date, Authorization...)."""
    request = AWSRequest(
        method=method, url=f"{gateway.endpoint}{path}", headers=headers or {}, data=body
    )
    signer(Credentials(gateway.access_key, gateway.secret_key)).add_auth(request)
    return dict(request.headers.items())


def test_a_signed_request_cannot_be_changed(gateway: Gateway) -> None:
    s3 = gateway.s3()
    bucket = new_bucket(s3)
    s3.put_object(Bucket=bucket, Key="secret", Body=b"the signer's secret")
    path = f"/{bucket}/upload"
    signed = v2_signed(
        gateway,
        "PUT",
        path,
        {"Content-Type": "text/plain", "x-amz-meta-residency-class": "public"},
        b"as signed",
    )

    def send(method: str = "PUT", target: str = path, **changed: str) -> httpx.Response:
        return httpx.request(
            method, f"{gateway.endpoint}{target}", headers={**signed, **changed}, content=b"x"
        )

    for response in (
        send(**{"x-amz-meta-residency-class": "personal"}),  # reclassified
        send(**{"x-amz-meta-residency-subject": "RU"}),  # an amz header added
        send(**{"x-amz-copy-source": f"{bucket}/secret"}),  # turned into a copy
        send(**{"Content-Type": "text/html"}),
        send(**{"Date": formatdate(time.time() + 5, usegmt=True)}),
        send(target=f"/{bucket}/elsewhere"),
        send(method="DELETE"),
    ):
        assert response.status_code == 403, response.text
        assert xml_code(response) == "SignatureDoesNotMatch"
        assert b"<StringToSign>" in response.content
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="upload")
    assert error_of(exc)[0] == 404  # nothing was stored, copied or reclassified
    # The request as signed goes through.
    response = httpx.put(f"{gateway.endpoint}{path}", headers=signed, content=b"as signed")
    assert response.status_code == 200, response.text
    head = s3.head_object(Bucket=bucket, Key="upload")
    assert head["Metadata"] == {"residency-class": "public"}
    assert head["ContentType"] == "text/plain"


def test_residency_headers_need_a_signature_that_covers_them(gateway: Gateway) -> None:
    """SigV2 signs only x-amz-* headers: a bucket's default class sent with it could have been
    added by anyone on the way, so it is refused (SigV4 signs it)."""
    name = f"v2-{uuid.uuid4().hex[:12]}"
    headers = v2_signed(gateway, "PUT", f"/{name}", {"x-residency-default-class": "public"})
    response = httpx.put(f"{gateway.endpoint}/{name}", headers=headers)
    assert response.status_code == 403, response.text
    assert xml_code(response) == "AccessDenied"
    assert b"<HeadersNotSigned>x-residency-default-class</HeadersNotSigned>" in response.content
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        gateway.s3().head_bucket(Bucket=name)
    assert error_of(exc)[0] == 404
    gateway.s3().create_bucket(Bucket=name)
    headers = v2_signed(gateway, "GET", f"/{name}/k", {"x-residency-purpose": "audit"})
    response = httpx.get(f"{gateway.endpoint}/{name}/k", headers=headers)
    assert (response.status_code, xml_code(response)) == (403, "AccessDenied")


class _SignedLongAgo(HmacV1Auth):
    def _get_date(self) -> str:
        return formatdate(time.time() - 20 * 60, usegmt=True)


def test_a_request_signed_too_long_ago_is_too_skewed(gateway: Gateway) -> None:
    bucket = new_bucket(gateway.s3())
    headers = v2_signed(gateway, "GET", f"/{bucket}", signer=_SignedLongAgo)
    response = httpx.get(f"{gateway.endpoint}/{bucket}", headers=headers)
    assert response.status_code == 403, response.text
    assert xml_code(response) == "RequestTimeTooSkewed"
    assert b"<MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds>" in response.content
    # Without a date there is nothing to check the signature's age against.
    undated = {k: v for k, v in headers.items() if k.lower() != "date"}
    response = httpx.get(f"{gateway.endpoint}/{bucket}", headers=undated)
    assert (response.status_code, xml_code(response)) == (403, "AccessDenied")
    assert b"Date or x-amz-date" in response.content
    malformed = {**headers, "Authorization": f"AWS {gateway.access_key}"}
    response = httpx.get(f"{gateway.endpoint}/{bucket}", headers=malformed)
    assert (response.status_code, xml_code(response)) == (400, "InvalidArgument")


def test_rclone_v2_auth(gateway: Gateway, tmp_path: Path) -> None:
    """rclone's own SigV2 signer (`--s3-v2-auth`): copy, list, read back, delete."""
    assert os.access(RCLONE, os.X_OK), f"{RCLONE} is required (apt-get install rclone)"
    bucket = new_bucket(gateway.s3())
    (tmp_path / "up.txt").write_bytes(b"signed by rclone with v2")
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env = {
        **inherited,
        "HOME": str(tmp_path),
        "RCLONE_CONFIG": str(tmp_path / "rclone.conf"),  # absent on purpose
        "RCLONE_CONFIG_RES_TYPE": "s3",
        "RCLONE_CONFIG_RES_PROVIDER": "Other",
        "RCLONE_CONFIG_RES_ENV_AUTH": "false",
        "RCLONE_CONFIG_RES_ACCESS_KEY_ID": gateway.access_key,
        "RCLONE_CONFIG_RES_SECRET_ACCESS_KEY": gateway.secret_key,
        "RCLONE_CONFIG_RES_ENDPOINT": gateway.endpoint,
        "RCLONE_CONFIG_RES_REGION": gateway.region,
        "RCLONE_CONFIG_RES_FORCE_PATH_STYLE": "true",
        "RCLONE_CONFIG_RES_V2_AUTH": "true",
    }

    def rclone(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [RCLONE, *args, "--retries", "1", "--low-level-retries", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done

    rclone(
        "copyto",
        str(tmp_path / "up.txt"),
        f"res:{bucket}/dir/up.txt",
        "--header-upload",
        "x-amz-meta-residency-class: public",
    )
    assert sorted(rclone("lsf", "-R", f"res:{bucket}").stdout.split()) == ["dir/", "dir/up.txt"]
    assert rclone("cat", f"res:{bucket}/dir/up.txt").stdout == "signed by rclone with v2"
    head = gateway.s3().head_object(Bucket=bucket, Key="dir/up.txt")
    assert head["Metadata"]["residency-class"] == "public"
    rclone("deletefile", f"res:{bucket}/dir/up.txt")
    assert "Contents" not in gateway.s3().list_objects_v2(Bucket=bucket)
    # A wrong secret is refused, not ignored.
    env["RCLONE_CONFIG_RES_SECRET_ACCESS_KEY"] = "wrong"
    failed = subprocess.run(
        [RCLONE, "lsf", f"res:{bucket}", "--retries", "1", "--low-level-retries", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode != 0
    assert "SignatureDoesNotMatch" in failed.stderr


def test_no_tracebacks_in_the_log(gateway: Gateway) -> None:
    assert "Traceback" not in gateway.server_log()
