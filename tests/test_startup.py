"""Start-up stays cheap: each command imports only what it uses (checked, never timed).

Every `residency` run imports all CLI modules (Typer needs their signatures), so anything
they import at module level is paid by `--help` and every command. These tests run the real
CLI in a fresh interpreter and look at `sys.modules` afterwards. The settings tests below
pin the `RESIDENCY_*` behaviour kept when pydantic-settings was dropped for start-up time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from residency.config import (
    ENV_PREFIX,
    ConfigError,
    Settings,
    load_settings,
    settings_from_environment,
)
from testkit import run_cli

# Heavy libraries and our own layers that the CLI wiring must not load by itself.
HEAVY = (
    "sqlalchemy",
    "alembic",
    "opendal",
    "cryptography",
    "boto3",
    "ray",
    "granian",
    "pydantic",
    "pydantic_settings",
    "residency.config",
    "residency.meta",
    "residency.storage",
    "residency.audit",
    "residency.migrate",
    "residency.catalog",
    "residency.policy",
)
WATCH = (*HEAVY, "typer.rich_utils", "residency.migrate.adopt", "residency.migrate.planner")

PROBE = """
import json, sys
watch = json.loads(sys.argv[1])
if len(sys.argv) > 2:
    from residency.cli import app
    try:
        app(sys.argv[2:], prog_name="residency")
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
else:
    import residency.cli
    code = 0
sys.stdout.flush()
print("\\nPROBE " + json.dumps({"code": code, "loaded": [m for m in watch if m in sys.modules]}))
"""


def _probe(*args: str, cwd: Path | None = None) -> tuple[int, set[str], str]:
    """(exit code, watched modules loaded, output) of `residency ARGS` in a fresh interpreter."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(WATCH), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out, _, probe = proc.stdout.rpartition("\nPROBE ")
    report = json.loads(probe)
    return int(report["code"]), set(report["loaded"]), out + proc.stderr


def test_importing_the_cli_loads_no_heavy_module() -> None:
    code, loaded, _ = _probe()
    assert code == 0
    assert loaded == set()


def test_help_lists_every_command_without_heavy_imports(tmp_path: Path) -> None:
    code, loaded, out = _probe("--help", cwd=tmp_path)
    assert code == 0
    assert loaded & set(HEAVY) == set()
    # Rich help (panels) is kept: that is what typer.rich_utils is for, and only --help pays.
    assert "typer.rich_utils" in loaded
    assert "─ Commands ─" in out
    for command in ("serve", "plan", "migrate", "adopt", "report", "catalog", "audit", "access"):
        assert f"│ {command} " in out, out


def test_a_command_without_database_loads_no_database(tmp_path: Path) -> None:
    code, loaded, out = _probe("catalog", "groups", "--json", cwd=tmp_path)
    assert code == 0, out
    assert any(group["name"] == "EU" for group in json.loads(out))
    assert "residency.catalog" in loaded
    database_or_help = {"sqlalchemy", "alembic", "opendal", "cryptography", "typer.rich_utils"}
    assert loaded & database_or_help == set()


