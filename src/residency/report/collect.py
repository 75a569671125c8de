"""Gather a report's facts from the database with SQL aggregates, in bounded memory.

Nothing here loads every object. Where the data sits is a handful of GROUP BY queries over
placements, keyed by location (or by country/provider/region through a CASE over the few
configured locations), so distinct-object counts stay exact. Compliance is decided per group
of objects sharing (class, subject, tenant, bucket, placement set) — the same tuple the
planner caches on — so the policy is evaluated once per group, and only the largest
violations are fetched one by one, group by group, until the top N is settled.

An "object" here is an object version with bytes: a noncurrent version of a versioned bucket
is counted, judged by its own classification and listed (named by its S3 version id) like a
current one; delete markers hold no bytes and are never counted.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    distinct,
    func,
    literal,
    not_,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession

from residency.audit import (
    ACCESS_DENIED,
    REFUSAL,
    THRESHOLD_HIT,
    AuditCheckpoint,
    iter_entries,
    verify,
)
from residency.audit.canonical import format_ts
from residency.catalog import Catalog, CatalogError
from residency.catalog.facts import LocationFacts
from residency.meta import Database
from residency.meta.models import Bucket, ObjectVersion, Placement, Tenant
from residency.meta.repo.inventory import holds_bytes, noncurrent_version
from residency.meta.types import utcnow
from residency.migrate.leftovers import collect_leftovers
from residency.migrate.planner import GIB, Planner, Shape
from residency.migrate.scan import scan_locations
from residency.policy import Decision, Policy
from residency.report.model import (
    AuditKindSummary,
    AuditSummary,
    Concern,
    FixCost,
    LocationUsage,
    Report,
    RuleUse,
    Usage,
    Violation,
)
from residency.storage import Location

__all__ = ["AUDIT_KINDS", "CONCERN_GROUP", "collect_report"]

CONCERN_GROUP = "COUNTRIES_OF_CONCERN"
AUDIT_KINDS = (REFUSAL, ACCESS_DENIED, THRESHOLD_HIT)
UNKNOWN = "?"
MULTI = "multi-country"  # regions like GCS `eu` that span countries
_SEP = ","  # location names are [a-z0-9-]: a comma cannot occur in one
_DETAIL_LIMIT = 300


async def _usage(
    session: AsyncSession, keys: Mapping[str, str] | None
) -> dict[str, tuple[int, int]]:
    """(distinct objects, bytes of every replica) per location, or per heading of `keys`.

    `keys` maps location -> heading (locations it lacks land under UNKNOWN); None groups by
    the location itself. Placements the migration engine is deleting no longer count.
    """
    group: Any
    if keys is None:
        group = Placement.location
    elif keys:
        group = case(dict(keys), value=Placement.location, else_=literal(UNKNOWN))
    else:
        group = literal(UNKNOWN)
    query = (
        select(group, func.count(distinct(ObjectVersion.id)), func.sum(ObjectVersion.size))
        .select_from(Placement)
        .join(ObjectVersion, ObjectVersion.id == Placement.object_version_id)
        .where(holds_bytes(), Placement.state != "deleting")
        .group_by(group)
    )
    rows = (await session.execute(query)).all()
    return {str(k): (int(n), int(b or 0)) for k, n, b in rows}


def _usages(raw: Mapping[str, tuple[int, int]], labels: Mapping[str, str]) -> list[Usage]:
    out = [Usage(key, labels.get(key, "unknown location"), n, b) for key, (n, b) in raw.items()]
    return sorted(out, key=lambda u: (-u.bytes, u.key))


@dataclass
class _Group:
    data_class: str
    subject: str | None
    tenant: str | None
    bucket: str
    placements: tuple[str, ...]
    objects: int
    bytes: int
    max_size: int
    shape: Shape
    decision: Decision
    subject_count: int | None = None
    bucket_policy: str | None = None
    noncurrent: int = 0
    """of `objects`, noncurrent versions"""
    noncurrent_bytes: int = 0


_NONCURRENT = case((ObjectVersion.is_latest == true(), 0), else_=1)
_NONCURRENT_SIZE = case((ObjectVersion.is_latest == true(), 0), else_=ObjectVersion.size)


async def _groups(session: AsyncSession, planner: Planner) -> list[_Group]:
    """Object versions with bytes (current and noncurrent) grouped by everything the
    planner's action depends on."""
    locs = (
        select(
            Placement.object_version_id.label("ovid"),
            func.aggregate_strings(Placement.location, _SEP).label("locs"),
        )
        .where(Placement.state != "deleting")
        .group_by(Placement.object_version_id)
        .subquery()
    )
    query = (
        select(
            ObjectVersion.data_class,
            ObjectVersion.subject,
            Tenant.name,
            Bucket.name,
            locs.c.locs,
            ObjectVersion.subject_count,
            Bucket.policy,
            func.count(),
            func.sum(ObjectVersion.size),
            func.max(ObjectVersion.size),
            func.sum(_NONCURRENT),
            func.sum(_NONCURRENT_SIZE),
        )
        .select_from(ObjectVersion)
        .join(Bucket, Bucket.id == ObjectVersion.bucket_id)
        .join(Tenant, Tenant.id == Bucket.tenant_id)
        .outerjoin(locs, locs.c.ovid == ObjectVersion.id)
        .where(holds_bytes())
        # Everything a decision depends on: the same question the gateway and plan ask.
        .group_by(
            ObjectVersion.data_class,
            ObjectVersion.subject,
            Tenant.name,
            Bucket.name,
            locs.c.locs,
            ObjectVersion.subject_count,
            Bucket.policy,
        )
    )
    merged: dict[
        tuple[str, str | None, str | None, str, tuple[str, ...], int | None, str | None], _Group
    ] = {}
    rows = await session.execute(query)
    for row in rows:
        data_class, subject, tenant, bucket, raw, n, spec, count, total, biggest, old, old_b = row
        # The aggregate's order is unspecified: the same set may come back as two strings.
        placements = tuple(sorted(raw.split(_SEP))) if raw else ()
        key = (data_class, subject, tenant, bucket, placements, n, spec)
        group = merged.get(key)
        if group is None:
            merged[key] = _Group(
                data_class,
                subject,
                tenant,
                bucket,
                placements,
                int(count),
                int(total or 0),
                int(biggest or 0),
                planner.shape(data_class, subject, tenant, bucket, placements, n, spec),
                planner.decide(data_class, subject, tenant, bucket, n, spec),
                n,
                spec,
                int(old or 0),
                int(old_b or 0),
            )
        else:
            group.objects += int(count)
            group.bytes += int(total or 0)
            group.max_size = max(group.max_size, int(biggest or 0))
            group.noncurrent += int(old or 0)
            group.noncurrent_bytes += int(old_b or 0)
    return list(merged.values())


