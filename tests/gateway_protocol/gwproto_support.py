"""Helpers for the protocol-layer tests: botocore signing, a chunk signer, a tiny real server.

The server is a bare ASGI app that runs the protocol layer exactly as the gateway does
(`sigv4.authenticate` -> `checksum.verified_body` -> stream) and echoes what it received, so
real clients (boto3, httpx) can be pointed at it on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import itertools
import json
import socket
import threading
import urllib.parse
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from residency.gateway import checksum, sigv4
from residency.gateway.errors import S3Error
from residency.gateway.sigv4 import RequestParts
from residency.gateway.xml import error_document

AKID = "AKIDPROTOCOLTEST"
SECRET = "s3cr3t/with+odd=chars"
REGION = "eu-central-1"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


# --- botocore-signed requests ---------------------------------------------------------------


def key_url(endpoint: str, bucket: str, key: str, query: str = "") -> str:
    """URL as botocore's S3 serializer builds it (key quoted, '/' and '~' kept)."""
    url = f"{endpoint}/{bucket}/{urllib.parse.quote(key, safe='/~')}"
    return f"{url}?{query}" if query else url


class _StreamingSigner(S3SigV4Auth):
    """botocore's S3 header signer, told to announce an aws-chunked payload mode."""

    def __init__(self, credentials: Credentials, region: str, payload: str) -> None:
        super().__init__(credentials, "s3", region)
        self._payload_value = payload

    def payload(self, request: AWSRequest) -> str:
        return self._payload_value


def sign_request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    payload: str | None = None,
    secret: str = SECRET,
    region: str = REGION,
) -> AWSRequest:
    """Sign with botocore's own `S3SigV4Auth` (payload hash computed by botocore)."""
    request = AWSRequest(method=method, url=url, headers=headers or {}, data=body)
    creds = Credentials(AKID, secret)
    signer = (
        _StreamingSigner(creds, region, payload)
        if payload is not None
        else S3SigV4Auth(creds, "s3", region)
    )
    signer.add_auth(request)
    return request


def presign(
    method: str, url: str, *, expires: int = 3600, region: str = REGION, secret: str = SECRET
) -> str:
    request = AWSRequest(method=method, url=url)
    S3SigV4QueryAuth(Credentials(AKID, secret), "s3", region, expires=expires).add_auth(request)
    return str(request.url)


def parts_of(request: AWSRequest) -> RequestParts:
    """What a server would see for a botocore-prepared request (host from the URL)."""
    split = urllib.parse.urlsplit(str(request.url))
    headers = [(k.lower(), str(v)) for k, v in request.headers.items()]
    if not any(k == "host" for k, _ in headers):
        headers.append(("host", split.netloc))
    return RequestParts(
        method=str(request.method),
        raw_path=split.path,
        query_string=split.query,
        headers=tuple(headers),
    )


def amz_now(request: AWSRequest) -> dt.datetime:
    return dt.datetime.strptime(str(request.headers["X-Amz-Date"]), "%Y%m%dT%H%M%SZ").replace(
        tzinfo=dt.UTC
    )


# --- aws-chunked encoding (the SDKs' chunk signer, written from the AWS spec) ----------------


def _hmac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def signing_key(secret: str, date: str, region: str) -> bytes:
    k = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


@dataclass
class ChunkSigner:
    key: bytes
    amz_date: str
    scope: str
    previous: str

    def chunk(self, data: bytes) -> str:
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                self.amz_date,
                self.scope,
                self.previous,
                EMPTY_SHA256,
                hashlib.sha256(data).hexdigest(),
            ]
        )
        self.previous = _hmac(self.key, to_sign)
        return self.previous

    def trailer(self, canonical: str) -> str:
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-TRAILER",
                self.amz_date,
                self.scope,
                self.previous,
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        return _hmac(self.key, to_sign)


def encode_chunked(
    payload: bytes,
    chunk_size: int,
    *,
    signer: ChunkSigner | None = None,
    trailers: Iterable[tuple[str, str]] | None = None,
) -> bytes:
    """An aws-chunked body: signed when `signer` is given; trailers when `trailers` is given."""
    out = bytearray()
    pieces = [payload[i : i + chunk_size] for i in range(0, len(payload), chunk_size)] + [b""]
    for piece in pieces:
        if signer is not None:
            out += f"{len(piece):x};chunk-signature={signer.chunk(piece)}\r\n".encode()
        else:
            out += f"{len(piece):x}\r\n".encode()
        if piece:
            out += piece + b"\r\n"
    if trailers is not None:
        canonical = "".join(f"{name}:{value}\n" for name, value in trailers)
        for name, value in trailers:
            out += f"{name}:{value}\r\n".encode()
        if signer is not None:
            out += f"x-amz-trailer-signature:{signer.trailer(canonical)}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


