"""Invariant 3 at the gateway: a large PUT and GET stream through bounded memory."""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from pathlib import Path

import psutil
from gwserver import Gateway

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