def _violates(group: _Group) -> bool:
    return group.shape.move or group.shape.unplaceable is not None


def _reasons(group: _Group, planner: Planner) -> tuple[str, ...]:
    shape, decision = group.shape, group.decision
    if shape.unplaceable is not None:
        return (shape.unplaceable,)
    why = {e.location: e.reason for e in decision.exclusions}
    reasons = [
        f"{loc}: {why.get(loc, f'not allowed by rule {decision.rule}')}"
        for loc in shape.delete_from
    ]
    if shape.copy_to and not shape.delete_from:
        want = len(decision.chosen)
        have = want - len(shape.copy_to)
        reasons.append(
            f"{have} compliant replica(s) of the {want} that rule {decision.rule} requires"
        )
    return tuple(reasons)


def _fix_text(shape: Shape) -> str:
    if shape.unplaceable is not None:
        return "no compliant location is configured: add one the rule allows"
    steps: list[str] = []
    if shape.copy_to:
        steps.append(f"copy from {shape.src} to {', '.join(shape.copy_to)}")
    if shape.delete_from:
        steps.append(f"delete from {', '.join(shape.delete_from)}")
    return "; then ".join(steps)


def _exact_placements(placements: tuple[str, ...]) -> ColumnElement[bool]:
    """Objects whose live placements are exactly this set (portable: no string aggregates)."""
    live = Placement.object_version_id == ObjectVersion.id
    count = (
        select(func.count())
        .where(live, Placement.state != "deleting")
        .correlate(ObjectVersion)
        .scalar_subquery()
    )
    other = (
        select(Placement.id)
        .where(live, Placement.state != "deleting", Placement.location.not_in(placements))
        .correlate(ObjectVersion)
        .exists()
    )
    if not placements:
        return count == 0
    return and_(count == len(placements), not_(other))