def b64_checksum(algorithm: str, payload: bytes) -> str:
    hasher = checksum.new_hasher(algorithm)
    hasher.update(payload)
    return base64.b64encode(hasher.digest()).decode()


@dataclass
class SignedChunkedRequest:
    parts: RequestParts
    body: bytes
    auth_request: AWSRequest


def signed_chunked_request(
    url: str,
    payload: bytes,
    *,
    chunk_size: int = 8192,
    trailer_algorithm: str | None = None,
    extra_headers: dict[str, str] | None = None,
    trailer_value: str | None = None,
) -> SignedChunkedRequest:
    """A PUT with a STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER) body, seed signed by botocore."""
    mode = (
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
        if trailer_algorithm
        else "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    )
    headers = {
        "Content-Encoding": "aws-chunked",
        "X-Amz-Decoded-Content-Length": str(len(payload)),
        **(extra_headers or {}),
    }
    if trailer_algorithm:
        headers["X-Amz-Trailer"] = f"x-amz-checksum-{trailer_algorithm}"
    request = sign_request("PUT", url, headers=headers, payload=mode)
    amz_date = str(request.headers["X-Amz-Date"])
    seed = str(request.headers["Authorization"]).rsplit("Signature=", 1)[1]
    signer = ChunkSigner(
        signing_key(SECRET, amz_date[:8], REGION),
        amz_date,
        f"{amz_date[:8]}/{REGION}/s3/aws4_request",
        seed,
    )
    trailers = (
        [
            (
                f"x-amz-checksum-{trailer_algorithm}",
                trailer_value or b64_checksum(trailer_algorithm, payload),
            )
        ]
        if trailer_algorithm
        else None
    )
    body = encode_chunked(payload, chunk_size, signer=signer, trailers=trailers)
    return SignedChunkedRequest(parts_of(request), body, request)


async def agen(pieces: Iterable[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        await asyncio.sleep(0)
        yield piece


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# --- the echo server ------------------------------------------------------------------------


async def _lookup(access_key_id: str) -> str | None:
    return SECRET if access_key_id == AKID else None


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Authenticate, decode and verify the body, answer with what arrived (JSON headers)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    req = RequestParts.from_scope(scope)

    async def stream() -> AsyncIterator[bytes]:
        while True:
            message = await receive()
            if message.get("body"):
                yield message["body"]
            if not message.get("more_body"):
                return

    try:
        auth = await sigv4.authenticate(req, _lookup)
        body = checksum.verified_body(stream(), req, auth)
        sha = hashlib.sha256()
        md5 = hashlib.md5()
        async for piece in body:
            sha.update(piece)
            md5.update(piece)
        echo = {
            "mode": auth.payload.value if auth else "anonymous",
            "presigned": bool(auth and auth.presigned),
            "size": body.size,
            "sha256": sha.hexdigest(),
            "checksum": list(body.checksum) if body.checksum else None,
        }
        headers = [
            (b"etag", f'"{md5.hexdigest()}"'.encode()),
            (b"x-echo", json.dumps(echo).encode()),
            *((k.encode(), v.encode()) for k, v in body.response_headers().items()),
        ]
        content = b"ok" if scope["method"] == "GET" else b""
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})
    except S3Error as err:
        doc = error_document(err, request_id="test", resource=scope["path"])
        headers = [(b"content-type", b"application/xml")]
        headers += [(k.encode(), v.encode()) for k, v in err.headers.items()]
        await send({"type": "http.response.start", "status": err.status, "headers": headers})
        await send({"type": "http.response.body", "body": doc})


@contextmanager
def running_server(tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """Serve `echo_app` with uvicorn on a loopback port in a thread; yields the endpoint."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        echo_app,
        log_level="warning",
        lifespan="off",
        ssl_certfile=str(tls[0]) if tls else None,
        ssl_keyfile=str(tls[1]) if tls else None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            threading.Event().wait(0.02)
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
