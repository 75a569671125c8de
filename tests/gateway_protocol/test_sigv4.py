"""SigV4 verification against AWS's published examples and against botocore's own signers."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from dataclasses import replace

import botocore.exceptions
import httpx
import pytest
from gwproto_support import (
    AKID,
    REGION,
    SECRET,
    amz_now,
    key_url,
    parts_of,
    presign,
    sign_request,
)

from residency.gateway import sigv4
from residency.gateway.errors import S3Error
from residency.gateway.sigv4 import PayloadMode, RequestParts

ENDPOINT = "http://127.0.0.1:9000"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_TIME = dt.datetime(2013, 5, 24, tzinfo=dt.UTC)
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

ODD_KEYS = [
    "plain.txt",
    "dir/with space/file name.txt",
    "plus+sign+key",
    "tilde~and-_.chars",
    "ünïcødé/日本語/файл.bin",
    "reserved!*'()$&,;=:@[]",
    "percent%20literal%2Fnot-a-slash",
    "a//double//slash/",
    "emoji-🚀-key",
]


def verify(parts: RequestParts, *, secret: str = SECRET, **kw: object) -> sigv4.VerifiedAuth:
    auth = sigv4.parse(parts)
    assert auth is not None
    return sigv4.verify(auth, parts, secret, **kw)  # type: ignore[arg-type]


def code_of(exc: pytest.ExceptionInfo[S3Error]) -> str:
    return exc.value.code


# --- AWS documentation examples (independent oracle) ----------------------------------------


def test_aws_example_get_object_header_auth() -> None:
    parts = RequestParts(
        "GET",
        "/test.txt",
        "",
        (
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY),
            ("x-amz-date", "20130524T000000Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
                "aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
                "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
            ),
        ),
    )
    verified = verify(parts, secret=AWS_SECRET, now=AWS_TIME, region="us-east-1")
    assert verified.access_key_id == "AKIAIOSFODNN7EXAMPLE"
    assert verified.payload is PayloadMode.SHA256
    assert verified.content_sha256 == EMPTY
    with pytest.raises(S3Error) as exc:
        verify(replace(parts, raw_path="/test2.txt"), secret=AWS_SECRET, now=AWS_TIME)
    assert code_of(exc) == "SignatureDoesNotMatch"
    assert "CanonicalRequest" in exc.value.fields


def test_aws_example_presigned_url() -> None:
    query = (
        "X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )
    parts = RequestParts("GET", "/test.txt", query, (("host", "examplebucket.s3.amazonaws.com"),))
    verified = verify(parts, secret=AWS_SECRET, now=AWS_TIME + dt.timedelta(hours=23))
    assert verified.presigned
    assert verified.payload is PayloadMode.UNSIGNED
    with pytest.raises(S3Error) as exc:
        verify(parts, secret=AWS_SECRET, now=AWS_TIME + dt.timedelta(seconds=86401))
    assert (exc.value.code, exc.value.message) == ("AccessDenied", "Request has expired")
    assert exc.value.fields["X-Amz-Expires"] == "86400"


# --- botocore header auth -------------------------------------------------------------------


@pytest.mark.parametrize("key", ODD_KEYS)
def test_botocore_header_auth_odd_keys(key: str) -> None:
    request = sign_request("PUT", key_url(ENDPOINT, "bucket", key), body=b"hello")
    verified = verify(parts_of(request))
    assert verified.access_key_id == AKID
    assert verified.credential.region == REGION
    assert verified.payload is PayloadMode.SHA256


def test_path_encoded_differently_from_signature_is_still_the_same_key() -> None:
    # botocore signs "%21" for "!"; a client that sends "!" raw names the same key.
    request = sign_request("GET", key_url(ENDPOINT, "bucket", "bang!key"))
    parts = parts_of(request)
    assert "%21" in parts.raw_path
    verify(replace(parts, raw_path=parts.raw_path.replace("%21", "!")))
    # ... but a different key (encoded slash vs slash) is a different request.
    request = sign_request("GET", key_url(ENDPOINT, "bucket", "x").replace("/x", "/a%2Fb"))
    parts = parts_of(request)
    with pytest.raises(S3Error) as exc:
        verify(replace(parts, raw_path=parts.raw_path.replace("%2F", "/")))
    assert code_of(exc) == "SignatureDoesNotMatch"


def test_query_parameters_and_header_folding() -> None:
    query = "list-type=2&prefix=a%20b%2Bc&delimiter=%2F&encoding-type=url&empty="
    request = sign_request(
        "GET",
        f"{ENDPOINT}/bucket?{query}",
        headers={"x-amz-meta-spaces": "  several   inner\tspaces  ", "Range": "bytes=0-1"},
    )
    parts = parts_of(request)
    verify(parts)
    # the value as a proxy might refold it: still the same canonical value
    refolded = tuple(
        (k, "several inner spaces") if k == "x-amz-meta-spaces" else (k, v)
        for k, v in parts.headers
    )
    verify(replace(parts, headers=refolded))


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: replace(p, raw_path=p.raw_path + "x"),
        lambda p: replace(p, query_string="prefix=other"),
        lambda p: replace(p, method="DELETE"),
        lambda p: replace(
            p, headers=tuple((k, "evil.example" if k == "host" else v) for k, v in p.headers)
        ),
        lambda p: replace(
            p,
            headers=tuple((k, "text/evil" if k == "content-type" else v) for k, v in p.headers),
        ),
    ],
    ids=["path", "query", "method", "host", "signed-header"],
)
def test_tampering_breaks_the_signature(tamper: object) -> None:
    request = sign_request(
        "PUT", f"{ENDPOINT}/bucket/key?prefix=a", headers={"Content-Type": "text/plain"}
    )
    parts = tamper(parts_of(request))  # type: ignore[operator]
    with pytest.raises(S3Error) as exc:
        verify(parts)
    assert code_of(exc) == "SignatureDoesNotMatch"
    assert exc.value.status == 403


def test_wrong_secret_and_unknown_key() -> None:
    request = sign_request("GET", f"{ENDPOINT}/bucket/key")
    with pytest.raises(S3Error) as exc:
        verify(parts_of(request), secret="not-the-secret")
    assert code_of(exc) == "SignatureDoesNotMatch"

    async def lookup(access_key_id: str) -> str | None:
        return None

    import asyncio

    with pytest.raises(S3Error) as exc:
        asyncio.run(sigv4.authenticate(parts_of(request), lookup))
    assert code_of(exc) == "InvalidAccessKeyId"
    assert exc.value.fields["AWSAccessKeyId"] == AKID


@pytest.mark.parametrize(
    ("offset_minutes", "ok"), [(-16, False), (-14, True), (0, True), (14, True), (16, False)]
)
def test_clock_skew(offset_minutes: int, ok: bool) -> None:
    request = sign_request("GET", f"{ENDPOINT}/bucket/key")
    now = amz_now(request) + dt.timedelta(minutes=offset_minutes)
    if ok:
        verify(parts_of(request), now=now)
    else:
        with pytest.raises(S3Error) as exc:
            verify(parts_of(request), now=now)
        assert code_of(exc) == "RequestTimeTooSkewed"
        assert exc.value.fields["MaxAllowedSkewMilliseconds"] == "900000"


def test_region_is_checked_when_the_server_has_one() -> None:
    request = sign_request("GET", f"{ENDPOINT}/bucket/key")
    verify(parts_of(request), region=REGION)
    with pytest.raises(S3Error) as exc:
        verify(parts_of(request), region="us-east-1")
    assert code_of(exc) == "AuthorizationHeaderMalformed"
    assert exc.value.fields["Region"] == "us-east-1"


def test_unsigned_amz_header_is_refused() -> None:
    request = sign_request("PUT", f"{ENDPOINT}/bucket/key", body=b"x")
    parts = parts_of(request)
    parts = replace(parts, headers=(*parts.headers, ("x-amz-meta-residency-class", "public")))
    with pytest.raises(S3Error) as exc:
        sigv4.parse(parts)
    assert code_of(exc) == "AccessDenied"
    assert exc.value.fields["HeadersNotSigned"] == "x-amz-meta-residency-class"


def test_missing_content_sha256_header() -> None:
    request = sign_request("GET", f"{ENDPOINT}/bucket/key")
    parts = parts_of(request)
    parts = replace(
        parts, headers=tuple(h for h in parts.headers if h[0] != "x-amz-content-sha256")
    )
    with pytest.raises(S3Error) as exc:
        sigv4.parse(parts)
    assert code_of(exc) == "InvalidRequest"


def _with_auth(value: str) -> RequestParts:
    return RequestParts(
        "GET",
        "/b/k",
        "",
        (
            ("host", "h"),
            ("x-amz-date", "20261123T000000Z"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
            ("authorization", value),
        ),
    )


SIG = "0" * 64


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        ("AWS AKID:c2lnbmF0dXJl", "InvalidRequest"),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20261123/r/s3/aws4_request",
            "AuthorizationHeaderMalformed",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential=AKID/20261123/r/s3,SignedHeaders=host,Signature={SIG}",
            "AuthorizationHeaderMalformed",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential=AKID/2026-11-23/r/s3/aws4_request,SignedHeaders=host,"
            f"Signature={SIG}",
            "AuthorizationHeaderMalformed",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential=AKID/20261122/r/s3/aws4_request,SignedHeaders=host,"
            f"Signature={SIG}",
            "AuthorizationHeaderMalformed",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20261123/r/s3/aws4_request,SignedHeaders=host,"
            "Signature=xyz",
            "AuthorizationHeaderMalformed",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential=AKID/20261123/r/s3/aws4_request,"
            f"SignedHeaders=x-amz-date,Signature={SIG}",
            "AuthorizationHeaderMalformed",
        ),
        ("AWS4-HMAC-SHA256 garbage", "AuthorizationHeaderMalformed"),
    ],
)
def test_malformed_authorization_headers(authorization: str, code: str) -> None:
    with pytest.raises(S3Error) as exc:
        sigv4.parse(_with_auth(authorization))
    assert code_of(exc) == code
    assert exc.value.status == 400


def test_wrong_service_is_malformed() -> None:
    parts = _with_auth(
        "AWS4-HMAC-SHA256 Credential=AKID/20261123/r/iam/aws4_request,"
        f"SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature={SIG}"
    )
    auth = sigv4.parse(parts)
    assert auth is not None
    with pytest.raises(S3Error) as exc:
        sigv4.verify(auth, parts, "s", now=dt.datetime(2026, 11, 23, tzinfo=dt.UTC))
    assert code_of(exc) == "AuthorizationHeaderMalformed"


def test_anonymous_and_mixed_auth() -> None:
    assert sigv4.parse(RequestParts("GET", "/b/k", "", (("host", "h"),))) is None
    request = sign_request("GET", f"{ENDPOINT}/bucket/key")
    parts = parts_of(request)
    with pytest.raises(S3Error) as exc:
        sigv4.parse(replace(parts, query_string="X-Amz-Algorithm=AWS4-HMAC-SHA256"))
    assert code_of(exc) == "InvalidArgument"
    with pytest.raises(S3Error) as exc:
        sigv4.parse(RequestParts("GET", "/b/k", "AWSAccessKeyId=A&Signature=x&Expires=1", ()))
    assert code_of(exc) == "InvalidRequest"


@pytest.mark.parametrize(
    "value",
    [
        "UNSIGNED-PAYLOAD",
        EMPTY,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
    ],
)
def test_payload_modes_are_recognised(value: str) -> None:
    mode = sigv4.payload_mode(value)
    assert (mode is PayloadMode.SHA256) == (value == EMPTY)


@pytest.mark.parametrize("value", ["", "streaming", "abc", "Z" * 64, "STREAMING-ECDSA"])
def test_unknown_payload_mode(value: str) -> None:
    with pytest.raises(S3Error) as exc:
        sigv4.payload_mode(value)
    assert code_of(exc) == "InvalidArgument"


def test_signing_key_is_cached() -> None:
    sigv4.signing_key.cache_clear()
    for _ in range(3):
        verify(parts_of(sign_request("GET", f"{ENDPOINT}/bucket/key")))
    info = sigv4.signing_key.cache_info()
    assert info.misses == 1
    assert info.hits == 2


# --- presigned URLs -------------------------------------------------------------------------


def _presigned_parts(url: str, method: str = "GET") -> RequestParts:
    split = urllib.parse.urlsplit(url)
    return RequestParts(method, split.path, split.query, (("host", split.netloc),))


def _presign_time(url: str) -> dt.datetime:
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    return dt.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)


@pytest.mark.parametrize("key", ODD_KEYS)
def test_presigned_odd_keys(key: str) -> None:
    url = presign("GET", key_url(ENDPOINT, "bucket", key), expires=600)
    verified = verify(_presigned_parts(url))
    assert verified.presigned
    assert verified.payload is PayloadMode.UNSIGNED


def test_presigned_expiry_boundaries() -> None:
    url = presign("PUT", key_url(ENDPOINT, "bucket", "k"), expires=600)
    parts = _presigned_parts(url, "PUT")
    signed_at = _presign_time(url)
    verify(parts, now=signed_at + dt.timedelta(seconds=600))
    with pytest.raises(S3Error) as exc:
        verify(parts, now=signed_at + dt.timedelta(seconds=601))
    assert (exc.value.code, exc.value.message, exc.value.status) == (
        "AccessDenied",
        "Request has expired",
        403,
    )
    with pytest.raises(S3Error) as exc:
        verify(parts, now=signed_at - dt.timedelta(minutes=16))
    assert (exc.value.code, exc.value.message) == ("AccessDenied", "Request is not valid yet")


def _flip_signature(query: str) -> str:
    head, _, signature = query.partition("X-Amz-Signature=")
    flipped = ("1" if signature[0] == "0" else "0") + signature[1:]
    return head + "X-Amz-Signature=" + flipped


@pytest.mark.parametrize(
    "tamper",
    [
        lambda q: q.replace("X-Amz-Expires=600", "X-Amz-Expires=6000"),
        lambda q: q + "&extra=1",
        lambda q: _flip_signature(q),
    ],
    ids=["expires", "extra-param", "signature"],
)
def test_presigned_tampered(tamper: object) -> None:
    url = presign("GET", key_url(ENDPOINT, "bucket", "k"), expires=600)
    parts = _presigned_parts(url)
    parts = replace(parts, query_string=tamper(parts.query_string))  # type: ignore[operator]
    with pytest.raises(S3Error) as exc:
        verify(parts)
    assert code_of(exc) == "SignatureDoesNotMatch"


def test_presigned_path_tampered() -> None:
    url = presign("GET", key_url(ENDPOINT, "bucket", "k"), expires=600)
    parts = _presigned_parts(url)
    with pytest.raises(S3Error) as exc:
        verify(replace(parts, raw_path="/bucket/other"))
    assert code_of(exc) == "SignatureDoesNotMatch"


def _query_without(query: str, name: str) -> str:
    return "&".join(p for p in query.split("&") if not p.startswith(name + "="))


@pytest.mark.parametrize(
    "edit",
    [
        lambda q: q.replace("X-Amz-Expires=600", "X-Amz-Expires=604801"),
        lambda q: q.replace("X-Amz-Expires=600", "X-Amz-Expires=-1"),
        lambda q: q.replace("X-Amz-Expires=600", "X-Amz-Expires=soon"),
        lambda q: _query_without(q, "X-Amz-Credential"),
        lambda q: _query_without(q, "X-Amz-Date"),
        lambda q: q.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"),
        lambda q: q.replace("X-Amz-Date=", "X-Amz-Date=x"),
        lambda q: q.replace("%2Faws4_request", "%2Fother_request"),
        lambda q: q + "&X-Amz-Content-Sha256=STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    ],
    ids=["week+1", "negative", "nan", "no-cred", "no-date", "algo", "bad-date", "scope", "chunked"],
)
def test_presigned_malformed(edit: object) -> None:
    url = presign("GET", key_url(ENDPOINT, "bucket", "k"), expires=600)
    parts = _presigned_parts(url)
    with pytest.raises(S3Error) as exc:
        sigv4.parse(replace(parts, query_string=edit(parts.query_string)))  # type: ignore[operator]
    assert exc.value.code in ("AuthorizationQueryParametersError", "InvalidRequest")
    assert exc.value.status == 400


def test_presign_week_is_the_limit() -> None:
    url = presign("GET", key_url(ENDPOINT, "bucket", "k"), expires=604800)
    verify(_presigned_parts(url))


# --- real clients over a real socket --------------------------------------------------------


@pytest.mark.parametrize("key", ODD_KEYS)
def test_boto3_put_and_presigned_get_through_the_server(echo_http: object, key: str) -> None:
    client = echo_http.client()  # type: ignore[attr-defined]
    body = key.encode() * 100
    response = client.put_object(Bucket="bucket", Key=key, Body=body)
    echo = json.loads(response["ResponseMetadata"]["HTTPHeaders"]["x-echo"])
    assert echo["size"] == len(body)
    assert echo["mode"] == "SHA256"

    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": "bucket", "Key": key}, ExpiresIn=300
    )
    reply = httpx.get(url)
    assert reply.status_code == 200, reply.text
    assert json.loads(reply.headers["x-echo"])["presigned"] is True


def test_boto3_wrong_secret_gets_s3_error_document(echo_http: object) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=echo_http.url,  # type: ignore[attr-defined]
        aws_access_key_id=AKID,
        aws_secret_access_key="wrong",
        region_name=REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        client.put_object(Bucket="bucket", Key="k", Body=b"x")
    error = exc.value.response["Error"]
    assert error["Code"] == "SignatureDoesNotMatch"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_presigned_url_tampered_over_http(echo_http: object) -> None:
    client = echo_http.client()  # type: ignore[attr-defined]
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": "bucket", "Key": "a"}, ExpiresIn=300
    )
    reply = httpx.get(url.replace("/bucket/a?", "/bucket/b?"))
    assert reply.status_code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in reply.content


# --- non-ASCII header values ----------------------------------------------------------------


def test_botocore_latin1_header_value_with_nbsp() -> None:
    # botocore folds with str.split(), which treats U+00A0 as a space
    request = sign_request(
        "PUT", f"{ENDPOINT}/bucket/k", headers={"x-amz-meta-note": "caf\xe9\xa0 x"}
    )
    verify(parts_of(request))


def test_raw_utf8_header_value_signed_like_go_and_java_sdks() -> None:
    """Those SDKs put UTF-8 bytes on the wire and fold only ASCII blanks when signing."""
    import hashlib
    import hmac

    value = "à la carte  ü"  # UTF-8 'à' is C3 A0: A0 must not count as whitespace
    wire = value.encode().decode("latin-1")  # what the server sees
    amz_date = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    signed = "host;x-amz-content-sha256;x-amz-date;x-amz-meta-note"
    canonical = "\n".join(
        [
            "GET",
            "/bucket/k",
            "",
            f"host:h\nx-amz-content-sha256:{EMPTY}\nx-amz-date:{amz_date}\n"
            f"x-amz-meta-note:{'à la carte ü'}\n",
            signed,
            EMPTY,
        ]
    ).encode()
    scope = f"{amz_date[:8]}/{REGION}/s3/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical).hexdigest()}"
    key = sigv4.signing_key(SECRET, amz_date[:8], REGION, "s3")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers = (
        ("host", "h"),
        ("x-amz-content-sha256", EMPTY),
        ("x-amz-date", amz_date),
        ("x-amz-meta-note", wire),
        (
            "authorization",
            f"AWS4-HMAC-SHA256 Credential={AKID}/{scope},SignedHeaders={signed},"
            f"Signature={signature}",
        ),
    )
    # the canonical request holds the UTF-8 bytes; ours holds their latin-1 reading: same bytes
    parts = RequestParts("GET", "/bucket/k", "", headers)
    verified = sigv4.verify(sigv4.parse(parts), parts, SECRET)  # type: ignore[arg-type]
    assert verified.access_key_id == AKID


def test_raw_utf8_path_matches_its_percent_encoded_signature() -> None:
    request = sign_request("GET", key_url(ENDPOINT, "bucket", "dir/ü é.txt"))
    parts = parts_of(request)
    raw = "/bucket/dir/ü é.txt".encode().decode("latin-1")  # unencoded UTF-8 on the wire
    verify(replace(parts, raw_path=raw))
