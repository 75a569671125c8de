"""The evaluator: policy + object + candidate locations -> Decision. Pure and deterministic.

Semantics (also in README.md next to this file):
- Rules are tried in order; the first whose `match` holds decides. No rule matches -> the
  object may go nowhere (deny by default); presets end with a catch-all so that is rare.
- A location is allowed when it passes every constraint of that rule. A multi-country region
  (`country` None) fails any country allow- or deny-list, since it cannot be shown to comply.
  An own data center (`vendor_hq` None) has no vendor, so `deny_vendor_hq` never excludes it.
- Allowed locations are ordered by the rule's preference; replicas are then taken greedily in
  that order, skipping a location whose spread key (region, provider, country) is already
  used. Fewer than `replicas` -> `ok=False`, `chosen=()` and a message that says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from residency.catalog.facts import LocationFacts
from residency.policy.model import Constraints, CountryTerm, Policy, Preference, Rule, Spread


@dataclass(frozen=True, slots=True)
class ObjectAttrs:
    """What the policy needs to know about an object (hypothetical or real)."""

    data_class: str
    subject: str | None = None  # ISO code or group name (`US`, `EU`, `@EEA`); None = unknown
    subject_count: int | None = None
    tenant: str | None = None
    bucket: str | None = None
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Exclusion:
    location: str
    reason: str


@dataclass(frozen=True, slots=True)
class Decision:
    """Where an object may and will go, and why every other location may not."""

    ok: bool
    rule: str | None
    allowed: tuple[str, ...]
    chosen: tuple[str, ...]
    exclusions: tuple[Exclusion, ...]
    message: str
    rule_source: str | None = None
    citation: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rule": self.rule,
            "rule_source": self.rule_source,
            "citation": self.citation,
            "allowed": list(self.allowed),
            "chosen": list(self.chosen),
            "exclusions": [{"location": e.location, "reason": e.reason} for e in self.exclusions],
            "message": self.message,
        }


_SPREAD_NOUN = {
    "location": "locations",
    "region": "regions",
    "provider": "providers",
    "country": "countries",
}


def matching_rule(policy: Policy, obj: ObjectAttrs) -> Rule | None:
    """The first rule whose match holds for `obj`, or None."""
    subject = policy.subject_countries(obj.subject)
    for rule in policy.rules:
        m = rule.match
        if m.data_class and not _any_glob(obj.data_class, m.data_class):
            continue
        if m.subject and not any(t.countries & subject for t in m.subject):
            continue
        if m.tenant and (obj.tenant is None or not _any_glob(obj.tenant, m.tenant)):
            continue
        if m.bucket and (obj.bucket is None or not _any_glob(obj.bucket, m.bucket)):
            continue
        return rule
    return None


def evaluate(policy: Policy, obj: ObjectAttrs, candidates: Sequence[LocationFacts]) -> Decision:
    """Decide where `obj` may live among `candidates` (configured order is the tie-breaker)."""
    what = _describe(obj)
    rule = matching_rule(policy, obj)
    if rule is None:
        reason = f"no rule of policy {policy.name} matches {what} (denied by default)"
        return Decision(
            ok=False,
            rule=None,
            allowed=(),
            chosen=(),
            exclusions=tuple(Exclusion(c.name, reason) for c in candidates),
            message=f"No rule of policy {policy.name} matches {what}, so it may not be stored "
            "anywhere: the policy denies by default. Add a rule (or a catch-all) that covers it.",
        )
    allowed: list[LocationFacts] = []
    exclusions: list[Exclusion] = []
    for loc in candidates:
        reasons = exclusion_reasons(rule, loc)
        if reasons:
            exclusions.append(Exclusion(loc.name, "; ".join(reasons)))
        else:
            allowed.append(loc)
    c = rule.constraints
    ordered = order_by_preference(allowed, c.prefer)
    chosen = pick_replicas(ordered, c.replicas, c.spread)
    ok = len(chosen) == c.replicas
    return Decision(
        ok=ok,
        rule=rule.id,
        allowed=tuple(loc.name for loc in ordered),
        chosen=tuple(loc.name for loc in chosen) if ok else (),
        exclusions=tuple(exclusions),
        message=_message(policy, rule, what, candidates, ordered, chosen, exclusions),
        rule_source=rule.source or None,
        citation=rule.citation,
    )


def exclusion_reasons(rule: Rule, loc: LocationFacts) -> list[str]:
    """Every constraint of `rule` that `loc` breaks, each naming the rule and the group."""
    c: Constraints = rule.constraints
    rid = rule.id
    out: list[str] = []
    if c.allow_countries is not None:
        allowed = ", ".join(_label(t) for t in c.allow_countries)
        if loc.country is None:
            out.append(f"multi-country region not allowed by rule {rid} (it allows only {allowed})")
        elif _term_for(loc.country, c.allow_countries) is None:
            out.append(f"country {loc.country} not allowed by rule {rid} (allowed: {allowed})")
    if c.deny_countries:
        if loc.country is None:
            if c.allow_countries is None:
                out.append(
                    f"multi-country region not allowed by rule {rid} "
                    "(its countries cannot be checked against the denied countries)"
                )
        else:
            term = _term_for(loc.country, c.deny_countries)
            if term is not None:
                out.append(f"country {loc.country} denied by rule {rid}{term.why()}")
    if c.deny_vendor_hq and loc.vendor_hq is not None:
        term = _term_for(loc.vendor_hq, c.deny_vendor_hq)
        if term is not None:
            out.append(
                f"vendor HQ {loc.vendor_hq} ({loc.provider}) denied by rule {rid}{term.why()}"
            )
    if c.allow_providers is not None and loc.provider not in c.allow_providers:
        out.append(
            f"provider {loc.provider} not allowed by rule {rid} "
            f"(allowed: {', '.join(c.allow_providers)})"
        )
    if loc.provider in c.deny_providers:
        out.append(f"provider {loc.provider} denied by rule {rid}")
    return out


def order_by_preference(
    locations: Sequence[LocationFacts], prefer: Preference
) -> list[LocationFacts]:
    """Most preferred first; `sorted` is stable, so ties keep the configured order."""
    if prefer.kind == "cheapest":
        return sorted(
            locations,
            key=lambda x: (
                x.storage_usd_per_gb_month is None,
                x.storage_usd_per_gb_month or 0.0,
            ),
        )
    if prefer.kind == "nearest":

        def distance(x: LocationFacts) -> int:
            if x.country is not None and x.country == prefer.country:
                return 0
            if prefer.continent is not None and x.continent == prefer.continent:
                return 1
            return 2

        return sorted(locations, key=distance)
    if prefer.kind == "explicit":
        rank = {name: i for i, name in enumerate(prefer.locations)}
        return sorted(locations, key=lambda x: rank.get(x.name, len(rank)))
    return list(locations)


def spread_key(loc: LocationFacts, spread: Spread) -> str | None:
    """The failure domain two replicas must not share; None = cannot be told apart safely."""
    if spread == "region":
        return f"{loc.provider}/{loc.region}"
    if spread == "provider":
        return loc.provider
    if spread == "country":
        return loc.country  # a multi-country region cannot prove it is a different country
    return loc.name


def pick_replicas(
    ordered: Sequence[LocationFacts], replicas: int, spread: Spread
) -> list[LocationFacts]:
    """Greedy in preference order: optimal, since any one location per spread key will do."""
    chosen: list[LocationFacts] = []
    used: set[str] = set()
    for loc in ordered:
        if len(chosen) == replicas:
            break
        key = spread_key(loc, spread)
        if key is None or key in used:
            continue
        used.add(key)
        chosen.append(loc)
    return chosen


def _any_glob(value: str, globs: Sequence[str]) -> bool:
    return any(fnmatchcase(value, g) for g in globs)


def _term_for(code: str, terms: Sequence[CountryTerm]) -> CountryTerm | None:
    return next((t for t in terms if code in t.countries), None)


def _label(term: CountryTerm) -> str:
    return term.group or term.spec.strip().upper()


def _describe(obj: ObjectAttrs) -> str:
    subject = f"subject {obj.subject}" if obj.subject else "unknown subject"
    return f"data class {obj.data_class} ({subject})"


def _message(
    policy: Policy,
    rule: Rule,
    what: str,
    candidates: Sequence[LocationFacts],
    ordered: Sequence[LocationFacts],
    chosen: Sequence[LocationFacts],
    exclusions: Sequence[Exclusion],
) -> str:
    c = rule.constraints
    head = f"Rule {rule.id} of policy {policy.name} applies to {what}"
    if len(chosen) == c.replicas:
        copies = "1 copy" if c.replicas == 1 else f"{c.replicas} copies"
        spread = "" if c.replicas == 1 else f" in distinct {_SPREAD_NOUN[c.spread]}"
        names = ", ".join(x.name for x in chosen)
        return f"{head}: {copies}{spread} on {names} ({c.prefer.describe()})."
    if not candidates:
        return f"{head}, but no locations are configured."
    if not ordered:
        why = "; ".join(f"{e.location}: {e.reason}" for e in exclusions)
        return f"{head} and allows none of the {len(candidates)} configured locations: {why}."
    noun = _SPREAD_NOUN[c.spread]
    keys = sorted({k for x in ordered if (k := spread_key(x, c.spread)) is not None})
    names = ", ".join(x.name for x in ordered)
    return (
        f"{head} and needs {c.replicas} copies in distinct {noun}, but the allowed "
        f"locations ({names}) span only {len(keys)} distinct {noun}"
        + (f" ({', '.join(keys)})" if c.spread != "location" and keys else "")
        + "."
    )
