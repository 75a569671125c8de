"""A bucket's own policy (`residency bucket policy BUCKET FILE`) that can no longer be loaded,
the file deleted or no longer valid: every command that judges objects stops with one line
naming the bucket and the file, and exit code 2, never a traceback (the gateway refuses the
bucket's writes for the same reason)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_support import World, run_cli

GERMANY = (
    "name: germany\nrules:\n  - id: all-in-germany\n    constraints: {allow_countries: [DE]}\n"
)


def _break(policy: Path, how: str) -> None:
    if how == "deleted":
        policy.unlink()
    else:  # still YAML, no longer a policy: a rule with an unknown constraint
        policy.write_text(
            "name: germany\nrules:\n  - id: all-in-germany\n    constraints: {allow_planets: [X]}\n"
        )


@pytest.mark.parametrize("how", ["deleted", "invalid"])
def test_every_command_that_judges_objects_stops_in_one_line(world: World, how: str) -> None:
    germany = world.root / "germany.yaml"
    germany.write_text(GERMANY)
    set_it = run_cli("bucket", "policy", "media", str(germany), *world.args(), cwd=world.root)
    assert set_it.code == 0, set_it.stderr
    plan_file = world.root / "plan.jsonl"
    made = run_cli("plan", *world.args(), "-o", str(plan_file), cwd=world.root)
    assert made.code in (0, 1), made.stderr
    assert any(json.loads(line).get("key") == "public/video.mp4" for line in plan_file.open())
    _break(germany, how)

    replan = world.root / "replan.jsonl"
    commands = {
        "plan": ["plan", "-o", str(replan)],
        "report": ["report", "-o", str(world.root / "report.html")],
        "report --json": ["report", "--json"],
        "migrate": ["migrate", str(plan_file)],
        "policy diff": ["policy", "diff", str(world.policy), "preset:default"],
        "scan": ["scan"],
    }
    for name, args in commands.items():
        done = run_cli(*args, *world.args(), cwd=world.root)
        assert "Traceback" not in done.stderr, (name, done.stderr)
        assert done.code == 2, (name, done.code, done.stderr)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, (name, done.stderr)
        assert lines[0].startswith("error: bucket media: its policy "), (name, lines[0])
        assert str(germany) in lines[0], (name, lines[0])
        assert ("file not found" if how == "deleted" else "allow_planets") in lines[0]
        assert "residency bucket policy media" in lines[0]  # how to fix it
    # No half-written plan or report is left for someone to run or read.
    assert not replan.exists()
    assert not replan.with_name(replan.name + ".partial").exists()
    assert not (world.root / "report.html").exists()
    # Once the bucket's policy is fixed (here: cleared), the same commands run again.
    cleared = run_cli("bucket", "policy", "media", "--clear", *world.args(), cwd=world.root)
    assert cleared.code == 0, cleared.stderr
    again = run_cli("plan", "-o", str(replan), *world.args(), cwd=world.root)
    assert again.code in (0, 1), again.stderr
    assert replan.exists()