async def _largest(
    session: AsyncSession, groups: Sequence[_Group], planner: Planner, limit: int
) -> list[Violation]:
    """The `limit` largest violating object versions: biggest groups first, stop once none
    can beat."""
    heap: list[tuple[int, _Inverted, _Inverted, _Inverted, Violation]] = []  # smallest on top
    for group in sorted(groups, key=lambda g: -g.max_size):
        if limit <= 0 or (len(heap) >= limit and group.max_size < heap[0][0]):
            break
        query = (
            select(
                ObjectVersion.key,
                ObjectVersion.version_id,
                ObjectVersion.size,
                noncurrent_version(),
            )
            .join(Bucket, Bucket.id == ObjectVersion.bucket_id)
            .join(Tenant, Tenant.id == Bucket.tenant_id)
            .where(
                holds_bytes(),
                Bucket.name == group.bucket,
                Tenant.name == group.tenant,
                ObjectVersion.data_class == group.data_class,
                ObjectVersion.subject.is_not_distinct_from(group.subject),
                # A bulk threshold can split otherwise alike objects: match the group's count.
                ObjectVersion.subject_count.is_not_distinct_from(group.subject_count),
                _exact_placements(group.placements),
            )
            .order_by(ObjectVersion.size.desc(), ObjectVersion.key, ObjectVersion.version_id)
            .limit(limit)
        )
        shape = group.shape
        reasons = _reasons(group, planner)
        for key, version, size, noncurrent in await session.execute(query):
            item = Violation(
                bucket=group.bucket,
                key=key,
                version=version,
                noncurrent=noncurrent,
                size=int(size),
                data_class=group.data_class,
                subject=group.subject,
                locations=group.placements,
                rule=group.decision.rule,
                reasons=reasons,
                fix=_fix_text(shape),
                copy_to=shape.copy_to,
                delete_from=shape.delete_from,
                source=shape.src,
                unplaceable=shape.unplaceable is not None,
            )
            # Version ids are unique, so the item itself is never compared.
            entry = (int(size), _Inverted(group.bucket), _Inverted(key), _Inverted(version), item)
            if len(heap) < limit:
                heapq.heappush(heap, entry)
            elif entry[:4] > heap[0][:4]:
                heapq.heapreplace(heap, entry)
    return [e[4] for e in sorted(heap, key=lambda e: e[:4], reverse=True)]


class _Inverted(str):
    """Sorts backwards, so a min-heap on size keeps ties in (bucket, key) order."""

    __slots__ = ()

    def __lt__(self, other: object) -> bool:
        return str.__gt__(self, other)  # type: ignore[operator]

    def __gt__(self, other: object) -> bool:
        return str.__lt__(self, other)  # type: ignore[operator]


def _fix_cost(groups: Sequence[_Group]) -> FixCost:
    """The planner's shapes times each group's objects and bytes: its egress formula."""
    egress: dict[str, float] = {}
    unpriced: dict[str, int] = {}
    totals = dict.fromkeys(
        ("objects", "bytes", "copies", "copy_bytes", "deletes", "delete_bytes"), 0
    )
    unplaceable = unplaceable_bytes = 0
    for g in groups:
        if not _violates(g):
            continue
        totals["objects"] += g.objects
        totals["bytes"] += g.bytes
        if g.shape.unplaceable is not None:
            unplaceable += g.objects
            unplaceable_bytes += g.bytes
            continue
        totals["copies"] += g.objects * len(g.shape.copy_to)
        totals["copy_bytes"] += g.bytes * len(g.shape.copy_to)
        totals["deletes"] += g.objects * len(g.shape.delete_from)
        totals["delete_bytes"] += g.bytes * len(g.shape.delete_from)
        for provider, price in g.shape.egress:
            if price is None:
                unpriced[provider] = unpriced.get(provider, 0) + g.bytes
            else:
                egress[provider] = egress.get(provider, 0.0) + g.bytes / GIB * price
    return FixCost(
        **totals,
        unplaceable=unplaceable,
        unplaceable_bytes=unplaceable_bytes,
        egress_usd=sum(egress.values()),
        egress_usd_by_provider=dict(sorted(egress.items())),
        egress_unpriced_bytes=dict(sorted(unpriced.items())),
    )


