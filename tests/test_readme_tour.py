"""The README tour's first part (catalog and policy), command for command, as a new user types
it in a fresh clone: each runs, exits 0 and says what the comment beside it promises. The
migration part runs in tests/migrate/test_tour.py, the rest of the README's commands (and
docs/'s) in tests/gateway/test_docs_commands.py."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from testkit import run_cli

REPO = Path(__file__).resolve().parents[1]


def _first_part() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    found = re.search(r"```sh\n(.*?)```", text[text.index("## A short tour") :], re.S)
    assert found is not None
    lines = found.group(1).replace("\\\n", " ").splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith("# Use the gateway"))
    out = []
    for line in lines[:end]:
        command = line.split(" #", 1)[0].split(" | ", 1)[0].strip()
        if command.startswith("residency "):
            out.append(shlex.split(command)[1:])
    return out


def test_the_catalog_and_policy_part_of_the_tour(tmp_path: Path) -> None:
    commands = _first_part()
    assert len(commands) >= 9
    outputs = {}
    for args in commands:
        r = run_cli(*args, cwd=REPO)
        assert r.code == 0, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
        outputs[" ".join(args)] = r.stdout
    eea = json.loads(outputs["catalog regions --group EEA --json"])
    assert len(eea) > 50
    both = outputs["policy explain preset:default --class personal --subject US,DE"]
    assert "gdpr-eea-or-adequate" in both
    assert "clean-cloud-us-personal" in both
    health = outputs["policy explain preset:default --class personal.health --subject US"]
    assert "doj-bulk-sensitive" in health
    assert "alibaba-ap-southeast-1" in health  # excluded, with its reason
    assert (
        "passed, 0 failed"
        in outputs["policy test preset:eu-gdpr src/residency/policy/cases/eu-gdpr.yaml"]
    )