def test_plan_loads_neither_storage_nor_adopt_nor_alembic_at_head(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = _probe("tenant", "create", "acme", "--data-dir", str(data), cwd=tmp_path)
    assert first[0] == 0, first[2]
    assert "alembic" in first[1]  # a fresh database is created by Alembic (plan only reads)
    code, loaded, out = _probe(
        "plan", "--policy", "preset:default", "--data-dir", str(data), cwd=tmp_path
    )
    assert code == 0, out
    assert "residency.migrate.planner" in loaded
    assert loaded & {"alembic", "opendal", "residency.storage", "residency.migrate.adopt"} == set()


def test_a_usage_error_is_still_reported(tmp_path: Path) -> None:
    code, loaded, out = _probe("plan", "--no-such-flag", cwd=tmp_path)
    assert code == 2
    assert "No such option" in out
    assert loaded & {"sqlalchemy", "residency.config"} == set()


# --- settings: the environment, read without pydantic-settings ------------------------------


def _config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "residency.yaml"
    path.write_text(text)
    return path


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(key)


def test_environment_beats_the_file_and_flags_beat_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean_env(monkeypatch)
    path = _config_file(tmp_path, "port: 8000\nworkers: 3\nregion_name: eu-west-1\n")
    monkeypatch.setenv("RESIDENCY_PORT", "8001")
    monkeypatch.setenv("residency_workers", "4")  # any case, as before
    monkeypatch.setenv("RESIDENCY_NOT_A_SETTING", "x")  # other RESIDENCY_* variables are not ours
    settings = load_settings(path, workers=5)
    assert (settings.port, settings.workers, settings.region_name) == (8001, 5, "eu-west-1")


def test_list_settings_are_json_and_null_means_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean_env(monkeypatch)
    path = _config_file(
        tmp_path,
        "access_policies: [file.cedar]\n"
        "locations:\n- {name: here, provider: aws, region: eu-west-1}\n",
    )
    monkeypatch.setenv("RESIDENCY_ACCESS_POLICIES", '["env.cedar"]')
    monkeypatch.setenv("RESIDENCY_LOCATIONS", "null")
    settings = load_settings(path)
    assert settings.access_policies == [Path("env.cedar")]
    assert settings.locations == []  # the variable is set: the file's value does not count
    monkeypatch.setenv(
        "RESIDENCY_LOCATIONS", '[{"name": "there", "provider": "aws", "region": "us-east-1"}]'
    )
    assert [loc.name for loc in load_settings(path).locations] == ["there"]


def test_every_residency_variable_is_a_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The switches once read from the environment by the modules that used them are settings:
    a file can set them too, and the gateway and the database take them from `Settings`."""
    from residency.gateway.state import AccessControl

    _clean_env(monkeypatch)
    path = _config_file(tmp_path, "access_enforcement: false\nsqlite_busy_timeout_ms: 250\n")
    settings = load_settings(path)
    assert (settings.access_enforcement, settings.sqlite_busy_timeout_ms) == (False, 250)
    assert AccessControl.load(settings).enforce is False
    monkeypatch.setenv("RESIDENCY_ACCESS_ENFORCEMENT", "on")
    monkeypatch.setenv("RESIDENCY_SQLITE_BUSY_TIMEOUT_MS", "75")
    settings = load_settings(path)
    assert (settings.access_enforcement, settings.sqlite_busy_timeout_ms) == (True, 75)
    assert AccessControl.load(settings).enforce is True


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        ("RESIDENCY_LOCATIONS", "here", "RESIDENCY_LOCATIONS: not valid JSON"),
        ("RESIDENCY_ACCESS_POLICIES", "a.cedar", "RESIDENCY_ACCESS_POLICIES: not valid JSON"),
        ("RESIDENCY_PORT", "http", "settings: port: Input should be a valid integer"),
        ("RESIDENCY_AUDIT_CHECKPOINT_EVERY", "0", "audit_checkpoint_every: Input should be"),
        ("RESIDENCY_LOCATIONS", '[{"name": "x"}]', "locations.0.provider: Field required"),
    ],
)
def test_a_bad_environment_value_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, var: str, value: str, message: str
) -> None:
    _clean_env(monkeypatch)
    monkeypatch.chdir(tmp_path)  # no ./residency.yaml
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert message in str(refused.value)


def test_a_file_key_that_is_not_a_string_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean_env(monkeypatch)
    path = _config_file(tmp_path, "1: x\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(path)
    assert str(refused.value) == f"{path}: 1: Keys should be strings"


def test_a_bad_environment_value_is_one_cli_line(tmp_path: Path) -> None:
    result = run_cli("plan", cwd=tmp_path, env={"RESIDENCY_LOCATIONS": "[oops"})
    assert result.code == 2
    assert result.stderr.strip().splitlines() == [
        "error: RESIDENCY_LOCATIONS: not valid JSON (Expecting value: line 1 column 2 (char 1))"
    ]


def test_every_list_or_mapping_setting_is_read_as_json() -> None:
    """A new field such as `list[str] | None` must still be JSON in the environment."""
    for name, field in Settings.model_fields.items():
        shown = str(field.annotation)
        for kind, empty in ((list, "[]"), (dict, "{}")):
            if f"{kind.__name__}[" in shown:
                found = settings_from_environment({f"{ENV_PREFIX}{name.upper()}": empty})
                assert found == {name: kind()}, name
