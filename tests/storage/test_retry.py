"""The default retry layer: temporary errors (HTTP 503) are retried with backoff, then reported."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from storage_helpers import config, facts

from residency.storage import (
    LocationUnavailable,
    RetryPolicy,
    open_location,
    retry,
    timeout,
)

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class FlakyS3:
    """An S3 endpoint that answers 503 SlowDown to the first `failures` requests, then serves
    HEAD of any key as a 5-byte object."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                outer.requests += 1
                if outer.requests <= outer.failures:
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOW_DOWN)))
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", "5")
                self.send_header("ETag", '"0123456789abcdef0123456789abcdef"')
                self.send_header("Last-Modified", "Mon, 02 Nov 2026 10:00:00 GMT")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def options(self) -> dict[str, str]:
        return {
            "bucket": "bkt",
            "endpoint": self.endpoint,
            "region": "us-east-1",
            "access_key_id": "testing",
            "secret_access_key": "testing",
            "disable_config_load": "true",
            "disable_ec2_metadata": "true",
        }


@pytest.fixture
def flaky() -> Iterator[FlakyS3]:
    server = FlakyS3(failures=2)
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


async def test_temporary_errors_are_retried_until_success(flaky: FlakyS3) -> None:
    loc = open_location(config("flaky", "s3", **flaky.options()), facts("flaky"))
    stat = await loc.stat("some/key")
    assert stat.size == 5
    assert flaky.requests == 3  # two 503s, then the answer


async def test_retries_are_bounded_then_unavailable(flaky: FlakyS3) -> None:
    flaky.failures = 100
    policy = RetryPolicy(max_times=2, min_delay=0.01, max_delay=0.05)
    loc = open_location(
        config("flaky", "s3", **flaky.options()),
        facts("flaky"),
        layers=[timeout(), retry(policy)],
    )
    with pytest.raises(LocationUnavailable, match="HTTP 503") as err:
        await loc.stat("some/key")
    assert "'flaky'" in str(err.value)
    assert flaky.requests == 3  # the first try and two retries


async def test_without_retry_layer_the_first_error_surfaces(flaky: FlakyS3) -> None:
    loc = open_location(config("flaky", "s3", **flaky.options()), facts("flaky"), layers=[])
    with pytest.raises(LocationUnavailable):
        await loc.stat("some/key")
    assert flaky.requests == 1
