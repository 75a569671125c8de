"""`residency plan`: where every object version is vs where the policy wants it, as actions.

Every version with bytes is planned by its own classification: a noncurrent version of a
versioned bucket is moved like the current one (its lines name it: `"noncurrent"` carries S3's
version id); delete markers hold no bytes and are never planned.

Rows stream from the database in id-ordered batches (three indexed queries per batch), so
memory stays flat at millions of objects. The evaluator is pure and reads only the data class,
subject, subject count, tenant and bucket, so decisions are cached per distinct tuple of those
(`Decider`, shared with the engine, which re-decides every copy on the stored classification).
The header records digests of the policy and catalog the plan is made under: the engine
refuses to run it after either changed.

Per object: `copy` = chosen locations it is not at yet; `delete` = locations it is at that
the policy does not allow (after the copies verify). Placements at allowed but not chosen
locations are kept (compliant; trimming extra replicas is not a residency question). The read
source is the current placement with the cheapest egress.
"""

from __future__ import annotations

import json
import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from residency.catalog.facts import LocationFacts
from residency.meta import Database
from residency.meta.repo.inventory import versions_with_bytes
from residency.meta.types import utcnow
from residency.migrate.decide import MAX_CACHED, Decider
from residency.migrate.planfile import (
    PlanAction,
    PlanHeader,
    Unplaceable,
    catalog_digest,
    policy_digest,
    write_line,
)
from residency.policy import Decision, Policy
from residency.policy.evaluate import spread_key
from residency.policy.model import Spread

__all__ = [
    "GET_USD_PER_1000",
    "PUT_USD_PER_1000",
    "PlanSummary",
    "Planner",
    "plan_to_file",
]

GIB = 1 << 30
_str = json.encoder.encode_basestring  # JSON string literal, C-accelerated
# The catalog has no request prices; these are S3 Standard list prices (us-east-1), a fair
# middle of what the big clouds charge. Shown as an estimate.
PUT_USD_PER_1000 = 0.005
GET_USD_PER_1000 = 0.0004
PART_SIZE = 8 << 20  # storage uploads big blobs in parts of this size: one PUT each
UNPLACEABLE_SAMPLE = 20


@dataclass
class PlanSummary:
    objects: int = 0
    """object versions with bytes, current and noncurrent"""
    bytes: int = 0
    noncurrent: int = 0
    """of `objects`, noncurrent versions (versioned buckets)"""
    noncurrent_bytes: int = 0
    keep: int = 0
    moves: int = 0
    copies: int = 0
    copy_bytes: int = 0
    deletes: int = 0
    delete_bytes: int = 0
    unplaceable: int = 0
    unplaceable_bytes: int = 0
    no_source: int = 0
    egress_usd_by_provider: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    unpriced_egress_bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    """egress from providers whose price the catalog does not know (not in the USD total)"""
    routes: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    gets: int = 0
    puts: int = 0
    delete_requests: int = 0
    unplaceable_sample: list[dict[str, Any]] = field(default_factory=list)
    decisions: int = 0

    @property
    def egress_usd(self) -> float:
        return sum(self.egress_usd_by_provider.values())

    @property
    def request_usd(self) -> float:
        return (self.puts + self.delete_requests) / 1000 * PUT_USD_PER_1000 + (
            self.gets / 1000 * GET_USD_PER_1000
        )

    def duration_s(self, bandwidth: int) -> float:
        return self.copy_bytes / bandwidth if bandwidth > 0 else 0.0

    def to_dict(self, bandwidth: int) -> dict[str, Any]:
        return {
            "objects": self.objects,
            "bytes": self.bytes,
            "noncurrent_versions": self.noncurrent,
            "noncurrent_bytes": self.noncurrent_bytes,
            "keep": self.keep,
            "moves": self.moves,
            "copies": self.copies,
            "copy_bytes": self.copy_bytes,
            "deletes": self.deletes,
            "delete_bytes": self.delete_bytes,
            "unplaceable": self.unplaceable,
            "unplaceable_bytes": self.unplaceable_bytes,
            "egress_usd_by_provider": {
                k: round(v, 6) for k, v in sorted(self.egress_usd_by_provider.items())
            },
            "egress_usd": round(self.egress_usd, 6),
            "egress_unpriced_bytes": dict(sorted(self.unpriced_egress_bytes.items())),
            "requests": {"get": self.gets, "put": self.puts, "delete": self.delete_requests},
            "request_usd": round(self.request_usd, 6),
            "bandwidth": bandwidth,
            "duration_s": round(self.duration_s(bandwidth), 3),
            "routes": {
                route: {"objects": n, "bytes": b} for route, (n, b) in sorted(self.routes.items())
            },
            "unplaceable_sample": self.unplaceable_sample,
            "distinct_decisions": self.decisions,
        }


def _egress_price(facts: LocationFacts | None) -> float:
    if facts is None or facts.egress_usd_per_gb is None:
        return math.inf
    return facts.egress_usd_per_gb


