"""What a compliance report says, as plain data: the HTML and the `--json` output share it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from residency.migrate.leftovers import Leftover
from residency.migrate.scan import ScanResult


@dataclass(frozen=True, slots=True)
class Usage:
    """Data held under one heading (a location, country, provider or region).

    `objects` counts distinct objects with a copy there; `bytes` counts every replica held
    there (what sits on disk), so two US copies of one object count twice in the US bytes.
    """

    key: str
    label: str
    objects: int
    bytes: int


@dataclass(frozen=True, slots=True)
class LocationUsage:
    location: str
    configured: bool
    provider: str | None
    provider_name: str | None
    region: str | None
    city: str | None
    country: str | None
    country_name: str | None
    vendor_hq: str | None
    objects: int
    bytes: int


@dataclass(frozen=True, slots=True)
class Violation:
    """One object version (current or noncurrent) the policy does not allow where it is, and
    the planner's fix. `version` is the internal id; `noncurrent` is S3's version id when the
    version is not the current one of its key (None when it is)."""

    bucket: str
    key: str
    version: str
    size: int
    data_class: str
    subject: str | None
    locations: tuple[str, ...]
    rule: str | None
    reasons: tuple[str, ...]
    fix: str
    copy_to: tuple[str, ...] = ()
    delete_from: tuple[str, ...] = ()
    source: str | None = None
    unplaceable: bool = False
    noncurrent: str | None = None


@dataclass(frozen=True, slots=True)
class FixCost:
    """The planner's estimate of fixing every violation (`residency plan` writes the actions)."""

    objects: int = 0
    bytes: int = 0
    copies: int = 0
    copy_bytes: int = 0
    deletes: int = 0
    delete_bytes: int = 0
    unplaceable: int = 0
    unplaceable_bytes: int = 0
    egress_usd: float = 0.0
    egress_usd_by_provider: dict[str, float] = field(default_factory=dict)
    egress_unpriced_bytes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RuleUse:
    rule: str
    citation: str
    source: str
    objects: int
    bytes: int
    violations: int


@dataclass(frozen=True, slots=True)
class AuditKindSummary:
    kind: str
    count: int
    recent: list[dict[str, Any]]
    """newest first, at most `AuditSummary.limit`"""


@dataclass(frozen=True, slots=True)
class AuditSummary:
    since: str | None
    limit: int
    kinds: list[AuditKindSummary]


@dataclass(frozen=True, slots=True)
class Concern:
    """Data with vendors headquartered in a country of concern (28 CFR 202.601)."""

    group: str
    countries: tuple[str, ...]
    objects: int
    bytes: int
    locations: list[LocationUsage]


@dataclass(frozen=True, slots=True)
class Report:
    generated_at: str
    policy: dict[str, Any]
    totals: dict[str, int]
    locations: list[LocationUsage]
    by_country: list[Usage]
    by_provider: list[Usage]
    by_region: list[Usage]
    violations_total: int
    violations_bytes: int
    violations: list[Violation]
    """the largest `violations_limit` violations, biggest first"""
    violations_limit: int
    fix: FixCost
    rules: list[RuleUse]
    concern: Concern
    audit: AuditSummary
    leftovers: list[Leftover] = field(default_factory=list)
    """bytes still at locations the policy forbids though no placement says so (blobs a
    migration released but has not erased yet, parts of open uploads): out of compliance"""
    scan: ScanResult | None = None
    """the drift scan (`report --scan`): what the locations really hold against the metadata"""
    chain: dict[str, Any] = field(default_factory=dict)
    """the audit chain walked end to end (`audit verify` without signatures) and its newest
    signed checkpoint: a report on a broken chain is not evidence"""

    @property
    def leftover_blobs(self) -> int:
        return sum(x.blobs for x in self.leftovers)

    @property
    def compliant(self) -> bool:
        drift = self.scan.drift if self.scan is not None else 0
        chain_ok = self.chain.get("ok", True)
        return not self.violations_total and not self.leftovers and not drift and chain_ok

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["scan"] = self.scan.to_dict() if self.scan is not None else None
        out["leftover_blobs"] = self.leftover_blobs
        out["leftover_bytes"] = sum(x.bytes for x in self.leftovers)
        out["compliant"] = self.compliant
        return out