async def _chain(session: AsyncSession) -> dict[str, Any]:
    """The chain's state and its newest signed checkpoint (signatures: `audit verify`)."""
    walked = await verify(session)
    newest = (
        await session.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(1))
    ).scalar_one_or_none()
    return {
        **walked.to_dict(),
        "last_checkpoint": None
        if newest is None
        else {"seq": newest.seq, "at": format_ts(newest.ts), "key_id": newest.key_id},
    }


def _exceptions(policy: Policy, groups: Sequence[_Group]) -> list[dict[str, Any]]:
    """Every exception the policy grants, whether it is in force, and what relies on it."""
    today = date.today()
    return [
        {
            "id": e.id,
            "relaxes": e.relaxes,
            "mechanism": e.mechanism,
            "locations": list(e.locations),
            "evidence": e.evidence,
            "expires": e.expires.isoformat(),
            "active": e.active(today),
            # Objects that sit where only this exception allows them.
            "objects": sum(
                g.objects
                for g in groups
                if e.id in g.decision.exceptions and set(g.placements) & set(e.locations)
            ),
        }
        for e in policy.exceptions
    ]


UNRESTRICTED = "(none: no law restricts it)"


def _rule_uses(groups: Sequence[_Group]) -> list[RuleUse]:
    """Objects, bytes and violations per applying rule; an object counts under each of its."""
    counts: dict[str, list[int]] = {}
    cites: dict[str, tuple[str, str]] = {UNRESTRICTED: ("", "")}
    for g in groups:
        applied = g.decision.rules
        for rule in applied:
            cites.setdefault(rule.id, (rule.citation, rule.source))
        for rule_id in [r.id for r in applied] or [UNRESTRICTED]:
            c = counts.setdefault(rule_id, [0, 0, 0])
            c[0] += g.objects
            c[1] += g.bytes
            c[2] += g.objects if _violates(g) else 0
    out = [
        RuleUse(rule_id, *cites[rule_id], objects, nbytes, bad)
        for rule_id, (objects, nbytes, bad) in counts.items()
    ]
    return sorted(out, key=lambda r: (-r.violations, -r.objects, r.rule))


def _summarise_detail(detail: Any) -> str:
    if isinstance(detail, dict):
        for field in ("message", "reason", "outcome"):
            value = detail.get(field)
            if isinstance(value, str) and value:
                return value[:_DETAIL_LIMIT]
        parts = [f"{k}={v}" for k, v in detail.items() if isinstance(v, str | int | float)]
        return ", ".join(parts)[:_DETAIL_LIMIT]
    return "" if detail is None else str(detail)[:_DETAIL_LIMIT]


async def _audit(session: AsyncSession, since: datetime | None, limit: int) -> AuditSummary:
    kinds: list[AuditKindSummary] = []
    for kind in AUDIT_KINDS:
        recent: deque[dict[str, Any]] = deque(maxlen=max(limit, 0))
        count = 0
        async for entry in iter_entries(session, since=since, kind=kind):
            count += 1
            if limit > 0:
                recent.append(
                    {
                        "seq": entry["seq"],
                        "ts": entry["ts"],
                        "actor": entry["actor"],
                        "tenant": entry["tenant"],
                        "target": entry["target"],
                        "summary": _summarise_detail(entry["detail"]),
                        "detail": entry["detail"],
                    }
                )
        kinds.append(AuditKindSummary(kind.value, count, list(reversed(recent))))
    return AuditSummary(format_ts(since) if since else None, limit, kinds)


def _location_rows(
    raw: Mapping[str, tuple[int, int]],
    facts: Mapping[str, LocationFacts],
    catalog: Catalog,
) -> list[LocationUsage]:
    rows: list[LocationUsage] = []
    for name in sorted(set(raw) | set(facts)):
        objects, nbytes = raw.get(name, (0, 0))
        f = facts.get(name)
        country = f.country if f else None
        rows.append(
            LocationUsage(
                location=name,
                configured=f is not None,
                provider=f.provider if f else None,
                provider_name=f.provider_name if f else None,
                region=f.region if f else None,
                city=f.city if f else None,
                country=country,
                country_name=_country_name(catalog, country),
                vendor_hq=f.vendor_hq if f else None,
                objects=objects,
                bytes=nbytes,
            )
        )
    return sorted(rows, key=lambda r: (-r.bytes, r.location))


