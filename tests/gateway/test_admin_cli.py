"""`residency tenant ...` / `residency key ...`: JSON for scripts, one-line errors, secrets
shown once."""

from __future__ import annotations

import json
from pathlib import Path

from gwserver import run_residency


def cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    proc = run_residency(*args, "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    return proc.returncode, proc.stdout, proc.stderr


def test_tenant_and_key_lifecycle(tmp_path: Path) -> None:
    code, out, err = cli(tmp_path, "tenant", "create", "acme", "--json")
    assert code == 0, err
    assert json.loads(out)["name"] == "acme"
    code, out, _ = cli(tmp_path, "key", "create", "--tenant", "acme", "--name", "etl", "--json")
    assert code == 0
    key = json.loads(out)
    assert (key["tenant"], key["principal"]) == ("acme", "etl")
    assert len(key["secret_access_key"]) >= 40
    code, out, _ = cli(tmp_path, "key", "list", "--json")
    listed = json.loads(out)
    assert [k["access_key_id"] for k in listed] == [key["access_key_id"]]
    assert key["secret_access_key"] not in out  # never shown again
    code, out, _ = cli(tmp_path, "key", "list")
    assert key["access_key_id"] in out
    assert key["secret_access_key"] not in out
    code, out, _ = cli(tmp_path, "tenant", "list", "--json")
    assert json.loads(out) == [
        {"name": "acme", "created": json.loads(out)[0]["created"], "buckets": 0, "active_keys": 1}
    ]
    code, out, _ = cli(tmp_path, "key", "revoke", key["access_key_id"], "--json")
    assert code == 0
    assert json.loads(out)["status"] == "revoked"
    code, out, _ = cli(tmp_path, "key", "list", "--tenant", "acme", "--json")
    assert json.loads(out)[0]["status"] == "revoked"


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    for args, needle in (
        (("tenant", "create", "Not Valid"), "invalid tenant name"),
        (("key", "create", "--tenant", "nobody"), "no tenant named 'nobody'"),
        (("key", "revoke", "AKIANOSUCHKEY0000000"), "no access key"),
        (("key", "list", "--tenant", "nobody"), "no tenant named 'nobody'"),
    ):
        code, _, err = cli(tmp_path, *args)
        assert code == 2, args
        assert needle in err
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
    cli(tmp_path, "tenant", "create", "dup")
    code, _, err = cli(tmp_path, "tenant", "create", "dup")
    assert code == 2
    assert "already exists" in err
