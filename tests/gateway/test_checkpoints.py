"""Signed audit checkpoints happen by themselves: every `audit_checkpoint_every` entries while
the gateway writes, and once more when it stops cleanly (issue #12, item 8).

Without them the chain is only internally consistent; a checkpoint is what a verifier holding
the public key checks a rewritten or cut-short log against.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from gwserver import REGION, create_key, one_location_config, start_server

from testkit import run_cli

EVERY = 5


def _config(root: Path) -> Path:
    return one_location_config(root, audit_checkpoint_every=EVERY)


def _checkpoints(config: Path, cwd: Path) -> list[dict[str, Any]]:
    listed = run_cli("audit", "checkpoints", "--json", "--config", str(config), cwd=cwd)
    assert listed.code == 0, listed.stderr
    found: list[dict[str, Any]] = json.loads(listed.stdout)
    return found


def _head_seq(config: Path, cwd: Path) -> int:
    tail = run_cli("audit", "tail", "-n", "1", "--json", "--config", str(config), cwd=cwd)
    assert tail.code == 0, tail.stderr
    return int(json.loads(tail.stdout)["seq"])


def test_the_gateway_signs_every_n_entries_and_at_shutdown(tmp_path: Path) -> None:
    config = _config(tmp_path)
    access, secret = create_key(config, tmp_path, "acme")
    server = start_server(["--config", str(config)], tmp_path)
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
        s3.create_bucket(Bucket="ledger")
        for i in range(2 * EVERY):
            s3.put_object(
                Bucket="ledger",
                Key=f"k{i}",
                Body=b"x" * 100,
                Metadata={"residency-class": "public"},
            )
        head = _head_seq(config, tmp_path)
        if head % EVERY == 0:  # end between two multiples, so shutdown has a tail to sign
            s3.put_object(
                Bucket="ledger", Key="odd", Body=b"y", Metadata={"residency-class": "public"}
            )
            head += 1
        assert head > 2 * EVERY
        running = _checkpoints(config, tmp_path)
        assert [cp["seq"] for cp in running] == list(range(EVERY, head, EVERY))
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.stderr.read_text()
    after = _checkpoints(config, tmp_path)
    assert [cp["seq"] for cp in after] == [*range(EVERY, head, EVERY), head]
    assert _head_seq(config, tmp_path) == head  # signing added no entry
    verified = run_cli("audit", "verify", "--config", str(config), cwd=tmp_path)
    assert verified.code == 0, verified.stderr
    assert f"{len(after)} checkpoints, signatures verified" in verified.stdout


def test_cli_writers_sign_every_n_entries_too(tmp_path: Path) -> None:
    """`tenant create`, `key create`... append too: the schedule is not only the gateway's."""
    config = _config(tmp_path)
    for i in range(EVERY):
        made = run_cli("tenant", "create", f"t{i}", "--config", str(config), cwd=tmp_path)
        assert made.code == 0, made.stderr
    assert [cp["seq"] for cp in _checkpoints(config, tmp_path)] == [EVERY]
