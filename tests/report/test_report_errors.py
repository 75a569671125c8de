"""Bad input gets one readable line and exit code 2, never a traceback or a partial file."""

from __future__ import annotations

from pathlib import Path

from report_support import World, make_world, run_cli


def assert_one_line(stderr: str, needle: str) -> None:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error:"), stderr
    assert needle in lines[0], stderr


def test_bad_input(world: World, tmp_path: Path) -> None:
    r = run_cli("report", "--config", str(tmp_path / "nope.yaml"), cwd=tmp_path)
    assert r.code == 2
    assert_one_line(r.stderr, "nope.yaml: file not found")

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nrules:\n  - id: x\n    constraints: {replicas: 0}\n")
    r = run_cli("report", *world.args(), "--policy", str(bad), cwd=tmp_path)
    assert r.code == 2
    assert_one_line(r.stderr, "policy:")

    r = run_cli("report", *world.args(), "--policy", "preset:no-such", cwd=tmp_path)
    assert r.code == 2
    assert_one_line(r.stderr, "policy:")

    r = run_cli("report", *world.args(), "--since", "yesterday", cwd=tmp_path)
    assert r.code == 2
    assert_one_line(r.stderr, "--since:")

    r = run_cli("report", *world.args(), "--top", "-1", cwd=tmp_path)
    assert r.code == 2
    assert "Traceback" not in r.stderr

    out = tmp_path / "missing-dir" / "r.html"
    r = run_cli("report", *world.args(), "-o", str(out), cwd=tmp_path)
    assert r.code == 2
    assert_one_line(r.stderr, "cannot write")
    assert not out.parent.exists()
    assert list(tmp_path.glob("**/*.partial")) == []


def test_no_database_yet(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    r = run_cli("report", *world.args(), cwd=tmp_path)
    assert r.code == 2
    assert_one_line(r.stderr, "no database at")
    assert not (tmp_path / "data" / "residency.db").exists()  # the report creates nothing
