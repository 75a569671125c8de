"""aws-chunked decoding: AWS's published examples, botocore-seeded signed bodies, bad bodies."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import zlib
from dataclasses import replace

import google_crc32c
import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum, Sha1Checksum, Sha256Checksum
from gwproto_support import (
    SECRET,
    agen,
    b64_checksum,
    encode_chunked,
    signed_chunked_request,
    split_at,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from residency.gateway import checksum, chunked, sigv4
from residency.gateway.errors import S3Error
from residency.gateway.sigv4 import RequestParts

URL = "http://127.0.0.1:9000/bucket/chunked%20key%2B%E2%82%AC"
PAYLOAD = bytes(range(256)) * 97 + b"tail"  # 24836 bytes: several chunks and a short one


async def drain(body: object) -> bytes:
    out = bytearray()
    async for piece in body:  # type: ignore[attr-defined]
        out += piece
    return bytes(out)


def verified(parts: RequestParts, *, now: dt.datetime | None = None) -> sigv4.VerifiedAuth:
    auth = sigv4.parse(parts)
    assert auth is not None
    return sigv4.verify(auth, parts, SECRET, now=now)


async def decode(parts: RequestParts, pieces: list[bytes]) -> tuple[bytes, checksum.VerifiedBody]:
    body = checksum.verified_body(agen(pieces), parts, verified(parts))
    return await drain(body), body


async def attempt(parts: RequestParts, pieces: list[bytes]) -> tuple[bytes, S3Error | None]:
    try:
        data, _ = await decode(parts, pieces)
    except S3Error as err:
        return b"", err
    return data, None


# --- AWS documentation examples -------------------------------------------------------------

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_TIME = dt.datetime(2013, 5, 24, tzinfo=dt.UTC)


def _aws_example(trailer: bool) -> tuple[RequestParts, bytes]:
    if trailer:
        mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
        signed = (
            "content-encoding;host;x-amz-content-sha256;x-amz-date;"
            "x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer"
        )
        seed = "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
        sigs = [
            "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
            "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
            "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
        ]
        trailers = (
            b"x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:"
            b"d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n"
        )
    else:
        mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
        signed = (
            "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
            "x-amz-decoded-content-length;x-amz-storage-class"
        )
        seed = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
        sigs = [
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        ]
        trailers = b""
    body = (
        f"10000;chunk-signature={sigs[0]}\r\n".encode()
        + b"a" * 65536
        + f"\r\n400;chunk-signature={sigs[1]}\r\n".encode()
        + b"a" * 1024
        + f"\r\n0;chunk-signature={sigs[2]}\r\n".encode()
        + trailers
        + b"\r\n"
    )
    headers = [
        ("host", "s3.amazonaws.com"),
        ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ("x-amz-content-sha256", mode),
        ("content-encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", "66560"),
        ("content-length", str(len(body))),
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
            f"aws4_request,SignedHeaders={signed},Signature={seed}",
        ),
    ]
    if trailer:
        headers.append(("x-amz-trailer", "x-amz-checksum-crc32c"))
    return RequestParts("PUT", "/examplebucket/chunkObject.txt", "", tuple(headers)), body


@pytest.mark.parametrize("trailer", [False, True], ids=["signed", "signed-trailer"])
async def test_aws_documented_chunked_upload(trailer: bool) -> None:
    parts, body = _aws_example(trailer)
    if not trailer:
        assert len(body) == 66824  # the documented Content-Length
    auth = sigv4.parse(parts)
    assert auth is not None
    verified_auth = sigv4.verify(auth, parts, AWS_SECRET, now=AWS_TIME)
    stream = checksum.verified_body(agen(split_at(body, [100, 70000])), parts, verified_auth)
    assert await drain(stream) == b"a" * 66560
    if trailer:
        assert stream.checksum == ("crc32c", "sOO8/Q==")
        assert stream.response_headers() == {"x-amz-checksum-crc32c": "sOO8/Q=="}

    # one flipped payload byte: the chunk signature no longer matches
    bad = bytearray(body)
    bad[66000] ^= 0x01  # inside the second (1 KiB) chunk
    stream = checksum.verified_body(agen([bytes(bad)]), parts, verified_auth)
    with pytest.raises(S3Error) as exc:
        await drain(stream)
    assert exc.value.code == "SignatureDoesNotMatch"


# --- botocore-seeded signed bodies ----------------------------------------------------------


@pytest.mark.parametrize("algorithm", [None, "crc32", "crc32c", "sha1", "sha256"])
async def test_signed_chunked_roundtrip(algorithm: str | None) -> None:
    request = signed_chunked_request(URL, PAYLOAD, chunk_size=4096, trailer_algorithm=algorithm)
    data, body = await decode(request.parts, [request.body])
    assert data == PAYLOAD
    if algorithm:
        assert body.checksum == (algorithm, b64_checksum(algorithm, PAYLOAD))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=30000), max_size=40),
    algorithm=st.sampled_from([None, "crc32c"]),
    chunk_size=st.sampled_from([1, 7, 4096, 65536]),
)
async def test_any_split_of_the_raw_stream_decodes_the_same(
    cuts: list[int], algorithm: str | None, chunk_size: int
) -> None:
    payload = PAYLOAD[: 400 if chunk_size < 10 else None]
    request = signed_chunked_request(
        URL, payload, chunk_size=chunk_size, trailer_algorithm=algorithm
    )
    data, _ = await decode(request.parts, split_at(request.body, cuts))
    assert data == payload


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=30000), max_size=20))
async def test_any_split_of_an_unsigned_trailer_body(cuts: list[int]) -> None:
    parts, body = _unsigned_request(PAYLOAD, "crc32", chunk_size=1000)
    data, verified_body = await decode(parts, split_at(body, cuts))
    assert data == PAYLOAD
    assert verified_body.checksum == ("crc32", b64_checksum("crc32", PAYLOAD))


@settings(max_examples=80, deadline=None)
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
async def test_a_corrupted_signed_body_never_yields_other_data(position: int, flip: int) -> None:
    request = signed_chunked_request(
        URL, PAYLOAD[:5000], chunk_size=1024, trailer_algorithm="sha256"
    )
    raw = bytearray(request.body)
    raw[position % len(raw)] ^= flip
    data, error = await attempt(request.parts, [bytes(raw)])
    if error is not None:
        assert error.status in (400, 403), error
    else:
        assert data == PAYLOAD[:5000]  # e.g. a hex digit's case flipped in a signature


@settings(max_examples=80, deadline=None)
@given(cut=st.integers(min_value=0))
async def test_a_truncated_body_is_incomplete(cut: int) -> None:
    request = signed_chunked_request(
        URL, PAYLOAD[:5000], chunk_size=1024, trailer_algorithm="crc32"
    )
    cut %= len(request.body)
    data, error = await attempt(request.parts, [request.body[:cut]])
    if error is not None:
        assert error.code == "IncompleteBody", error
    else:  # only the final empty line may go missing: everything else arrived and checked out
        assert len(request.body) - cut <= 2
        assert data == PAYLOAD[:5000]


async def test_decoder_streams_chunk_by_chunk() -> None:
    request = signed_chunked_request(URL, PAYLOAD, chunk_size=1024)
    pulled = 0

    async def source() -> object:
        nonlocal pulled
        for i in range(0, len(request.body), 512):
            pulled += 512
            yield request.body[i : i + 512]

    body = checksum.verified_body(source(), request.parts, verified(request.parts))
    iterator = aiter(body)
    first = await anext(iterator)
    assert len(first) == 1024
    assert pulled < 4 * 1024  # one chunk (plus framing) read, not the whole body
    rest = await drain(iterator)  # type: ignore[arg-type]
    assert first + rest == PAYLOAD


def _signed_pieces(request: object) -> list[tuple[bytes, bytes]]:
    """(header line, data) per chunk of a signed body, to rebuild it with edits."""
    raw: bytes = request.body  # type: ignore[attr-defined]
    out = []
    pos = 0
    while True:
        end = raw.index(b"\r\n", pos)
        header = raw[pos:end]
        size = int(header.split(b";")[0], 16)
        data = raw[end + 2 : end + 2 + size]
        out.append((header, data))
        pos = end + 2 + size + (2 if size else 0)
        if size == 0:
            out.append((raw[pos:], b""))
            return out


async def _expect(parts: RequestParts, body: bytes, code: str) -> S3Error:
    with pytest.raises(S3Error) as exc:
        await decode(parts, [body])
    assert exc.value.code == code, exc.value
    return exc.value


async def test_wrong_chunk_signature() -> None:
    request = signed_chunked_request(URL, PAYLOAD, chunk_size=8192)
    pieces = _signed_pieces(request)
    # swap two data chunks (both signed, wrong order)
    (h0, d0), (h1, d1) = pieces[0], pieces[1]
    swapped = h1 + b"\r\n" + d1 + b"\r\n" + h0 + b"\r\n" + d0 + b"\r\n"
    rest = b"".join(h + b"\r\n" + d + b"\r\n" for h, d in pieces[2:-2])
    tail = pieces[-2][0] + b"\r\n" + pieces[-1][0]
    error = await _expect(request.parts, swapped + rest + tail, "SignatureDoesNotMatch")
    assert error.status == 403
    # a signature from another request (other seed) does not chain either
    other = signed_chunked_request(URL.replace("key", "other"), PAYLOAD, chunk_size=8192)
    await _expect(request.parts, other.body, "SignatureDoesNotMatch")


async def test_trailer_signature_and_value_are_checked() -> None:
    request = signed_chunked_request(URL, PAYLOAD, trailer_algorithm="crc32")
    good = b64_checksum("crc32", PAYLOAD)
    wrong = base64.b64encode(b"\0\0\0\0").decode()
    # a changed trailer value breaks the trailer signature
    tampered = request.body.replace(good.encode(), wrong.encode())
    await _expect(request.parts, tampered, "SignatureDoesNotMatch")
    # a correctly signed but wrong checksum is BadDigest
    request = signed_chunked_request(URL, PAYLOAD, trailer_algorithm="crc32", trailer_value=wrong)
    error = await _expect(request.parts, request.body, "BadDigest")
    assert error.fields["CalculatedDigest"] == good
    # and without signatures too
    parts, body = _unsigned_request(PAYLOAD, "crc32", checksum_value=wrong)
    error = await _expect(parts, body, "BadDigest")
    assert (error.fields["ExpectedDigest"], error.fields["CalculatedDigest"]) == (wrong, good)


async def test_oversized_signed_chunk_is_refused_before_reading_it() -> None:
    request = signed_chunked_request(URL, PAYLOAD, chunk_size=8192)
    header = f"{chunked.MAX_CHUNK_SIZE + 1:x};chunk-signature={'0' * 64}\r\n".encode()
    error = await _expect(request.parts, header, "InvalidRequest")
    assert "exceeds" in error.message


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        (lambda b: b.replace(b";chunk-signature=", b";chunk-sig=", 1), "InvalidRequest"),
        (lambda b: b"zz" + b[b.index(b";") :], "InvalidRequest"),
        (lambda b: b + b"junk", "InvalidRequest"),
        (lambda b: b.replace(b"\r\n", b"\n", 2), "InvalidRequest"),
    ],
    ids=["no-signature", "bad-hex", "trailing-junk", "bare-lf"],
)
async def test_bad_framing(edit: object, code: str) -> None:
    request = signed_chunked_request(URL, PAYLOAD, chunk_size=8192)
    await _expect(request.parts, edit(request.body), code)  # type: ignore[operator]


@pytest.mark.parametrize("delta", [-1, 1, -len(PAYLOAD)])
async def test_decoded_length_must_match(delta: int) -> None:
    request = signed_chunked_request(
        URL,
        PAYLOAD,
        chunk_size=8192,
        extra_headers={"X-Amz-Decoded-Content-Length": str(len(PAYLOAD) + delta)},
    )
    await _expect(request.parts, request.body, "IncompleteBody")


# --- STREAMING-UNSIGNED-PAYLOAD-TRAILER -----------------------------------------------------


def _unsigned_request(
    payload: bytes,
    algorithm: str,
    *,
    chunk_size: int = 4096,
    checksum_value: str | None = None,
    declared: str | None = None,
) -> tuple[RequestParts, bytes]:
    from gwproto_support import sign_request

    request = sign_request(
        "PUT",
        URL,
        headers={
            "Content-Encoding": "aws-chunked",
            "X-Amz-Decoded-Content-Length": str(len(payload)),
            "X-Amz-Trailer": declared or f"x-amz-checksum-{algorithm}",
        },
        payload="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    )
    from gwproto_support import parts_of

    value = checksum_value or b64_checksum(algorithm, payload)
    body = encode_chunked(payload, chunk_size, trailers=[(f"x-amz-checksum-{algorithm}", value)])
    return parts_of(request), body


@pytest.mark.parametrize(
    ("algorithm", "checksum_cls"),
    [("crc32", Crc32Checksum), ("sha1", Sha1Checksum), ("sha256", Sha256Checksum)],
)
async def test_botocore_aws_chunked_wrapper_bodies(algorithm: str, checksum_cls: type) -> None:
    """The exact bytes botocore's AwsChunkedWrapper sends for an unsigned trailer upload."""
    wire = AwsChunkedWrapper(
        io.BytesIO(PAYLOAD),
        checksum_cls=checksum_cls,
        checksum_name=f"x-amz-checksum-{algorithm}",
        chunk_size=5000,
    ).read()
    parts, _ = _unsigned_request(PAYLOAD, algorithm)
    data, body = await decode(parts, split_at(wire, range(0, len(wire), 333)))
    assert data == PAYLOAD
    assert body.checksum == (algorithm, b64_checksum(algorithm, PAYLOAD))


