"""Commands that only read never create a database: run in the wrong place, they say so.

An empty database made on the spot answers "ok: 0 entries" or "0 out of compliance", which
is a false all-clear about data the command never saw (issue #12, item 7).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from testkit import CliResult

READ_ONLY = [
    ("audit", "verify"),
    ("audit", "export"),
    ("audit", "tail"),
    ("audit", "checkpoint"),
    ("audit", "checkpoints"),
    ("verify",),
    ("plan", "--policy", "preset:default"),
    ("access", "ledger"),
    (
        "access",
        "explain",
        "--principal",
        "acme/alice",
        "--action",
        "ReadObject",
        "--resource",
        "photos/a.jpg",
    ),
    ("principal", "show", "acme/alice"),
    ("principal", "list", "--tenant", "acme"),
    ("tenant", "list"),
    ("key", "list"),
    ("key", "revoke", "AKIAEXAMPLE"),
]


@pytest.mark.parametrize("command_line", READ_ONLY, ids=" ".join)
def test_a_reader_with_no_database_names_the_path_and_creates_nothing(
    tmp_path: Path, cli: Callable[..., CliResult], command_line: tuple[str, ...]
) -> None:
    data = tmp_path / "wrong-dir"
    result = cli(*command_line, env={"RESIDENCY_DATA_DIR": str(data)})
    assert result.code == 2, (result.stdout, result.stderr)
    expected = f"error: no database at {(data / 'residency.db').resolve()} "
    assert result.stderr.strip().splitlines() == [expected + "(check --config / --data-dir)"], (
        result.stderr
    )
    assert not (data / "residency.db").exists()
    assert not (data / "audit-signing-key.pem").exists()
    assert "ok" not in result.stdout


def test_report_with_no_database_names_the_path_and_writes_nothing(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    data = tmp_path / "wrong-dir"
    result = cli("report", "--json", env={"RESIDENCY_DATA_DIR": str(data)})
    assert result.code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: no database at "), lines
    assert "residency.db" in lines[0]
    assert not (data / "residency.db").exists()
    assert result.stdout == ""


def test_a_reader_refuses_an_empty_database_file(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    """A file with no residency schema (a wrong `database_url`) is not taken over either."""
    stray = tmp_path / "stray.db"
    sqlite3.connect(stray).close()
    url = f"sqlite+aiosqlite:///{stray}"
    result = cli("audit", "verify", env={"RESIDENCY_DATABASE_URL": url})
    assert result.code == 2, (result.stdout, result.stderr)
    assert result.stderr.strip().splitlines() == [
        f"error: no residency database at {url}: it has no residency tables"
    ]
    with sqlite3.connect(stray) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    assert tables == []


def test_readers_work_once_a_writer_made_the_database(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    env = {"RESIDENCY_DATA_DIR": str(tmp_path / "data")}
    created = cli("tenant", "create", "acme", env=env)
    assert created.code == 0, created.stderr
    listed = cli("tenant", "list", "--json", env=env)
    assert listed.code == 0, listed.stderr
    assert '"acme"' in listed.stdout
    verified = cli("audit", "verify", env=env)
    assert verified.code == 0, verified.stderr
    assert "ok: audit log intact: 1 entries" in verified.stdout
