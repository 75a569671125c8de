"""Body integrity: Content-MD5, x-amz-content-sha256, x-amz-checksum-* headers and trailers."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import botocore.exceptions
import httpx
import pytest
from gwproto_support import agen, b64_checksum, encode_chunked, key_url, parts_of, sign_request

from residency.gateway import checksum, sigv4
from residency.gateway.errors import S3Error
from residency.gateway.sigv4 import RequestParts

PAYLOAD = b"residency keeps bytes where the law allows. " * 2000
URL = "http://127.0.0.1:9000/bucket/key"


def _verified(parts: RequestParts) -> sigv4.VerifiedAuth:
    auth = sigv4.parse(parts)
    assert auth is not None
    return sigv4.verify(auth, parts, "s3cr3t/with+odd=chars")


async def _read(parts: RequestParts, body: bytes) -> checksum.VerifiedBody:
    verified_body = checksum.verified_body(
        agen([body[:1000], body[1000:]]), parts, _verified(parts)
    )
    async for _ in verified_body:
        pass
    return verified_body


async def _error(parts: RequestParts, body: bytes) -> S3Error:
    with pytest.raises(S3Error) as exc:
        await _read(parts, body)
    return exc.value


def _signed(headers: dict[str, str], body: bytes = PAYLOAD) -> RequestParts:
    return parts_of(sign_request("PUT", URL, headers=headers, body=body))


# --- in process -----------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["crc32", "crc32c", "sha1", "sha256"])
async def test_checksum_header_verified(algorithm: str) -> None:
    value = b64_checksum(algorithm, PAYLOAD)
    body = await _read(_signed({f"x-amz-checksum-{algorithm}": value}), PAYLOAD)
    assert body.checksum == (algorithm, value)
    assert body.response_headers() == {f"x-amz-checksum-{algorithm}": value}
    wrong = b64_checksum(algorithm, PAYLOAD + b"!")
    error = await _error(_signed({f"x-amz-checksum-{algorithm}": wrong}), PAYLOAD)
    assert (error.code, error.status) == ("BadDigest", 400)
    assert algorithm.upper() in error.message


@pytest.mark.parametrize(
    "headers",
    [
        {"x-amz-checksum-crc32": "not base64!"},
        {"x-amz-checksum-crc32": base64.b64encode(b"12345").decode()},  # wrong length
        {"x-amz-checksum-md5": "AAAAAA=="},
        {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-sha1": "A" * 27 + "="},
        {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-sdk-checksum-algorithm": "SHA256"},
        {"x-amz-trailer": "x-amz-checksum-crc32"},
    ],
    ids=["not-base64", "wrong-length", "unknown-algorithm", "two", "sdk-mismatch", "trailer"],
)
async def test_checksum_headers_rejected_before_the_body(headers: dict[str, str]) -> None:
    parts = _signed(headers)
    with pytest.raises(S3Error) as exc:
        checksum.verified_body(agen([]), parts, _verified(parts))
    assert exc.value.code == "InvalidRequest"


@pytest.mark.parametrize(
    "header",
    [("x-amz-checksum-mode", "ENABLED"), ("x-amz-checksum-type", "FULL_OBJECT"),
     ("x-amz-checksum-algorithm", "CRC32")],
)  # fmt: skip
async def test_checksum_prefixed_headers_that_are_not_checksums(header: tuple[str, str]) -> None:
    body = await _read(_signed(dict([header])), PAYLOAD)
    assert body.checksum is None
    assert body.size == len(PAYLOAD)


async def test_content_md5() -> None:
    good = base64.b64encode(hashlib.md5(PAYLOAD).digest()).decode()
    await _read(_signed({"Content-MD5": good}), PAYLOAD)
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    error = await _error(_signed({"Content-MD5": bad}), PAYLOAD)
    assert error.code == "BadDigest"
    for malformed in ("zzz", base64.b64encode(b"short").decode()):
        parts = _signed({"Content-MD5": malformed})
        with pytest.raises(S3Error) as exc:
            checksum.verified_body(agen([]), parts, _verified(parts))
        assert exc.value.code == "InvalidDigest"


async def test_content_sha256_mismatch_is_detected_at_end_of_stream() -> None:
    parts = _signed({}, body=PAYLOAD)
    body = checksum.verified_body(agen([PAYLOAD[:-1] + b"?"]), parts, _verified(parts))
    received: list[bytes] = []

    async def consume() -> None:
        async for piece in body:
            received.append(piece)

    with pytest.raises(S3Error) as exc:
        await consume()
    assert exc.value.code == "XAmzContentSHA256Mismatch"
    assert exc.value.fields["ClientComputedContentSHA256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert received  # the bytes streamed; the verdict came at the end, before any commit


async def test_short_body_is_incomplete() -> None:
    # UNSIGNED-PAYLOAD: only the announced length can catch the truncation
    request = sign_request(
        "PUT", URL, headers={"Content-Length": str(len(PAYLOAD))}, payload="UNSIGNED-PAYLOAD"
    )
    error = await _error(parts_of(request), PAYLOAD[:100])
    assert error.code == "IncompleteBody"


async def test_unsigned_payload_is_streamed_unverified_but_counted() -> None:
    request = sign_request("PUT", URL, payload="UNSIGNED-PAYLOAD")
    body = await _read(parts_of(request), PAYLOAD)
    assert body.size == len(PAYLOAD)
    assert body.checksum is None
    assert body.verified


async def test_anonymous_sha256_body_is_still_checked() -> None:
    parts = RequestParts(
        "PUT",
        "/b/k",
        "",
        (("host", "h"), ("x-amz-content-sha256", hashlib.sha256(b"abc").hexdigest())),
    )
    body = checksum.verified_body(agen([b"abd"]), parts, None)
    with pytest.raises(S3Error) as exc:
        async for _ in body:
            pass
    assert exc.value.code == "XAmzContentSHA256Mismatch"


async def test_crc64nvme() -> None:
    """CRC64NVME (awscrt) is always there: pyarrow and the 2025+ SDKs send it."""
    request = sign_request(
        "PUT",
        URL,
        headers={
            "Content-Encoding": "aws-chunked",
            "X-Amz-Decoded-Content-Length": str(len(PAYLOAD)),
            "X-Amz-Trailer": "x-amz-checksum-crc64nvme",
        },
        payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    )
    parts = parts_of(request)
    value = b64_checksum("crc64nvme", PAYLOAD)
    wire = encode_chunked(PAYLOAD, 4096, trailers=[("x-amz-checksum-crc64nvme", value)])
    body = await _read(parts, wire)
    assert body.checksum == ("crc64nvme", value)


def test_crc64nvme_check_value() -> None:
    # The catalogued check value of CRC-64/NVME over "123456789".
    hasher = checksum.new_hasher("CRC64NVME")
    hasher.update(b"1234")
    hasher.update(b"56789")
    assert hasher.digest() == bytes.fromhex("ae8b14860a799888")


@pytest.mark.parametrize("algorithm", ["crc32", "crc32c", "crc64nvme"])
def test_full_object_crc_combines_part_crcs(algorithm: str) -> None:
    parts = [os.urandom(n) for n in (0, 1, 4096, 70_001)]
    combined = checksum.combine_full_object(
        algorithm,
        [(base64.b64decode(b64_checksum(algorithm, p)), len(p)) for p in parts],
    )
    assert combined == b64_checksum(algorithm, b"".join(parts))


def test_composite_is_checksum_of_part_digests() -> None:
    digests = [hashlib.sha256(p).digest() for p in (b"a", b"b", b"c")]
    expected = base64.b64encode(hashlib.sha256(b"".join(digests)).digest()).decode()
    assert checksum.composite("sha256", digests) == f"{expected}-3"


def test_decode_checksum_wants_one_digest_of_the_algorithm() -> None:
    good = b64_checksum("crc32", b"x")
    assert checksum.decode_checksum("crc32", good) == base64.b64decode(good)
    assert checksum.decode_checksum("crc32c", b64_checksum("crc64nvme", b"x")) is None
    assert checksum.decode_checksum("sha1", "not base64!") is None


async def test_also_compute_and_default_checksum() -> None:
    request = sign_request("PUT", URL, payload="UNSIGNED-PAYLOAD")
    parts = parts_of(request)
    body = checksum.verified_body(agen([PAYLOAD]), parts, None)
    body.keep_default_checksum()
    body.also_compute("sha1")
    async for _ in body:
        pass
    assert body.checksum is None
    assert body.object_checksum == ("crc64nvme", b64_checksum("crc64nvme", PAYLOAD))
    assert body.digests["sha1"] == base64.b64encode(hashlib.sha1(PAYLOAD).digest()).decode()
    assert body.response_headers() == {
        "x-amz-checksum-crc64nvme": b64_checksum("crc64nvme", PAYLOAD)
    }


def test_body_can_be_read_once() -> None:
    import asyncio

    request = sign_request("PUT", URL, payload="UNSIGNED-PAYLOAD")
    parts = parts_of(request)
    body = checksum.verified_body(agen([b"x"]), parts, _verified(parts))

    async def twice() -> None:
        async for _ in body:
            pass
        async for _ in body:
            pass

    with pytest.raises(RuntimeError):
        asyncio.run(twice())


# --- real boto3 over a real socket ----------------------------------------------------------


def _echo(response: dict[str, object]) -> dict[str, object]:
    headers = response["ResponseMetadata"]["HTTPHeaders"]  # type: ignore[index]
    return json.loads(headers["x-echo"])  # type: ignore[no-any-return]


@pytest.mark.parametrize("algorithm", [None, "CRC32", "SHA1", "SHA256"])
def test_boto3_over_tls_sends_unsigned_trailers(echo_tls: object, algorithm: str | None) -> None:
    client = echo_tls.client()  # type: ignore[attr-defined]
    extra = {"ChecksumAlgorithm": algorithm} if algorithm else {}
    key = "trailer/ünï code+key~.bin"
    response = client.put_object(Bucket="bucket", Key=key, Body=PAYLOAD, **extra)
    echo = _echo(response)
    assert echo["mode"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert echo["size"] == len(PAYLOAD)
    assert echo["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    name = (algorithm or "CRC32").lower()
    assert echo["checksum"] == [name, b64_checksum(name, PAYLOAD)]
    assert response["ETag"] == f'"{hashlib.md5(PAYLOAD).hexdigest()}"'


def test_presigned_put_is_unsigned_payload(echo_tls: object) -> None:
    client = echo_tls.client()  # type: ignore[attr-defined]
    url = client.generate_presigned_url(
        "put_object", Params={"Bucket": "bucket", "Key": "pre signed+key"}, ExpiresIn=60
    )
    reply = httpx.put(url, content=PAYLOAD, verify=echo_tls.verify)  # type: ignore[attr-defined]
    assert reply.status_code == 200, reply.text
    echo = json.loads(reply.headers["x-echo"])
    assert (echo["mode"], echo["presigned"], echo["size"]) == (
        "UNSIGNED-PAYLOAD",
        True,
        len(PAYLOAD),
    )


def test_boto3_upload_part_streams_a_file_object(echo_tls: object, tmp_path: object) -> None:
    path = tmp_path / "part.bin"  # type: ignore[operator]
    path.write_bytes(PAYLOAD * 3)
    client = echo_tls.client()  # type: ignore[attr-defined]
    with path.open("rb") as fh:
        response = client.upload_part(Bucket="bucket", Key="k", UploadId="u", PartNumber=1, Body=fh)
    assert _echo(response)["size"] == len(PAYLOAD) * 3


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA256"])
def test_boto3_over_http_sends_header_checksums(echo_http: object, algorithm: str) -> None:
    client = echo_http.client()  # type: ignore[attr-defined]
    response = client.put_object(
        Bucket="bucket", Key="k", Body=PAYLOAD, ChecksumAlgorithm=algorithm
    )
    echo = _echo(response)
    assert echo["mode"] == "SHA256"
    assert echo["checksum"] == [algorithm.lower(), b64_checksum(algorithm.lower(), PAYLOAD)]


def test_boto3_content_md5(echo_http: object) -> None:
    client = echo_http.client()  # type: ignore[attr-defined]
    good = base64.b64encode(hashlib.md5(PAYLOAD).digest()).decode()
    client.put_object(Bucket="bucket", Key="k", Body=PAYLOAD, ContentMD5=good)
    bad = base64.b64encode(hashlib.md5(b"no").digest()).decode()
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        client.put_object(Bucket="bucket", Key="k", Body=PAYLOAD, ContentMD5=bad)
    assert exc.value.response["Error"]["Code"] == "BadDigest"


def test_wire_checksum_mismatch_over_http(echo_http: object) -> None:
    url = key_url(echo_http.url, "bucket", "k")  # type: ignore[attr-defined]
    request = sign_request(
        "PUT",
        url,
        headers={"x-amz-checksum-crc32": b64_checksum("crc32", b"something else")},
        body=PAYLOAD,
    )
    reply = httpx.put(url, content=PAYLOAD, headers=dict(request.headers))
    assert reply.status_code == 400
    assert b"<Code>BadDigest</Code>" in reply.content
