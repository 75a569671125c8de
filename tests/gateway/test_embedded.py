"""`residency serve` with no config: embedded default, keys printed once, `aws s3 ls` works."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from gwserver import start_server


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RESIDENCY_")}


def test_embedded_default_prints_endpoint_and_keys_once(tmp_path: Path) -> None:
    env = _env()
    server = start_server([], tmp_path)
    try:
        out = server.stdout.read_text()
        endpoint = re.search(r"S3 endpoint: (\S+)", out)
        key_id = re.search(r"access key id:\s+(\S+)", out)
        secret = re.search(r"secret access key:\s+(\S+)", out)
        assert endpoint, out
        assert key_id, out
        assert secret, out
        assert endpoint.group(1) == server.endpoint
        assert f"aws --endpoint-url {server.endpoint} s3 ls" in out
        assert "type = s3" in out  # the rclone example
        for name in (
            "aws-us-east-1",
            "oci-us-ashburn-1",
            "alibaba-ap-southeast-1",
            "tencent-eu-frankfurt",
            "own-dc-de",
        ):
            assert name in out
        aws_env = {
            **env,
            "AWS_ACCESS_KEY_ID": key_id.group(1),
            "AWS_SECRET_ACCESS_KEY": secret.group(1),
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }

        def aws(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["aws", "--endpoint-url", server.endpoint, *args],
                env=aws_env,
                capture_output=True,
                text=True,
                timeout=120,
            )

        assert aws("s3", "mb", "s3://hello").returncode == 0
        (tmp_path / "f.txt").write_text("hi")
        # Nothing says what f.txt is: refused, with a message that says what to send.
        refused = aws("s3", "cp", str(tmp_path / "f.txt"), "s3://hello/f.txt")
        assert refused.returncode != 0
        assert "ResidencyViolation" in refused.stderr
        assert "x-amz-meta-residency-class" in refused.stderr
        assert "residency-class=personal.health,residency-subject=US" in out
        labelled = aws(
            "s3",
            "cp",
            str(tmp_path / "f.txt"),
            "s3://hello/f.txt",
            "--metadata",
            "residency-class=public",
        )
        assert labelled.returncode == 0, labelled.stderr
        listed = aws("s3", "ls")
        assert listed.returncode == 0, listed.stderr
        assert "hello" in listed.stdout
        stored = list((tmp_path / "residency-data" / "locations").rglob("*"))
        assert any(p.is_file() and p.read_bytes() == b"hi" for p in stored)
        assert secret.group(1) not in server.stderr.read_text()  # logs never carry secrets
    finally:
        server.stop()

    again = start_server(["--workers", "2"], tmp_path)
    try:
        out = again.stdout.read_text()
        assert "S3 endpoint:" in out
        assert "secret access key" not in out  # shown once, at creation only
        aws_env["AWS_ENDPOINT_URL"] = again.endpoint
        for _ in range(4):  # spread over both workers; every one serves the same data
            listed = subprocess.run(
                ["aws", "s3", "ls", "s3://hello"],
                env=aws_env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert listed.returncode == 0, listed.stderr
            assert "f.txt" in listed.stdout
    finally:
        again.stop()


def test_bad_config_is_one_readable_line(tmp_path: Path) -> None:
    bad = tmp_path / "residency.yaml"
    bad.write_text("locations: [{name: Bad_Name, provider: aws, region: us-east-1}]\n")
    proc = subprocess.run(
        ["python", "-m", "residency", "serve", "--config", str(bad)],
        cwd=tmp_path,
        env={**_env(), "COLUMNS": "200", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "error:" in proc.stderr
    assert "name" in proc.stderr
    missing = subprocess.run(
        ["python", "-m", "residency", "serve", "--config", str(tmp_path / "nope.yaml")],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert "file not found" in missing.stderr