def _country_name(catalog: Catalog, code: str | None) -> str | None:
    if code is None:
        return None
    try:
        return catalog.country_name(code)
    except CatalogError:  # an unknown code is shown as itself
        return code


async def collect_report(
    db: Database,
    policy: Policy,
    candidates: Sequence[LocationFacts],
    catalog: Catalog,
    *,
    top: int = 50,
    audit_since: datetime | None = None,
    audit_limit: int = 20,
    scan: Mapping[str, Location] | None = None,
) -> Report:
    """Everything `residency report` shows, from one read-only transaction; with `scan`, the
    drift scan of those locations too (it lists every one of them: slow on big stores)."""
    facts = {f.name: f for f in candidates}
    planner = Planner(policy, candidates)
    concern_countries = catalog.expand(CONCERN_GROUP)
    concern_locs = {
        name: "concern"
        for name, f in facts.items()
        if f.vendor_hq is not None and f.vendor_hq in concern_countries
    }
    country_of = {n: f.country or MULTI for n, f in facts.items()}
    provider_of = {n: f.provider for n, f in facts.items()}
    region_of = {n: f"{f.provider}/{f.region}" for n, f in facts.items()}
    async with db.session(write=False) as session:
        by_location = await _usage(session, None)
        by_country = await _usage(session, country_of)
        by_provider = await _usage(session, provider_of)
        by_region = await _usage(session, region_of)
        everywhere = await _usage(session, {})
        concern = (await _usage(session, concern_locs)).get("concern", (0, 0))
        groups = await _groups(session, planner)
        violations = await _largest(session, [g for g in groups if _violates(g)], planner, top)
        audit = await _audit(session, audit_since, audit_limit)
        leftovers = await collect_leftovers(session, planner.decider)
        chain = await _chain(session)
    drift = None
    if scan is not None:
        drift = await scan_locations(db, scan, planner.decider)
    locations = _location_rows(by_location, facts, catalog)
    country_labels = {
        code: _country_name(catalog, code) or code for code in set(country_of.values())
    }
    country_labels[MULTI] = "multi-country region"
    provider_labels = {f.provider: f.provider_name for f in candidates}
    region_labels = {
        f"{f.provider}/{f.region}": f"{f.provider_name} {f.region} ({f.city})" for f in candidates
    }
    bad = [g for g in groups if _violates(g)]
    placed_objects, stored_bytes = everywhere.get(UNKNOWN, (0, 0))
    return Report(
        generated_at=format_ts(utcnow()),
        policy={
            "name": policy.name,
            "description": policy.description,
            "citation": policy.citation,
            "sources": list(policy.sources),
            "exceptions": _exceptions(policy, groups),
        },
        totals={
            "objects": sum(g.objects for g in groups),
            "bytes": sum(g.bytes for g in groups),
            "noncurrent_versions": sum(g.noncurrent for g in groups),
            "noncurrent_bytes": sum(g.noncurrent_bytes for g in groups),
            "stored_bytes": stored_bytes,
            "placed_objects": placed_objects,
            "locations": len(locations),
            "countries": sum(
                1 for k, (n, _) in by_country.items() if n and k not in (UNKNOWN, MULTI)
            ),
        },
        locations=locations,
        by_country=_usages(by_country, country_labels),
        by_provider=_usages(by_provider, provider_labels),
        by_region=_usages(by_region, region_labels),
        violations_total=sum(g.objects for g in bad),
        violations_bytes=sum(g.bytes for g in bad),
        violations=violations,
        violations_limit=top,
        fix=_fix_cost(groups),
        rules=_rule_uses(groups),
        concern=Concern(
            group=CONCERN_GROUP,
            countries=tuple(sorted(concern_countries)),
            objects=concern[0],
            bytes=concern[1],
            locations=[r for r in locations if r.location in concern_locs],
        ),
        audit=audit,
        leftovers=leftovers,
        chain=chain,
        scan=drift,
    )
