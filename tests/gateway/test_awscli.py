"""The AWS CLI (`aws s3` and `aws s3api`) against the gateway, unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

from gwserver import Gateway


def aws(
    gateway: Gateway, *args: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["aws", "--endpoint-url", gateway.endpoint, *args],
        env={**os.environ, **gateway.env()},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_s3_cp_sync_ls_rm(gateway: Gateway, tmp_path: Path) -> None:
    bucket = f"cli-{uuid.uuid4().hex[:10]}"
    aws(gateway, "s3", "mb", f"s3://{bucket}")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "b.bin").write_bytes(os.urandom(20_000))
    (src / "big.bin").write_bytes(os.urandom(9 * 1024 * 1024))  # multipart (8 MiB threshold)
    aws(gateway, "s3", "cp", str(src / "a.txt"), f"s3://{bucket}/single/a.txt")
    aws(gateway, "s3", "sync", str(src), f"s3://{bucket}/tree")
    listing = aws(gateway, "s3", "ls", "--recursive", f"s3://{bucket}").stdout
    for key in ("single/a.txt", "tree/a.txt", "tree/sub/b.bin", "tree/big.bin"):
        assert key in listing
    dst = tmp_path / "dst"
    aws(gateway, "s3", "sync", f"s3://{bucket}/tree", str(dst))
    for rel in ("a.txt", "sub/b.bin", "big.bin"):
        assert (dst / rel).read_bytes() == (src / rel).read_bytes()
    # A second sync has nothing to do.
    assert aws(gateway, "s3", "sync", str(src), f"s3://{bucket}/tree").stdout.strip() == ""
    aws(gateway, "s3", "rm", "--recursive", f"s3://{bucket}/tree")
    listing = aws(gateway, "s3", "ls", "--recursive", f"s3://{bucket}").stdout
    assert "tree/" not in listing
    assert "single/a.txt" in listing
    buckets = aws(gateway, "s3", "ls").stdout
    assert bucket in buckets


def test_s3api_put_and_head_object(gateway: Gateway, tmp_path: Path) -> None:
    bucket = f"cli-{uuid.uuid4().hex[:10]}"
    aws(gateway, "s3api", "create-bucket", "--bucket", bucket)
    body = tmp_path / "record.json"
    body.write_text('{"patient": 1}')
    put = json.loads(
        aws(
            gateway,
            "s3api",
            "put-object",
            "--bucket",
            bucket,
            "--key",
            "records/1.json",
            "--body",
            str(body),
            "--content-type",
            "application/json",
            "--metadata",
            "residency-class=personal.health,residency-subject=US",
        ).stdout
    )
    assert put["ETag"]
    head = json.loads(
        aws(gateway, "s3api", "head-object", "--bucket", bucket, "--key", "records/1.json").stdout
    )
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"residency-class": "personal.health", "residency-subject": "US"}
    assert head["ContentLength"] == len('{"patient": 1}')


def test_refusal_message_reaches_the_cli_user(gateway: Gateway, tmp_path: Path) -> None:
    bucket = f"cli-{uuid.uuid4().hex[:10]}"
    aws(gateway, "s3api", "create-bucket", "--bucket", bucket)
    body = tmp_path / "cn.csv"
    body.write_text("id\n1\n")
    proc = aws(
        gateway,
        "s3api",
        "put-object",
        "--bucket",
        bucket,
        "--key",
        "cn.csv",
        "--body",
        str(body),
        "--metadata",
        "residency-class=personal,residency-subject=CN",
        check=False,
    )
    assert proc.returncode != 0
    assert "ResidencyViolation" in proc.stderr
    assert "pipl-mainland-only" in proc.stderr
