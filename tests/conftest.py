"""Fixtures shared by every test area: free ports, a real moto S3 server, CLI runner."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from testkit import CliResult, run_cli


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something answers HTTP at `url` (any status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing answered at {url} within {timeout}s")


@dataclass(frozen=True)
class MotoServer:
    """A moto S3 server on loopback: stands in for a foreign cloud's S3 endpoint."""

    endpoint: str
    access_key: str = "testing"
    secret_key: str = "testing"
    region: str = "us-east-1"

    def new_bucket(self) -> str:
        import boto3

        name = f"b-{uuid.uuid4().hex[:12]}"
        boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
        ).create_bucket(Bucket=name)
        return name

    def location_options(self, bucket: str, root: str = "/") -> dict[str, str]:
        """OpenDAL `s3` options pointing at this server."""
        return {
            "bucket": bucket,
            "endpoint": self.endpoint,
            "region": self.region,
            "access_key_id": self.access_key,
            "secret_access_key": self.secret_key,
            "root": root,
            "disable_config_load": "true",
            "disable_ec2_metadata": "true",
        }


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    exe = shutil.which("moto_server")
    assert exe, "moto_server is required (pip install 'moto[server]')"
    port = free_port()
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_http(endpoint, proc=proc)
        yield MotoServer(endpoint=endpoint)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    """`cli("policy", "check", f)` runs the CLI with cwd in a fresh temp dir."""

    def _run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> CliResult:
        return run_cli(*args, cwd=tmp_path, env=env, input=input)

    return _run


def pytest_sessionstart(session: pytest.Session) -> None:
    """Test files live in plain folders (no packages), so their basenames must be unique."""
    root = Path(__file__).parent
    seen: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        if path.name in ("conftest.py", "__init__.py"):
            continue
        if path.name in seen:
            raise pytest.UsageError(f"duplicate test module name: {path} and {seen[path.name]}")
        seen[path.name] = path
