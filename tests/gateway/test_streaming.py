"""Invariant 3 at the gateway: a large PUT and GET stream through bounded memory; large GETs
of a whole local blob are sent by the server from the file, checked and failed over first."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import psutil
import pytest
from botocore.config import Config
from gwserver import Gateway, _free_port, wait_ready

MIB = 1024 * 1024
SIZE = 256 * MIB


def _server_rss(gateway: Gateway) -> int:
    main = psutil.Process(gateway.server.proc.pid)
    return sum(p.memory_info().rss for p in [main, *main.children(recursive=True)])


class PeakRss:
    """Samples the server's total RSS in the background; `.peak` is the highest seen."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.peak = _server_rss(gateway)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _server_rss(self.gateway))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def test_large_single_put_and_get_use_bounded_memory(gateway: Gateway, tmp_path: Path) -> None:
    s3 = gateway.s3()
    bucket = f"s-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    source = tmp_path / "big.bin"
    digest = hashlib.md5()
    with source.open("wb") as f:
        block = os.urandom(MIB)
        for i in range(SIZE // MIB):
            chunk = block[i % 7 :] + block[: i % 7]
            digest.update(chunk)
            f.write(chunk)
    baseline = _server_rss(gateway)
    with PeakRss(gateway) as put_rss, source.open("rb") as body:
        s3.put_object(Bucket=bucket, Key="big", Body=body)  # one PUT, no multipart
    with PeakRss(gateway) as get_rss:
        got = s3.get_object(Bucket=bucket, Key="big")["Body"]
        back = hashlib.md5()
        for chunk in got.iter_chunks(MIB):
            back.update(chunk)
    assert back.hexdigest() == digest.hexdigest()
    # Holding the object would cost >= 256 MiB; streaming needs a few buffers.
    assert put_rss.peak - baseline < 96 * MIB
    assert get_rss.peak - baseline < 96 * MIB


# --- large GETs sent by the server from the blob file (ASGI pathsend) -----------------------

BIG = 8 * MIB


def _body(size: int) -> bytes:
    block = os.urandom(MIB)
    return b"".join(block[i:] + block[:i] for i in range(size // MIB))


def _put_replicated(gateway: Gateway, body: bytes) -> tuple[Any, str, dict[str, Path]]:
    """PUT `body` as a `backup` object (replicas in us-east, then us-ashburn); return the
    client, the bucket and each replica's blob file."""
    s3 = gateway.s3()
    bucket = f"s-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    before = {p for files in gateway.blob_files().values() for p in files}
    put = s3.put_object(Bucket=bucket, Key="big", Body=body, Metadata={"residency-class": "backup"})
    headers = put["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-residency-locations"] == "us-east,us-ashburn"
    files = {
        name: path
        for name, paths in gateway.blob_files().items()
        for path in paths
        if path not in before
    }
    assert set(files) == {"us-east", "us-ashburn"}
    return s3, bucket, files


def _read(response: dict[str, Any]) -> bytes:
    return b"".join(response["Body"].iter_chunks(MIB))


def _check_full_and_ranged(s3: Any, bucket: str, body: bytes) -> None:
    full = s3.get_object(Bucket=bucket, Key="big", ChecksumMode="ENABLED")
    assert _read(full) == body
    assert full["ContentLength"] == len(body)
    assert full["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    headers = full["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-residency-locations"] == "us-east,us-ashburn"
    assert headers["x-residency-class"] == "backup"
    assert "x-amz-checksum-crc32" in headers
    start, end = 3 * MIB + 17, 6 * MIB + 4095
    ranged = s3.get_object(Bucket=bucket, Key="big", Range=f"bytes={start}-{end}")
    assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert ranged["ContentRange"] == f"bytes {start}-{end}/{len(body)}"
    assert _read(ranged) == body[start : end + 1]
    tail = s3.get_object(Bucket=bucket, Key="big", Range="bytes=-1000")
    assert _read(tail) == body[-1000:]


def test_large_full_and_ranged_gets_are_byte_identical(gateway: Gateway) -> None:
    body = _body(BIG)
    s3, bucket, _ = _put_replicated(gateway, body)
    _check_full_and_ranged(s3, bucket, body)
    # Conditionals are still ours, before any byte is sent.
    etag = f'"{hashlib.md5(body).hexdigest()}"'
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="big", IfNoneMatch=etag)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="big", IfMatch='"0123"')
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412


def test_sent_file_is_checked_first_and_a_bad_replica_fails_over(gateway: Gateway) -> None:
    """The server sends the blob file itself, so the gateway opens it and checks its size
    first: a primary replica one byte too long (which a streamed read, stopping at the
    version's size, would never notice) is skipped for the other replica."""
    body = _body(BIG)
    s3, bucket, files = _put_replicated(gateway, body)
    with files["us-east"].open("ab") as f:
        f.write(b"!")
    assert _read(s3.get_object(Bucket=bucket, Key="big")) == body
    assert f"blob holds {BIG + 1} bytes, expected {BIG}" in gateway.server_log()


def test_missing_blob_file_fails_over_and_none_left_is_503(gateway: Gateway) -> None:
    body = _body(BIG)
    s3, bucket, files = _put_replicated(gateway, body)
    files["us-east"].unlink()
    _check_full_and_ranged(s3, bucket, body)
    files["us-ashburn"].unlink()
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="big")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert exc.value.response["Error"]["Code"] == "ServiceUnavailable"


def test_server_without_pathsend_streams_the_same_bytes(gateway: Gateway, tmp_path: Path) -> None:
    """uvicorn offers no `http.response.pathsend`: the same app streams, with the same
    failover, from the same config and database as the granian server."""
    port = _free_port()
    log = tmp_path / "uvicorn.err"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "residency.gateway.asgi:create",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "RESIDENCY_CONFIG": str(gateway.config)},
        )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_ready(endpoint, proc, log)
        body = _body(BIG)
        _, bucket, files = _put_replicated(gateway, body)
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=gateway.access_key,
            aws_secret_access_key=gateway.secret_key,
            region_name=gateway.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
        _check_full_and_ranged(s3, bucket, body)
        files["us-east"].unlink()
        _check_full_and_ranged(s3, bucket, body)
        text = log.read_text()
        assert "trying another replica" in text
        assert "blob holds" not in text
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
