"""What a policy change would break, before it is applied: `residency policy diff OLD NEW`.

Every object version with bytes (current and noncurrent: residency applies to every version;
delete markers hold none) is judged twice, by the planner under the old and under the new
policy (each narrowed by the object's bucket policy, as everywhere else). An object that is
where the old policy allows but not where the new one does *breaks*: it is counted with its
bytes, where it would have to go, what moving it would cost in egress, and which new rules
exclude it. Objects already out of bounds, or put right by the change, are counted apart.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from residency.catalog.facts import LocationFacts
from residency.meta import Database
from residency.meta.repo.inventory import VersionRow, versions_with_bytes
from residency.migrate.planner import GIB, Planner, Shape
from residency.policy import Policy

SAMPLE = 20


@dataclass
class PolicyDiff:
    old: str
    new: str
    objects: int = 0  # object versions with bytes, current and noncurrent
    bytes: int = 0
    noncurrent: int = 0  # of which noncurrent versions
    breaking: int = 0
    breaking_bytes: int = 0
    unplaceable: int = 0  # breaking objects the new policy allows nowhere
    unplaceable_bytes: int = 0
    fixed: int = 0  # out of bounds under the old policy, in bounds under the new
    fixed_bytes: int = 0
    already: int = 0  # out of bounds under both
    already_bytes: int = 0
    destinations: Counter[str] = field(default_factory=Counter)  # bytes that would go there
    leaving: Counter[str] = field(default_factory=Counter)  # bytes that would have to leave
    rules: Counter[str] = field(default_factory=Counter)  # breaking objects per excluding rule
    egress_usd: float = 0.0
    unpriced_bytes: int = 0
    sample: list[dict[str, Any]] = field(default_factory=list)

    @property
    def breaks(self) -> bool:
        return self.breaking > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old,
            "new": self.new,
            "objects": self.objects,
            "bytes": self.bytes,
            "noncurrent_versions": self.noncurrent,
            "breaking": {"objects": self.breaking, "bytes": self.breaking_bytes},
            "unplaceable": {"objects": self.unplaceable, "bytes": self.unplaceable_bytes},
            "fixed": {"objects": self.fixed, "bytes": self.fixed_bytes},
            "already_out_of_bounds": {"objects": self.already, "bytes": self.already_bytes},
            "destinations_bytes": dict(sorted(self.destinations.items())),
            "leaving_bytes": dict(sorted(self.leaving.items())),
            "rules": dict(self.rules.most_common()),
            "egress_usd": self.egress_usd,
            "egress_unpriced_bytes": self.unpriced_bytes,
            "sample": self.sample,
        }


async def diff_policies(
    db: Database,
    old: Policy,
    new: Policy,
    candidates: Sequence[LocationFacts],
    *,
    bucket: str | None = None,
) -> PolicyDiff:
    out = PolicyDiff(old.name, new.name)
    before, after = Planner(old, candidates), Planner(new, candidates)
    async for batch in versions_with_bytes(db, bucket=bucket):
        for row in batch:
            _judge(out, row, before, after)
    return out


def _shape(planner: Planner, row: VersionRow) -> Shape:
    return planner.shape(
        row.data_class,
        row.subject,
        row.tenant,
        row.bucket,
        row.placements,
        row.subject_count,
        row.bucket_policy,
    )


def _in_bounds(planner: Planner, row: VersionRow) -> bool:
    shape = _shape(planner, row)
    return not shape.move and shape.unplaceable is None


def _judge(out: PolicyDiff, row: VersionRow, old: Planner, new: Planner) -> None:
    out.objects += 1
    out.bytes += row.size
    out.noncurrent += row.noncurrent is not None
    was, now = _in_bounds(old, row), _in_bounds(new, row)
    if was == now:
        if not now:
            out.already += 1
            out.already_bytes += row.size
        return
    if now:
        out.fixed += 1
        out.fixed_bytes += row.size
        return
    out.breaking += 1
    out.breaking_bytes += row.size
    shape = _shape(new, row)
    decision = new.decide(
        row.data_class, row.subject, row.tenant, row.bucket, row.subject_count, row.bucket_policy
    )
    reasons = {
        loc: new.decider.reason(decision, loc)
        for loc in row.placements
        if loc not in decision.allowed
    }
    for loc in reasons:
        out.leaving[loc] += row.size
    for rule in {r for r in decision.rule_ids for why in reasons.values() if f"rule {r}" in why}:
        out.rules[rule] += 1
    if shape.unplaceable is not None:
        out.unplaceable += 1
        out.unplaceable_bytes += row.size
    for loc in shape.copy_to:
        out.destinations[loc] += row.size
    for _provider, price in shape.egress:
        if price is None:
            out.unpriced_bytes += row.size
        else:
            out.egress_usd += row.size / GIB * price
    if len(out.sample) < SAMPLE:
        out.sample.append(
            {
                "bucket": row.bucket,
                "key": row.key,
                "noncurrent": row.noncurrent,
                "size": row.size,
                "data_class": row.data_class,
                "subject": row.subject,
                "at": list(row.placements),
                "copy_to": list(shape.copy_to),
                "why": shape.unplaceable
                or "; ".join(f"{loc}: {r}" for loc, r in reasons.items())
                or f"needs {decision.replicas} compliant copies, has fewer",
            }
        )
