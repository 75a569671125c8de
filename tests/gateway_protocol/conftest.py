"""Fixtures for the protocol-layer tests: the echo server over HTTP and over TLS."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from gwproto_support import AKID, REGION, SECRET, running_server

from testkit import self_signed_cert


@dataclass(frozen=True)
class Endpoint:
    url: str
    verify: str | bool

    def client(self, **config: object) -> object:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=AKID,
            aws_secret_access_key=SECRET,
            region_name=REGION,
            verify=self.verify,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
        )


@pytest.fixture(scope="session")
def echo_http() -> Iterator[Endpoint]:
    with running_server() as url:
        yield Endpoint(url, False)


@pytest.fixture(scope="session")
def echo_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    directory: Path = tmp_path_factory.mktemp("tls")
    cert, key = self_signed_cert(directory)
    with running_server((cert, key)) as url:
        yield Endpoint(url, str(cert))
