"""Every command the policy README shows runs as it says (exit code in a trailing `# exit N`),
and what it says about the model holds for that command's output."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from testkit import run_cli

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "src" / "residency" / "policy" / "README.md"


def _commands() -> list[tuple[list[str], int]]:
    out = []
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), re.S):
        for line in block.splitlines():
            if not line.startswith("residency "):
                continue
            command, _, comment = line.partition("#")
            code = re.match(r"\s*exit (\d)", comment)
            out.append((shlex.split(command)[1:], int(code.group(1)) if code else 0))
    return out


def test_every_command_in_the_policy_readme_runs_as_documented() -> None:
    commands = _commands()
    assert len(commands) >= 6
    for args, code in commands:
        r = run_cli(*args, cwd=ROOT)
        assert r.code == code, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr


def test_the_readme_examples_say_what_the_model_promises() -> None:
    both = run_cli(
        "policy",
        "explain",
        "preset:default",
        "--class",
        "personal",
        "--subject",
        "DE,US",
        "--json",
        cwd=ROOT,
    )
    decision = json.loads(both.stdout)["decision"]
    assert {r["id"] for r in decision["rules"]} == {
        "gdpr-eea-or-adequate",
        "clean-cloud-us-personal",
    }
    nobody = run_cli("policy", "explain", "preset:default", "--class", "personal", cwd=ROOT)
    assert "the rules conflict" in nobody.stdout
    assert "x-amz-meta-residency-subject" in nobody.stdout
    typo = run_cli(
        "policy", "explain", "preset:default", "--class", "health", "--subject", "US", cwd=ROOT
    )
    assert "did you mean personal.health?" in typo.stderr
