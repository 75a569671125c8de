"""`residency audit ...` through the real command: exit codes, one-line errors, output formats."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from audit_helpers import append_many, raw
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from residency import audit
from residency.meta import Database

Cli = Callable[..., object]


@pytest.fixture
async def log(db: Database) -> Database:
    """Five entries in the database the CLI finds by default (./residency-data)."""
    await append_many(db, 5)
    return db


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


async def test_verify_ok(cli: Cli, log: Database) -> None:
    res = cli("audit", "verify")
    assert res.code == 0, res.stderr
    assert "ok: audit log intact: 5 entries, last seq 5" in res.stdout


async def test_verify_names_the_first_tampered_seq(cli: Cli, log: Database, db_file: Path) -> None:
    with raw(db_file) as conn:
        conn.execute("UPDATE audit_entries SET target = 'bucket/other' WHERE seq = 3")
        conn.execute("UPDATE audit_entries SET target = 'bucket/other' WHERE seq = 4")
    res = cli("audit", "verify")
    assert res.code == 1
    line = _one_error_line(res.stderr)
    assert "audit log tampered: seq 3:" in line

    res = cli("audit", "verify", "--json")
    assert res.code == 1
    data = json.loads(res.stdout)
    assert (data["ok"], data["first_bad_seq"], data["entries"]) == (False, 3, 2)


async def test_checkpoint_key_and_public_key_export(
    cli: Cli, log: Database, data_dir: Path, tmp_path: Path
) -> None:
    res = cli("audit", "checkpoint", "--json")
    assert res.code == 0, res.stderr
    cp = json.loads(res.stdout)
    assert cp["seq"] == 5
    key_file = data_dir / "audit-signing-key.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600

    res = cli("audit", "public-key", "-o", "pub.pem")
    assert res.code == 0, res.stderr
    assert (tmp_path / "pub.pem").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert cli("audit", "public-key").stdout == (tmp_path / "pub.pem").read_text()

    res = cli("audit", "verify", "--public-key", "pub.pem")
    assert res.code == 0, res.stderr
    assert "1 checkpoints, signatures verified" in res.stdout

    other = Ed25519PrivateKey.generate().public_key()
    (tmp_path / "other.pem").write_text(audit.public_key_pem(other))
    res = cli("audit", "verify", "--public-key", "other.pem")
    assert res.code == 1
    assert "seq 5: checkpoint claims key" in _one_error_line(res.stderr)


async def test_expected_hash_kept_elsewhere_catches_a_hidden_truncation(
    cli: Cli, log: Database, db_file: Path
) -> None:
    """Tail, its checkpoint and the chain head all rolled back: only the kept copy notices."""
    kept = json.loads(cli("audit", "checkpoint", "--json").stdout)
    anchor = f"{kept['seq']}:{kept['hash']}"
    res = cli("audit", "verify", "--expect", anchor)
    assert res.code == 0, res.stderr
    with raw(db_file) as conn:
        conn.execute("DELETE FROM audit_entries WHERE seq > 3")
        conn.execute("DELETE FROM audit_checkpoints")
        (h3,) = conn.execute("SELECT hash FROM audit_entries WHERE seq = 3").fetchone()
        conn.execute("UPDATE audit_chain_head SET seq = 3, hash = ?", [h3])
    assert cli("audit", "verify").code == 0  # locally consistent: this is what --expect is for
    res = cli("audit", "verify", "--expect", anchor)
    assert res.code == 1
    assert "seq 4: missing: an expected hash was given for seq 5" in _one_error_line(res.stderr)


@pytest.mark.parametrize("bad", ["5", "x:" + "a" * 64, "0:" + "a" * 64, "5:abc", "5:" + "g" * 64])
def test_bad_expect_values(cli: Cli, bad: str) -> None:
    res = cli("audit", "verify", "--expect", bad)
    assert res.code == 2
    assert "--expect:" in _one_error_line(res.stderr)


async def test_forged_signature_is_caught_with_the_local_key(
    cli: Cli, log: Database, db_file: Path
) -> None:
    assert cli("audit", "checkpoint").code == 0
    with raw(db_file) as conn:
        conn.execute("UPDATE audit_checkpoints SET signature = ?", ["ab" * 64])
    res = cli("audit", "verify")
    assert res.code == 1
    assert "seq 5: checkpoint signature is not valid" in _one_error_line(res.stderr)


async def test_checkpoint_of_empty_log_is_a_clear_error(cli: Cli, db: Database) -> None:
    res = cli("audit", "checkpoint")
    assert res.code == 2
    assert "nothing to checkpoint" in _one_error_line(res.stderr)


async def test_unsafe_key_file_is_refused(cli: Cli, log: Database, data_dir: Path) -> None:
    assert cli("audit", "checkpoint").code == 0
    (data_dir / "audit-signing-key.pem").chmod(0o644)
    res = cli("audit", "checkpoint")
    assert res.code == 2
    assert "chmod 600" in _one_error_line(res.stderr)


async def test_export_jsonl(cli: Cli, db: Database, tmp_path: Path) -> None:
    await append_many(db, 3, kind="placement")
    await append_many(db, 2, kind="refusal")
    res = cli("audit", "export", "--format", "jsonl")
    assert res.code == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["seq"] for r in lines] == [1, 2, 3, 4, 5]
    assert set(lines[0]) == {
        "seq",
        "ts",
        "kind",
        "actor",
        "tenant",
        "target",
        "detail",
        "prev_hash",
        "hash",
    }
    assert lines[1]["prev_hash"] == lines[0]["hash"]

    res = cli("audit", "export", "--kind", "refusal", "--since", "1h", "-o", "out.jsonl")
    assert res.code == 0, res.stderr
    exported = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["seq"] for r in exported] == [4, 5]
    assert "exported 2 entries" in res.stderr

    res = cli("audit", "export", "--until", "2000-01-01T00:00:00Z")
    assert (res.code, res.stdout) == (0, "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "last tuesday"], "--since: 'last tuesday' is neither an ISO 8601 time"),
        (["--kind", "coffee"], "--kind: unknown audit kind 'coffee'"),
        (["--format", "csv"], "--format: unsupported format 'csv'"),
        (["-o", "no/such/dir/out.jsonl"], "cannot write"),
    ],
)
async def test_export_bad_input(cli: Cli, log: Database, args: list[str], message: str) -> None:
    res = cli("audit", "export", *args)
    assert res.code == 2
    assert message in _one_error_line(res.stderr)


def test_bad_config_and_key_files(cli: Cli) -> None:
    res = cli("audit", "verify", "--config", "missing.yaml")
    assert res.code == 2
    assert "missing.yaml: file not found" in _one_error_line(res.stderr)
    res = cli("audit", "verify", "--public-key", "missing.pem")
    assert res.code == 2
    assert "missing.pem: cannot read public key" in _one_error_line(res.stderr)


async def test_tail(cli: Cli, log: Database) -> None:
    res = cli("audit", "tail", "-n", "2")
    assert res.code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].split()[0] == "4"
    assert "bucket/key-4" in lines[1]
    res = cli("audit", "tail", "-n", "3", "--json")
    assert [json.loads(x)["seq"] for x in res.stdout.splitlines()] == [3, 4, 5]


async def test_tail_follow_prints_new_entries(log: Database, tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "residency", "audit", "tail", "-n", "1", "-f", "--json"],
        *["--interval", "0.1"],
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None

    async def next_seq() -> int:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
        return int(json.loads(line)["seq"])

    try:
        assert await next_seq() == 5
        await append_many(log, 2)
        assert [await next_seq(), await next_seq()] == [6, 7]
    finally:
        proc.terminate()
        await proc.wait()


def test_unwritable_data_dir_is_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("a file where the data dir should be")
    res = cli("audit", "public-key", env={"RESIDENCY_DATA_DIR": str(tmp_path / "blocked")})
    assert res.code == 2
    assert "audit signing key (Not a directory)" in _one_error_line(res.stderr)
