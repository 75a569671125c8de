"""What one placement decision costs with every preset composed, before and after a change.

    python bench/policy.py                       # against the commit before the cumulative model
    python bench/policy.py --baseline HEAD~3     # against any other revision
    python bench/policy.py --put                 # also the small-PUT rate, both revisions

Measured in the same invocation, alternating rounds (the best round of each counts, so load on
a shared machine skews both alike):

- `current/all`: this tree's evaluator, a policy that extends every shipped preset;
- `current/default`: this tree's evaluator, `preset:default`;
- `baseline/default`: the baseline revision's evaluator (checked out into a temporary git
  worktree and run in a subprocess), `preset:default`, on the same objects and locations.

Objects cycle through classes x subjects x counts (including unclassified and unknown
subjects); candidates are the six built-in locations. Printed: microseconds per decision and
the ratio of each to `baseline/default`. With `--put`, `bench/gateway.py --quick --only
residency` runs from both trees and the 4 KiB GET and PUT rates are compared the same way.
Not part of the test suite: it prints figures and ratios, it does not pass or fail.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = "6f580fb"  # the last commit of the first-match model

# Runs in either tree: only APIs both evaluators share (load_policy, ObjectAttrs, evaluate).
TIMER = textwrap.dedent(
    """
    import json, sys, time, tempfile, pathlib
    from residency.catalog import load_catalog
    from residency.defaults import default_locations
    from residency.policy import ObjectAttrs, evaluate, load_policy, preset_names
    spec, rounds, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if spec == "all":
        f = pathlib.Path(tempfile.mkdtemp()) / "all.yaml"
        f.write_text("name: all\\nextends: [" + ", ".join(preset_names()) + "]\\n")
        spec = str(f)
    policy = load_policy(spec)
    catalog = load_catalog()
    facts = [catalog.facts_for(c) for c in default_locations()]
    classes = ["personal", "personal.health", "genomic", "public", "geolocation", "unclassified"]
    subjects = ["US", "DE", "CN", None, "IN", "RU", "AU", "FR"]
    objs = [ObjectAttrs(c, s, k) for c in classes for s in subjects for k in (None, 50, 50000)]
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for i in range(n):
            evaluate(policy, objs[i % len(objs)], facts)
        best = min(best, (time.perf_counter() - t) / n)
    print(json.dumps({"us": best * 1e6, "rules": len(policy.rules)}))
    """
)


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """The baseline revision, checked out beside the repo and removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="residency-baseline-"))
    path = tmp / "tree"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), rev],
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)],
            capture_output=True,
        )


def time_decisions(tree: Path, spec: str, rounds: int, n: int) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", TIMER, spec, str(rounds), str(n)],
        env={"PYTHONPATH": str(tree / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"timing {spec} in {tree} failed:\n{proc.stderr[-2000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def small_rates(tree: Path) -> tuple[float, float]:
    """4 KiB (GET, PUT) req/s from `bench/gateway.py --quick --only residency` run in `tree`."""
    proc = subprocess.run(
        [sys.executable, "bench/gateway.py", "--quick", "--only", "residency"],
        cwd=tree,
        env={"PYTHONPATH": str(tree / "src"), "PATH": "/usr/local/bin:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    row = re.search(r"^residency {2,}(.*)$", proc.stdout, re.M)
    if proc.returncode != 0 or row is None:
        raise SystemExit(
            f"gateway bench in {tree} failed:\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}"
        )
    # Columns: GET 64 MiB, PUT 64 MiB, GET 4 KiB, p99, PUT 4 KiB, p99.
    cells = re.split(r" {2,}", row.group(1).strip())
    get, put = (float(cells[i].split()[0].replace(",", "")) for i in (2, 4))
    return get, put


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision to compare")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("-n", type=int, default=20000, help="decisions per round")
    parser.add_argument("--put", action="store_true", help="also compare the small-PUT rate")
    args = parser.parse_args()
    with worktree(args.baseline) as base:
        figures: dict[str, dict[str, float]] = {}
        for _ in range(2):  # alternate, keep the best of both passes
            for name, tree, spec in (
                ("baseline/default", base, "preset:default"),
                ("current/default", REPO, "preset:default"),
                ("current/all", REPO, "all"),
            ):
                got = time_decisions(tree, spec, args.rounds, args.n)
                if name not in figures or got["us"] < figures[name]["us"]:
                    figures[name] = got
        ref = figures["baseline/default"]["us"]
        print(f"{'variant':<18} {'rules':>5} {'us/decision':>12} {'vs baseline':>12}")
        for name, got in figures.items():
            print(f"{name:<18} {int(got['rules']):>5} {got['us']:>12.2f} {got['us'] / ref:>11.2f}x")
        if args.put:
            (get0, put0), (get1, put1) = small_rates(base), small_rates(REPO)
            print(
                f"GET 4 KiB: baseline {get0:,.0f} req/s, current {get1:,.0f} req/s, "
                f"ratio {get1 / get0:.2f}"
            )
            print(
                f"PUT 4 KiB: baseline {put0:,.0f} req/s, current {put1:,.0f} req/s, "
                f"ratio {put1 / put0:.2f}"
            )


if __name__ == "__main__":
    main()
