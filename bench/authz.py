"""What access governance costs a request: Cedar authorize() and the bulk-data ledger.

    python bench/authz.py              # 20000 decisions per round
    python bench/authz.py -n 5000      # quicker

Variants, each measured in alternating rounds (the best round of each counts, so background
load on a shared machine skews them alike):

- `noop`: the same request objects (principal, object, context) and a pure-Python ownership
  check (`resource.tenant == principal.tenant`): the floor any authorizer pays;
- `cedar`: `Authorizer.authorize()` with the built-in policies (ownership + DOJ forbids);
- `cedar+20`: the same with 20 extra operator policies (forbids and permits with conditions);
- `batch`: `authorize_batch()` of 50 decisions per call (DeleteObjects), per decision;
- `ledger`: one `Ledger.charge()` per SQLite write transaction, against an empty transaction.

Printed: decisions per second, microseconds per decision and the ratio to `noop`, then the
ledger's cost per charge and its ratio to the empty transaction. The gateway's per-request
overhead is `cedar` microseconds on top of a request that already costs milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from residency.access import (
    AccessDecision,
    Action,
    Authorizer,
    Ledger,
    ObjectRef,
    PrincipalRef,
    RequestContext,
)
from residency.meta import Database

PRINCIPAL = PrincipalRef("acme", "alice", country="US", organisation="Acme Corp")
OBJECT = ObjectRef(
    "acme-data",
    "patients/2026/11/records-0001.parquet",
    "acme",
    "personal.health",
    "US",
    5000,
    frozenset({"US", "DE"}),
    "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
)
CONTEXT = RequestContext(source_ip="10.1.2.3", purpose="treatment")


def _extra_policies(directory: Path) -> Path:
    lines = []
    for i in range(10):
        lines.append(
            f'@id("deny-prefix-{i}")\n'
            'forbid (principal, action == Action::"ReadObject", resource is Object)\n'
            f'when {{ resource.key like "quarantine-{i}/*" }};\n'
        )
        lines.append(
            f'@id("share-{i}")\n'
            f'permit (principal in Tenant::"partner-{i}", action == Action::"ReadObject", '
            "resource)\n"
            f'when {{ resource in Bucket::"shared-{i}" && context.purpose == "research" }};\n'
        )
    path = directory / "extra.cedar"
    path.write_text("".join(lines))
    return path


def _noop(principal: PrincipalRef, action: Action, obj: ObjectRef, ctx: RequestContext) -> bool:
    ctx.to_cedar()  # the context rendering every variant pays
    return obj.tenant == principal.tenant


def _round(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


async def _ledger_rounds(n: int, rounds: int, workdir: Path) -> tuple[float, float]:
    db = Database(f"sqlite+aiosqlite:///{workdir / 'bench.db'}")
    await db.migrate()
    ledger = Ledger()
    covered = PrincipalRef("acme", "li", country="CN", covered_person=True, security_controls=True)
    counter = 0

    async def empty() -> None:
        async with db.session():
            pass

    async def charged() -> None:
        nonlocal counter
        counter += 1
        obj = ObjectRef(
            "acme-data", f"k{counter}", "acme", "personal.health", "US", 1, version_id="v"
        )
        async with db.session() as session:
            await ledger.charge(session, covered, obj)

    best = {"empty": float("inf"), "ledger": float("inf")}
    try:
        for _ in range(rounds):
            for name, fn in (("empty", empty), ("ledger", charged)):
                start = time.perf_counter()
                for _ in range(n):
                    await fn()
                best[name] = min(best[name], (time.perf_counter() - start) / n)
    finally:
        await db.dispose()
    return best["empty"], best["ledger"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=20000, help="decisions per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ledger-n", type=int, default=500, help="ledger charges per round")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="residency-bench-authz-") as tmp:
        workdir = Path(tmp)
        plain = Authorizer.from_files()
        extended = Authorizer.from_files([_extra_policies(workdir)])
        check: AccessDecision = plain.authorize(PRINCIPAL, Action.READ_OBJECT, OBJECT, CONTEXT)
        assert check.allowed, check
        assert check.policy_ids == ("tenant-ownership",), check
        assert extended.authorize(PRINCIPAL, Action.READ_OBJECT, OBJECT, CONTEXT).allowed
        batch_items = [(Action.DELETE_OBJECT, OBJECT)] * 50

        variants: dict[str, tuple[Callable[[], object], int]] = {
            "noop": (lambda: _noop(PRINCIPAL, Action.READ_OBJECT, OBJECT, CONTEXT), 1),
            "cedar": (lambda: plain.authorize(PRINCIPAL, Action.READ_OBJECT, OBJECT, CONTEXT), 1),
            "cedar+20": (
                lambda: extended.authorize(PRINCIPAL, Action.READ_OBJECT, OBJECT, CONTEXT),
                1,
            ),
            "batch": (lambda: plain.authorize_batch(PRINCIPAL, batch_items, CONTEXT), 50),
        }
        best = {name: float("inf") for name in variants}
        for _ in range(args.rounds):
            for name, (fn, per_call) in variants.items():
                calls = max(args.n // per_call, 1)
                best[name] = min(best[name], _round(fn, calls) / per_call)

        print(f"{'variant':<10} {'decisions/s':>12} {'us/decision':>12} {'x noop':>8}")
        for name, secs in best.items():
            print(f"{name:<10} {1 / secs:>12,.0f} {secs * 1e6:>12.1f} {secs / best['noop']:>8.1f}")
        print(
            f"cedar evaluation adds {(best['cedar'] - best['noop']) * 1e6:.0f} us per request "
            f"({(best['cedar+20'] - best['noop']) * 1e6:.0f} us with 20 operator policies)"
        )

        empty, charged = asyncio.run(_ledger_rounds(args.ledger_n, args.rounds, workdir))
        print(
            f"ledger: empty write transaction {empty * 1e3:.2f} ms, with charge "
            f"{charged * 1e3:.2f} ms, ratio {charged / empty:.2f}"
        )


if __name__ == "__main__":
    main()