async def test_crc32c_trailer_uses_google_crc32c() -> None:
    expected = base64.b64encode(google_crc32c.value(PAYLOAD).to_bytes(4, "big")).decode()
    parts, body = _unsigned_request(PAYLOAD, "crc32c")
    _, verified_body = await decode(parts, [body])
    assert verified_body.checksum == ("crc32c", expected)


@pytest.mark.parametrize(
    ("trailers", "declared"),
    [
        ([], "x-amz-checksum-crc32"),
        ([("x-amz-checksum-sha1", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")], "x-amz-checksum-crc32"),
        (
            [("x-amz-checksum-crc32", "AAAAAA=="), ("x-amz-checksum-crc32", "AAAAAA==")],
            "x-amz-checksum-crc32",
        ),
        ([("no-colon-here", "")], "x-amz-checksum-crc32"),
    ],
    ids=["missing", "undeclared", "duplicate", "garbage"],
)
async def test_malformed_trailers(trailers: list[tuple[str, str]], declared: str) -> None:
    parts, _ = _unsigned_request(PAYLOAD, "crc32", declared=declared)
    body = encode_chunked(PAYLOAD, 4096, trailers=trailers)
    if trailers and trailers[0][0] == "no-colon-here":
        body = body.replace(b"no-colon-here:", b"no-colon-here")
    await _expect(parts, body, "MalformedTrailerError")


async def test_unsigned_trailer_truncated_payload() -> None:
    parts, body = _unsigned_request(PAYLOAD, "crc32")
    await _expect(parts, body[: len(body) // 2], "IncompleteBody")


async def test_signed_mode_needs_a_signed_request() -> None:
    request = signed_chunked_request(URL, PAYLOAD)
    anonymous = replace(
        request.parts, headers=tuple(h for h in request.parts.headers if h[0] != "authorization")
    )
    with pytest.raises(S3Error) as exc:
        checksum.verified_body(agen([request.body]), anonymous, None)
    assert exc.value.code == "AccessDenied"


async def test_missing_decoded_content_length() -> None:
    request = signed_chunked_request(URL, PAYLOAD)
    parts = replace(
        request.parts,
        headers=tuple(h for h in request.parts.headers if h[0] != "x-amz-decoded-content-length"),
    )
    with pytest.raises(S3Error) as exc:
        checksum.verified_body(agen([request.body]), parts, verified(request.parts))
    assert (exc.value.code, exc.value.status) == ("MissingContentLength", 411)


def test_stored_content_encoding_drops_aws_chunked() -> None:
    assert chunked.stored_content_encoding("aws-chunked") is None
    assert chunked.stored_content_encoding("gzip,aws-chunked") == "gzip"
    assert chunked.stored_content_encoding("aws-chunked, gzip") == "gzip"
    assert chunked.stored_content_encoding(None) is None


def test_crc_helpers_match_reference_implementations() -> None:
    assert (
        b64_checksum("crc32", b"abc")
        == base64.b64encode(zlib.crc32(b"abc").to_bytes(4, "big")).decode()
    )
    assert (
        b64_checksum("sha256", b"abc") == base64.b64encode(hashlib.sha256(b"abc").digest()).decode()
    )


# --- over a real socket ---------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [None, "sha256"])
def test_signed_chunked_upload_through_the_server(echo_http: object, algorithm: str | None) -> None:
    import httpx
    from gwproto_support import key_url

    url = key_url(echo_http.url, "bucket", "signed chunks/ü+~.bin")  # type: ignore[attr-defined]
    request = signed_chunked_request(url, PAYLOAD, chunk_size=3000, trailer_algorithm=algorithm)

    def pieces() -> object:  # HTTP/1.1 chunked transfer on top of aws-chunked framing
        for i in range(0, len(request.body), 1500):
            yield request.body[i : i + 1500]

    headers = {k: v for k, v in request.auth_request.headers.items()}
    reply = httpx.put(url, content=pieces(), headers=headers)  # type: ignore[arg-type]
    assert reply.status_code == 200, reply.text
    echo = json.loads(reply.headers["x-echo"])
    assert echo["size"] == len(PAYLOAD)
    assert echo["sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert echo["mode"] == request.parts.header("x-amz-content-sha256")

    corrupted = bytearray(request.body)
    corrupted[len(corrupted) // 2] ^= 0x20
    reply = httpx.put(url, content=bytes(corrupted), headers=headers)
    assert reply.status_code in (400, 403)
    assert b"<Code>" in reply.content


@pytest.mark.parametrize("size", [b"0x10", b"1_0", b"+10", b"-1", b" ", b"10000000000000000"])
async def test_chunk_sizes_are_plain_hex(size: bytes) -> None:
    parts, _ = _unsigned_request(PAYLOAD, "crc32")
    await _expect(parts, size + b"\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n", "InvalidRequest")


async def test_from_request_reads_the_headers() -> None:
    parts, body = _unsigned_request(PAYLOAD, "sha1")
    decoder = chunked.AwsChunkedBody.from_request(agen([body]), parts, None)
    assert await drain(decoder) == PAYLOAD
    assert decoder.finished
    assert decoder.trailers == {"x-amz-checksum-sha1": b64_checksum("sha1", PAYLOAD)}
    plain = replace(
        parts,
        headers=tuple(
            (k, "UNSIGNED-PAYLOAD" if k == "x-amz-content-sha256" else v) for k, v in parts.headers
        ),
    )
    with pytest.raises(S3Error) as exc:
        chunked.AwsChunkedBody.from_request(agen([body]), plain, None)
    assert exc.value.code == "InvalidRequest"