class Planner:
    """Turns (object, current placements) into an action, counting everything on the way."""

    def __init__(self, policy: Policy, candidates: Sequence[LocationFacts]) -> None:
        self.policy = policy
        self.candidates = tuple(candidates)
        self.facts = {f.name: f for f in candidates}
        self.summary = PlanSummary()
        self.decider = Decider(policy, candidates)
        self._shapes: dict[
            tuple[str, str | None, int | None, str | None, str, str | None, tuple[str, ...]], Shape
        ] = {}

    def decide(
        self,
        data_class: str,
        subject: str | None,
        tenant: str | None,
        bucket: str,
        subject_count: int | None = None,
        bucket_policy: str | None = None,
    ) -> Decision:
        decision = self.decider.decide(
            data_class, subject, tenant, bucket, subject_count, bucket_policy
        )
        self.summary.decisions = self.decider.evaluations
        return decision

    def _copies(self, decision: Decision, placements: Sequence[str]) -> tuple[str, ...]:
        """Destinations that complete the replica set, keeping compliant copies it has.

        Compliant placements count towards the replicas (one per spread key); the rest are
        filled greedily in the policy's preference order, as the evaluator picks them.
        """
        used: dict[Spread, set[str]] = {s: set() for s in decision.spreads}

        def fits(facts: LocationFacts) -> bool:
            keys = [(s, spread_key(facts, s)) for s in decision.spreads]
            if any(k is None or k in used[s] for s, k in keys):
                return False
            for s, k in keys:
                used[s].add(k)  # type: ignore[arg-type]
            return True

        kept = sum(
            1
            for loc in placements
            if loc in decision.allowed
            and (facts := self.facts.get(loc)) is not None
            and fits(facts)
        )
        need = len(decision.chosen) - kept
        copies: list[str] = []
        preference = list(decision.chosen) + [
            a for a in decision.allowed if a not in decision.chosen
        ]
        for loc in preference:
            if need <= 0:
                break
            if loc in placements or loc not in self.facts:
                continue
            if not fits(self.facts[loc]):
                continue
            copies.append(loc)
            need -= 1
        return tuple(copies)

    def shape(
        self,
        data_class: str,
        subject: str | None,
        tenant: str | None,
        bucket: str,
        placements: tuple[str, ...],
        subject_count: int | None = None,
        bucket_policy: str | None = None,
    ) -> Shape:
        """What to do with any object of these attributes at these placements (cached)."""
        cache_key = (data_class, subject, subject_count, tenant, bucket, bucket_policy, placements)
        shape = self._shapes.get(cache_key)
        if shape is None:
            if len(self._shapes) >= MAX_CACHED:
                self._shapes.clear()
            decision = self.decide(
                data_class, subject, tenant, bucket, subject_count, bucket_policy
            )
            shape = self._shape(decision, placements)
            self._shapes[cache_key] = shape
        return shape

    def _shape(self, decision: Decision, placements: tuple[str, ...]) -> Shape:
        if not decision.ok:
            return Shape(unplaceable=decision.message)
        allowed = set(decision.allowed)
        copy_to = self._copies(decision, placements)
        # Only drop what we know to be non-compliant: placements at locations this process
        # has no facts for are left alone.
        delete_from = tuple(
            sorted(loc for loc in set(placements) if loc in self.facts and loc not in allowed)
        )
        if not copy_to and not delete_from:
            return Shape()
        src: str | None = None
        egress: list[tuple[str, float | None]] = []
        if copy_to:
            readable = [loc for loc in placements if loc in self.facts]
            if not readable:
                return Shape(
                    unplaceable=(
                        f"no configured location holds it (placements: {', '.join(placements)})"
                    ),
                    no_source=True,
                )
            # Cheapest egress first; among equals prefer a copy that stays (fewer surprises).
            src = min(
                readable,
                key=lambda loc: (_egress_price(self.facts.get(loc)), loc not in allowed, loc),
            )
            src_facts = self.facts[src]
            for dst in copy_to:
                dst_facts = self.facts.get(dst)
                if dst_facts is not None and (src_facts.provider, src_facts.region) == (
                    dst_facts.provider,
                    dst_facts.region,
                ):
                    continue  # same region: no egress
                egress.append((src_facts.provider, src_facts.egress_usd_per_gb))
        tail = json.dumps(
            {"src": src, "copy": list(copy_to), "delete": list(delete_from), "rule": decision.rule},
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return Shape(
            move=True,
            src=src,
            copy_to=copy_to,
            delete_from=delete_from,
            rule=decision.rule,
            routes=tuple(f"{src} -> {d}" for d in copy_to),
            egress=tuple(egress),
            tail="," + tail[1:],
        )

    def account(
        self,
        shape: Shape,
        bucket: str,
        key: str,
        size: int,
        segments: int,
        noncurrent: str | None = None,
    ) -> None:
        """Add one object version with this shape to the summary (`noncurrent`: its S3
        version id when it is not the current one)."""
        s = self.summary
        s.objects += 1
        s.bytes += size
        if noncurrent is not None:
            s.noncurrent += 1
            s.noncurrent_bytes += size
        if shape.unplaceable is not None:
            s.unplaceable += 1
            s.unplaceable_bytes += size
            s.no_source += shape.no_source
            if len(s.unplaceable_sample) < UNPLACEABLE_SAMPLE:
                item = {"bucket": bucket, "key": key, "reason": shape.unplaceable}
                if noncurrent is not None:
                    item["noncurrent"] = noncurrent
                s.unplaceable_sample.append(item)
            return
        if not shape.move:
            s.keep += 1
            return
        s.moves += 1
        ncopies = len(shape.copy_to)
        if ncopies:
            parts = max(segments, -(-size // PART_SIZE)) if size else segments
            s.copies += ncopies
            s.copy_bytes += size * ncopies
            s.gets += segments * ncopies
            s.puts += parts * ncopies
            for route in shape.routes:
                r = s.routes[route]
                r[0] += 1
                r[1] += size
            for provider, price in shape.egress:
                if price is None:
                    s.unpriced_egress_bytes[provider] += size
                else:
                    s.egress_usd_by_provider[provider] += size / GIB * price
        ndeletes = len(shape.delete_from)
        s.deletes += ndeletes
        s.delete_bytes += size * ndeletes
        s.delete_requests += segments * ndeletes

    def plan_object(
        self,
        *,
        bucket: str,
        key: str,
        version_id: str,
        size: int,
        segments: int,
        data_class: str,
        subject: str | None,
        tenant: str | None,
        placements: Sequence[str],
        subject_count: int | None = None,
        noncurrent: str | None = None,
    ) -> PlanAction | Unplaceable | None:
        """The action for one object version, or None when it is where it should be."""
        placed = tuple(placements)
        shape = self.shape(data_class, subject, tenant, bucket, placed, subject_count)
        self.account(shape, bucket, key, size, segments, noncurrent)
        if shape.unplaceable is not None:
            return Unplaceable(bucket, key, version_id, size, placed, shape.unplaceable, noncurrent)
        if not shape.move:
            return None
        return PlanAction(
            bucket=bucket,
            key=key,
            version_id=version_id,
            size=size,
            segments=segments,
            src=shape.src,
            copy_to=shape.copy_to,
            delete_from=shape.delete_from,
            rule=shape.rule,
            noncurrent=noncurrent,
        )


@dataclass(frozen=True, slots=True)
class Shape:
    """The action for every object with the same attributes and placements."""

    move: bool = False
    unplaceable: str | None = None
    no_source: bool = False
    src: str | None = None
    copy_to: tuple[str, ...] = ()
    delete_from: tuple[str, ...] = ()
    rule: str | None = None
    routes: tuple[str, ...] = ()
    egress: tuple[tuple[str, float | None], ...] = ()
    tail: str = ""
    """the action's JSON after the per-object fields, pre-encoded"""


async def plan_to_file(
    db: Database,
    policy: Policy,
    candidates: Sequence[LocationFacts],
    out: IO[str],
    *,
    bucket: str | None = None,
    bandwidth: int = 100_000_000,
    batch_size: int = 20_000,
) -> tuple[PlanHeader, PlanSummary]:
    """Stream the plan for every object version with bytes (of `bucket`) into `out`."""
    planner = Planner(policy, candidates)
    header = PlanHeader(
        id=uuid.uuid4().hex,
        created=utcnow().isoformat(),
        policy=policy.name,
        bucket=bucket,
        bandwidth=bandwidth,
        policy_sha256=policy_digest(policy),
        catalog_sha256=catalog_digest(candidates),
    )
    write_line(out, header.to_line())
    async for batch in versions_with_bytes(db, bucket=bucket, batch_size=batch_size):
        lines: list[str] = []
        for row in batch:
            shape = planner.shape(
                row.data_class,
                row.subject,
                row.tenant,
                row.bucket,
                row.placements,
                row.subject_count,
                row.bucket_policy,
            )
            planner.account(shape, row.bucket, row.key, row.size, row.segments, row.noncurrent)
            if shape.move:
                noncurrent = (
                    "" if row.noncurrent is None else f',"noncurrent":{_str(row.noncurrent)}'
                )
                lines.append(
                    f'{{"op":"move","bucket":{_str(row.bucket)},"key":{_str(row.key)},'
                    f'"version":{_str(row.version_id)}{noncurrent},"size":{row.size},'
                    f'"segments":{row.segments}{shape.tail}\n'
                )
            elif shape.unplaceable is not None:
                item = Unplaceable(
                    row.bucket,
                    row.key,
                    row.version_id,
                    row.size,
                    row.placements,
                    shape.unplaceable,
                    row.noncurrent,
                )
                lines.append(json.dumps(item.to_line(), ensure_ascii=False) + "\n")
        out.write("".join(lines))
    summary = planner.summary
    write_line(out, {"summary": summary.to_dict(bandwidth)})
    return header, summary
