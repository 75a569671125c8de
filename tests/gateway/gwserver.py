"""Helpers to run a real `residency serve` on loopback (used by conftest.py and tests).

Locations: fs directories standing for AWS us-east-1, OCI us-ashburn-1 (both US), Alibaba
ap-southeast-1 (SG, vendor HQ CN) and AWS eu-central-1 (DE), plus an OpenDAL `s3` location on
the session moto server standing for GCP us-central1, so the cross-cloud path is real HTTP.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import yaml
from botocore.config import Config

REGION = "us-east-1"

POLICY = """
name: gateway-test
description: >
  The default preset plus rules that make placements easy to observe. This test deployment
  declares that data nobody classified is public (an operator's explicit choice).
extends: [preset:default]
default_class: public
classes:
  backup: backups that must survive the loss of a provider (test class)
  cloudcopy: data that must sit on GCP (test class)
  eudata: data that must stay in Germany (test class)
rules:
  - id: backup-two-us-clouds
    scope: {data_class: [backup]}
    constraints:
      allow_countries: [US]
      replicas: 2
      spread: provider
      prefer: [us-east, us-ashburn]
  - id: cloud-copy
    scope: {data_class: [cloudcopy]}
    constraints:
      allow_providers: [gcp]
  - id: germany-only
    scope: {data_class: [eudata]}
    constraints:
      allow_countries: [DE]
"""

FS_LOCATIONS = {
    "us-east": ("aws", "us-east-1"),
    "us-ashburn": ("oci", "us-ashburn-1"),
    "sg": ("alibaba", "ap-southeast-1"),
    "de": ("aws", "eu-central-1"),
}
MOTO_LOCATION = "gcp-central"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_residency(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "residency", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"residency serve exited ({proc.returncode}):\n{log.read_text()}")
        try:
            httpx.get(url, timeout=1.0, verify=False)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(f"residency serve did not answer at {url}:\n{log.read_text()}")


@dataclass
class Server:
    """A running `residency serve` subprocess and how to reach it."""

    proc: subprocess.Popen[bytes]
    endpoint: str
    root: Path
    stdout: Path
    stderr: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_server(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, scheme: str = "http"
) -> Server:
    port = _free_port()
    stdout, stderr = cwd / f"serve-{port}.out", cwd / f"serve-{port}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "residency", "serve", *args, "--port", str(port)],
            cwd=cwd,
            stdout=out,
            stderr=err,
            env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})},
        )
    server = Server(proc, f"{scheme}://127.0.0.1:{port}", cwd, stdout, stderr)
    try:
        wait_ready(server.endpoint, proc, stderr)
    except BaseException:
        server.stop()
        raise
    return server


@dataclass
class Gateway:
    """What tests (and the rclone/s5cmd tests) need to talk to the running gateway."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str
    data_dir: Path
    config: Path
    server: Server
    moto_bucket: str
    other_access_key: str = ""
    other_secret_key: str = ""
    _locations: dict[str, Path] = field(default_factory=dict)

    def location_dir(self, name: str) -> Path:
        return self._locations[name]

    @property
    def fs_locations(self) -> dict[str, Path]:
        return dict(self._locations)

    def s3(
        self, access_key: str | None = None, secret_key: str | None = None, **config: Any
    ) -> Any:
        """A boto3 S3 client with today's defaults (flexible checksums on)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
        )

    def other_s3(self) -> Any:
        """A client of a second tenant (isolation tests)."""
        return self.s3(self.other_access_key, self.other_secret_key)

    def env(self) -> dict[str, str]:
        """Environment for awscli, rclone (remote `residency:`) and s5cmd."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint,
            "S3_ENDPOINT_URL": self.endpoint,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "RCLONE_CONFIG": "/dev/null",
            "RCLONE_CONFIG_RESIDENCY_TYPE": "s3",
            "RCLONE_CONFIG_RESIDENCY_PROVIDER": "Other",
            "RCLONE_CONFIG_RESIDENCY_ACCESS_KEY_ID": self.access_key,
            "RCLONE_CONFIG_RESIDENCY_SECRET_ACCESS_KEY": self.secret_key,
            "RCLONE_CONFIG_RESIDENCY_ENDPOINT": self.endpoint,
            "RCLONE_CONFIG_RESIDENCY_REGION": self.region,
        }

    def server_log(self) -> str:
        return self.server.stderr.read_text()

    def audit_entries(self, kind: str, target_prefix: str) -> list[dict[str, Any]]:
        """The audit log's entries of `kind` whose target starts with `target_prefix`, as
        `residency audit export` gives them."""
        exported = run_residency(
            "audit", "export", "--kind", kind, "--config", str(self.config), cwd=self.data_dir
        )
        assert exported.returncode == 0, exported.stderr
        entries = [json.loads(line) for line in exported.stdout.splitlines()]
        return [e for e in entries if e["target"].startswith(target_prefix)]

    def blob_files(self) -> dict[str, list[Path]]:
        """Every blob file in every fs location (what is really on "disk" per cloud)."""
        return {
            name: sorted(p for p in root.rglob("*") if p.is_file())
            for name, root in self._locations.items()
        }


def write_config(root: Path, moto: Any, bucket: str) -> tuple[Path, dict[str, Path]]:
    data_dir = root / "data"
    dirs = {name: data_dir / "locations" / name for name in FS_LOCATIONS}
    locations: list[dict[str, Any]] = [
        {
            "name": name,
            "provider": provider,
            "region": region,
            "scheme": "fs",
            "options": {"root": str(dirs[name])},
        }
        for name, (provider, region) in FS_LOCATIONS.items()
    ]
    locations.append(
        {
            "name": MOTO_LOCATION,
            "provider": "gcp",
            "region": "us-central1",
            "scheme": "s3",
            "options": moto.location_options(bucket),
        }
    )
    policy = root / "policy.yaml"
    policy.write_text(POLICY)
    config = root / "residency.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(data_dir),
                "policy": str(policy),
                "locations": locations,
                "region_name": REGION,
            }
        )
    )
    return config, dirs


def create_key(config: Path, cwd: Path, tenant: str) -> tuple[str, str]:
    created = run_residency("tenant", "create", tenant, "--config", str(config), cwd=cwd)
    assert created.returncode == 0, created.stderr
    key = run_residency(
        "key", "create", "--tenant", tenant, "--json", "--config", str(config), cwd=cwd
    )
    assert key.returncode == 0, key.stderr
    data = json.loads(key.stdout)
    return data["access_key_id"], data["secret_access_key"]


def one_location_config(root: Path, **extra: Any) -> Path:
    """A one-location deployment under `root` with its own data dir (one server per data
    dir); `extra` adds or overrides settings."""
    config = root / "residency.yaml"
    settings: dict[str, Any] = {
        "data_dir": str(root / "data"),
        "region_name": REGION,
        "locations": [
            {
                "name": "us-east",
                "provider": "aws",
                "region": "us-east-1",
                "scheme": "fs",
                "options": {"root": str(root / "data" / "us-east")},
            }
        ],
        **extra,
    }
    config.write_text(yaml.safe_dump(settings))
    return config


def serve_expecting_refusal(
    *args: str, cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`residency serve ARGS`, expected to refuse at once; one that starts is stopped whole."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "residency", "serve", *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("`residency serve` started although it should have refused")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
