"""The evaluator: policy + object + candidate locations -> Decision. Pure and deterministic.

Semantics (also in README.md next to this file):
- The object must be known: a class outside the policy's vocabulary, or a subject that is not
  an ISO country or a declared group, is refused with a message that says what to send.
- Every rule whose scope covers the object applies; a location is allowed only when no
  applying rule excludes it (the intersection). No rule applies -> every location is allowed
  and the decision says that no law in force restricts the object.
- An unknown subject is, by default, every subject the rules protect; `unknown_subject:
  refuse` refuses instead when a rule protects subjects by jurisdiction.
- An active exception lifts exactly one rule at exactly the locations it names.
- Replicas: the most any applying rule (or the placement baseline) asks for; every spread any
  of them names must hold between chosen replicas; the first applying rule with a preference
  orders the allowed locations (else the baseline's).
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from residency.catalog.facts import LocationFacts
from residency.policy.model import (
    COUNTRY_RE,
    UNCLASSIFIED,
    CountryTerm,
    Policy,
    PolicyException,
    Preference,
    Rule,
    Spread,
)

Refusal = Literal["unknown-class", "unknown-subject", "no-location", "replicas"]

# Subject codes people write that are not ISO 3166-1 alpha-2, with the code they mean.
SUBJECT_ALIASES = {"UK": "GB", "EL": "GR", "KS": "XK", "UAE": "AE", "USA": "US", "PRC": "CN"}


@dataclass(frozen=True, slots=True)
class ObjectAttrs:
    """What the policy needs to know about an object (hypothetical or real)."""

    data_class: str
    subject: str | None = None  # ISO codes or groups, comma-separated (`US`, `US,DE`, `EU`)
    subject_count: int | None = None
    tenant: str | None = None
    bucket: str | None = None
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Exclusion:
    location: str
    reason: str


@dataclass(frozen=True, slots=True)
class AppliedRule:
    """A rule that constrained the decision, with enough to cite it."""

    id: str
    policy: str
    citation: str
    source: str


@dataclass(frozen=True, slots=True)
class Decision:
    """Where an object may and will go, and why every other location may not."""

    ok: bool
    rules: tuple[AppliedRule, ...]
    allowed: tuple[str, ...]
    chosen: tuple[str, ...]
    exclusions: tuple[Exclusion, ...]
    message: str
    refusal: Refusal | None = None
    exceptions: tuple[str, ...] = ()  # ids of exceptions that allowed a location
    replicas: int = 1
    spreads: tuple[Spread, ...] = ("location",)
    notes: tuple[str, ...] = field(default=())  # e.g. expired exceptions that were not applied

    @property
    def rule(self) -> str | None:
        """The applying rules as one comma-separated value (headers, the version row)."""
        return ",".join(r.id for r in self.rules) or None

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.rules)

    @property
    def unrestricted(self) -> bool:
        return self.refusal is None and not self.rules

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "refusal": self.refusal,
            "rules": [
                {"id": r.id, "policy": r.policy, "citation": r.citation, "source": r.source}
                for r in self.rules
            ],
            "unrestricted": self.unrestricted,
            "exceptions": list(self.exceptions),
            "replicas": self.replicas,
            "spreads": list(self.spreads),
            "allowed": list(self.allowed),
            "chosen": list(self.chosen),
            "exclusions": [{"location": e.location, "reason": e.reason} for e in self.exclusions],
            "notes": list(self.notes),
            "message": self.message,
        }


_SPREAD_NOUN = {
    "location": "locations",
    "region": "regions",
    "provider": "providers",
    "country": "countries",
}
_SPREAD_ORDER: dict[str, int] = {"location": 0, "region": 1, "provider": 2, "country": 3}


def check_subject(policy: Policy, subject: str | None) -> str | None:
    """Why `subject` is not a subject the policy can reason about, or None when it is."""
    if not subject:
        return None
    for part in subject.split(","):
        name = part.strip().lstrip("@").upper()
        if name in policy.groups:
            continue
        if COUNTRY_RE.match(name) and (not policy.countries or name in policy.countries):
            continue
        return _unknown_subject_message(policy, part.strip())
    return None


def _unknown_subject_message(policy: Policy, part: str) -> str:
    name = part.lstrip("@").upper()
    hint = ""
    if name in SUBJECT_ALIASES:
        hint = f" (did you mean {SUBJECT_ALIASES[name]}?)"
    else:
        close = difflib.get_close_matches(name, sorted(policy.groups), n=2)
        if close:
            hint = f" (did you mean {', '.join(close)}?)"
    return (
        f"subject {part!r} is not an ISO 3166-1 alpha-2 country code or a group the policy "
        f"knows{hint}: send codes such as US or DE, or a group such as EU, comma-separated "
        "for several subjects"
    )


def check_class(policy: Policy, data_class: str) -> str | None:
    """Why `data_class` is not in the policy's vocabulary, or None when it is."""
    if policy.knows_class(data_class):
        return None
    close = difflib.get_close_matches(data_class, sorted(policy.classes), n=3, cutoff=0.5)
    leaf = [c for c in policy.classes if c.rsplit(".", 1)[-1] == data_class.rsplit(".", 1)[-1]]
    hints = sorted({*close, *leaf})
    hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
    return (
        f"data class {data_class!r} is not known to policy {policy.name}{hint}: send one of "
        f"{', '.join(sorted(policy.classes))}, or declare it under `classes:` in the policy"
    )


class _Compiled:
    """A policy's rules as plain tuples, plus the decisions already made under it.

    `evaluate` is pure, so a decision depends only on its inputs: the object's class, subject,
    tenant and bucket, which rules its count brings into scope, the candidates and the day.
    Keying the cache on those (candidates by identity, held alive by the entry) is exact.
    """

    __slots__ = ("decisions", "policy", "scopes", "subjects")

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.scopes = tuple(
            (
                r,
                r.scope.data_class,
                r.scope.protected() if r.scope.subject else None,
                r.scope.over_subjects,
                r.scope,
            )
            for r in policy.rules
        )
        self.subjects: dict[str | None, frozenset[str]] = {}
        self.decisions: dict[tuple[Any, ...], tuple[tuple[LocationFacts, ...], Decision]] = {}

    def applicable(self, obj: ObjectAttrs) -> tuple[Rule, ...]:
        subject = self.subjects.get(obj.subject)
        if subject is None:
            subject = self.policy.subject_countries(obj.subject)
            if len(self.subjects) < _MAX_CACHED:
                self.subjects[obj.subject] = subject
        cls, count = obj.data_class, obj.subject_count
        out: list[Rule] = []
        for rule, classes, protected, over, scope in self.scopes:
            if (
                classes
                and cls != UNCLASSIFIED
                and not any(cls == c or cls.startswith(c + ".") for c in classes)
            ):
                continue
            if over is not None and count is not None and count <= over:
                continue
            if protected is not None and subject and not (protected & subject):
                continue
            if (scope.tenant or scope.bucket) and not scope.covers_place(obj.tenant, obj.bucket):
                continue
            out.append(rule)
        return tuple(out)


_MAX_CACHED = 4096
_compiled_by_id: dict[int, _Compiled] = {}


def _compiled(policy: Policy) -> _Compiled:
    hit = _compiled_by_id.get(id(policy))
    if hit is None or hit.policy is not policy:
        if len(_compiled_by_id) >= 64:
            _compiled_by_id.clear()
        hit = _compiled_by_id[id(policy)] = _Compiled(policy)
    return hit


def applicable_rules(policy: Policy, obj: ObjectAttrs) -> list[Rule]:
    """Every rule whose scope covers `obj` (an unknown subject counts as every subject)."""
    return list(_compiled(policy).applicable(obj))


def evaluate(
    policy: Policy,
    obj: ObjectAttrs,
    candidates: Sequence[LocationFacts],
    *,
    today: dt.date | None = None,
) -> Decision:
    """Decide where `obj` may live among `candidates` (configured order is the tie-breaker)."""
    today = today or dt.date.today()
    compiled = _compiled(policy)
    cands = tuple(candidates)
    rules = compiled.applicable(obj)
    key = (
        obj.data_class,
        obj.subject,
        obj.tenant,
        obj.bucket,
        tuple(map(id, rules)),  # rules live as long as the policy (ids can repeat across files)
        tuple(map(id, cands)),
        today,
    )
    hit = compiled.decisions.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], cands, strict=True)):
        return hit[1]
    decision = _decide(policy, obj, cands, rules, today)
    if len(compiled.decisions) >= _MAX_CACHED:
        compiled.decisions.clear()
    compiled.decisions[key] = (cands, decision)
    return decision


def _decide(
    policy: Policy,
    obj: ObjectAttrs,
    candidates: tuple[LocationFacts, ...],
    rules: tuple[Rule, ...],
    today: dt.date,
) -> Decision:
    what = describe(obj)
    problem = check_class(policy, obj.data_class) or check_subject(policy, obj.subject)
    if problem is not None:
        kind: Refusal = (
            "unknown-class" if not policy.knows_class(obj.data_class) else ("unknown-subject")
        )
        return _refused(kind, candidates, problem, problem[0].upper() + problem[1:] + ".")
    if not obj.subject and policy.unknown_subject == "refuse":
        by_subject = [r.id for r in rules if r.scope.subject]
        if by_subject:
            msg = (
                f"{what} has no subject, and policy {policy.name} refuses data whose subject "
                f"is unknown when a rule protects subjects by jurisdiction "
                f"({', '.join(by_subject)}): send x-amz-meta-residency-subject (e.g. US)"
            )
            return _refused("unknown-subject", candidates, msg, msg + ".")
    lifted, notes = _exceptions(policy, rules, today)
    allowed: list[LocationFacts] = []
    exclusions: list[Exclusion] = []
    used: set[str] = set()
    for loc in candidates:
        reasons: list[str] = []
        saved: list[str] = []
        for rule in rules:
            why = exclusion_reasons(rule, loc, policy.party_lists)
            if not why:
                continue
            exc = lifted.get((rule.id, loc.name))
            if exc is not None:
                saved.append(exc.id)
            else:
                reasons.extend(why)
        if reasons:
            exclusions.append(Exclusion(loc.name, "; ".join(reasons)))
        else:
            allowed.append(loc)
            used.update(saved)
    replicas, spreads, prefer = _placement(policy, rules)
    ordered = order_by_preference(allowed, prefer)
    chosen = pick_replicas(ordered, replicas, spreads)
    ok = len(chosen) == replicas
    refusal: Refusal | None = None
    if not ok:
        refusal = "no-location" if not ordered else "replicas"
    applied = tuple(AppliedRule(r.id, r.policy, r.citation, r.source) for r in rules)
    message = _message(
        policy, rules, obj, candidates, ordered, chosen, exclusions, replicas, spreads, prefer
    )
    return Decision(
        ok=ok,
        rules=applied,
        allowed=tuple(loc.name for loc in ordered),
        chosen=tuple(loc.name for loc in chosen) if ok else (),
        exclusions=tuple(exclusions),
        message=message,
        refusal=refusal,
        exceptions=tuple(e.id for e in policy.exceptions if e.id in used),
        replicas=replicas,
        spreads=spreads,
        notes=notes,
    )


def _refused(
    kind: Refusal, candidates: Sequence[LocationFacts], reason: str, message: str
) -> Decision:
    return Decision(
        ok=False,
        rules=(),
        allowed=(),
        chosen=(),
        exclusions=tuple(Exclusion(c.name, reason) for c in candidates),
        message=message,
        refusal=kind,
    )


def _exceptions(
    policy: Policy, rules: Sequence[Rule], today: dt.date
) -> tuple[dict[tuple[str, str], PolicyException], tuple[str, ...]]:
    """(rule id, location) -> the active exception lifting it; notes on expired ones."""
    ids = {r.id for r in rules}
    lifted: dict[tuple[str, str], PolicyException] = {}
    notes: list[str] = []
    for exc in policy.exceptions:
        if exc.relaxes not in ids:
            continue
        if not exc.active(today):
            notes.append(f"exception {exc.id} expired on {exc.expires.isoformat()}: not applied")
            continue
        for name in exc.locations:
            lifted.setdefault((exc.relaxes, name), exc)
    return lifted, tuple(notes)


def _placement(policy: Policy, rules: Sequence[Rule]) -> tuple[int, tuple[Spread, ...], Preference]:
    base = policy.placement
    replicas = max([base.replicas, *(r.constraints.replicas for r in rules)])
    spreads = {base.spread, *(r.constraints.spread for r in rules)}
    if len(spreads) > 1:
        spreads.discard("location")  # any other spread already implies distinct locations
    prefer = next(
        (r.constraints.prefer for r in rules if r.constraints.prefer.kind != "order"),
        base.prefer,
    )
    return replicas, tuple(sorted(spreads, key=_SPREAD_ORDER.__getitem__)), prefer


def location_countries(loc: LocationFacts) -> frozenset[str]:
    """Where a location's bytes may sit: its country, or a multi-country region's members."""
    if loc.countries:
        return loc.countries
    return frozenset({loc.country}) if loc.country else frozenset()


@lru_cache(maxsize=65536)
def _cached_reasons(
    rule: Rule, loc: LocationFacts, lists: tuple[tuple[str, frozenset[str]], ...]
) -> tuple[str, ...]:
    return tuple(_reasons(rule, loc, dict(lists)))


def exclusion_reasons(
    rule: Rule, loc: LocationFacts, party_lists: dict[str, frozenset[str]] | None = None
) -> tuple[str, ...]:
    """Every constraint of `rule` that `loc` breaks, each naming the rule and the group."""
    lists = party_lists or {}
    key = tuple(sorted((n, lists.get(n, frozenset())) for n in rule.constraints.deny_listed))
    return _cached_reasons(rule, loc, key)


def _reasons(rule: Rule, loc: LocationFacts, lists: dict[str, frozenset[str]]) -> list[str]:
    c = rule.constraints
    rid = rule.id
    out: list[str] = []
    where = location_countries(loc)
    if c.allow_countries is not None:
        allowed = ", ".join(t.label() for t in c.allow_countries)
        ok_countries = frozenset().union(*(t.countries for t in c.allow_countries))
        if not where:
            out.append(
                f"multi-country region with unknown member countries not allowed by rule "
                f"{rid} (it allows only {allowed})"
            )
        elif not where <= ok_countries:
            bad = ", ".join(sorted(where - ok_countries))
            if loc.country is None:
                out.append(
                    f"multi-country region spans {bad}, not allowed by rule {rid} "
                    f"(allowed: {allowed})"
                )
            else:
                out.append(f"country {loc.country} not allowed by rule {rid} (allowed: {allowed})")
    if c.deny_countries:
        if not where:
            if c.allow_countries is None:
                out.append(
                    f"multi-country region not allowed by rule {rid} "
                    "(its countries cannot be checked against the denied countries)"
                )
        else:
            for code in sorted(where):
                term = _term_for(code, c.deny_countries)
                if term is not None:
                    out.append(f"country {code} denied by rule {rid}{term.why()}")
    if c.deny_vendor_hq:
        out.extend(_vendor_reasons(rule, loc))
    for name in c.deny_listed:
        listed = lists.get(name, frozenset())
        hit = next(
            (
                n
                for n in (loc.operator, loc.parent, loc.provider_name)
                if n and n.casefold() in listed
            ),
            None,
        )
        if hit is not None:
            out.append(f"{hit} is on the designated-party list {name} used by rule {rid}")
    if c.allow_providers is not None and loc.provider not in c.allow_providers:
        out.append(
            f"provider {loc.provider} not allowed by rule {rid} "
            f"(allowed: {', '.join(c.allow_providers)})"
        )
    if loc.provider in c.deny_providers:
        out.append(f"provider {loc.provider} denied by rule {rid}")
    return out


def _vendor_reasons(rule: Rule, loc: LocationFacts) -> list[str]:
    """The operator's HQ, or a parent HQ'd there owning at least the control threshold."""
    c = rule.constraints
    operator_hq = loc.operator_hq or loc.vendor_hq
    operator = loc.operator or loc.provider_name
    if operator_hq is not None:
        term = _term_for(operator_hq, c.deny_vendor_hq)
        if term is not None:
            who = (
                f"({loc.provider})"
                if operator == loc.provider_name
                else f"({operator}, which runs {loc.provider} {loc.region})"
            )
            return [f"vendor HQ {operator_hq} {who} denied by rule {rule.id}{term.why()}"]
    if loc.parent_hq is not None and loc.parent_hq != operator_hq:
        term = _term_for(loc.parent_hq, c.deny_vendor_hq)
        share = 100 if loc.parent_share is None else loc.parent_share
        if term is not None and share >= c.vendor_control_pct:
            return [
                f"operator {operator} is {share}% owned by {loc.parent or 'its parent'} "
                f"(HQ {loc.parent_hq}), at or above the {c.vendor_control_pct}% control "
                f"threshold of rule {rule.id}{term.why()}"
            ]
    return []


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
    ordered: Sequence[LocationFacts], replicas: int, spreads: Spread | Iterable[Spread]
) -> list[LocationFacts]:
    """The first set in preference order whose members differ on every spread.

    With one spread, greedy is optimal (any location per spread key will do). With several, a
    greedy pick can block a feasible set, so the search backtracks; it gives up (returning the
    greedy pick) once it has tried more sets than a real deployment has locations to offer.
    """
    kinds: tuple[Spread, ...] = (spreads,) if isinstance(spreads, str) else tuple(spreads)
    keyed = [
        (loc, keys)
        for loc in ordered
        if None not in (keys := tuple(spread_key(loc, k) for k in kinds))
    ]
    greedy: list[LocationFacts] = []
    used: list[set[str | None]] = [set() for _ in kinds]
    for loc, keys in keyed:
        if len(greedy) < replicas and not any(v in used[d] for d, v in enumerate(keys)):
            greedy.append(loc)
            for d, v in enumerate(keys):
                used[d].add(v)
    if len(greedy) == replicas or len(kinds) == 1:
        return greedy
    budget = [10_000]

    def search(start: int, picked: list[int]) -> list[int] | None:
        if len(picked) == replicas:
            return picked
        for i in range(start, len(keyed)):
            budget[0] -= 1
            if budget[0] < 0:
                return None
            keys = keyed[i][1]
            if any(keys[d] == keyed[p][1][d] for p in picked for d in range(len(kinds))):
                continue
            found = search(i + 1, [*picked, i])
            if found is not None:
                return found
        return None

    found = search(0, [])
    return greedy if found is None else [keyed[i][0] for i in found]


def _term_for(code: str, terms: Sequence[CountryTerm]) -> CountryTerm | None:
    return next((t for t in terms if code in t.countries), None)


def describe(obj: ObjectAttrs) -> str:
    subject = f"subject {obj.subject}" if obj.subject else "unknown subject"
    what = "unclassified data" if obj.data_class == UNCLASSIFIED else f"data class {obj.data_class}"
    return f"{what} ({subject})"


def _message(
    policy: Policy,
    rules: Sequence[Rule],
    obj: ObjectAttrs,
    candidates: Sequence[LocationFacts],
    ordered: Sequence[LocationFacts],
    chosen: Sequence[LocationFacts],
    exclusions: Sequence[Exclusion],
    replicas: int,
    spreads: tuple[Spread, ...],
    prefer: Preference,
) -> str:
    what = describe(obj)
    if rules:
        ids = ", ".join(r.id for r in rules)
        head = (
            f"Policy {policy.name} applies {'rule' if len(rules) == 1 else 'rules'} {ids} to {what}"
        )
    else:
        head = f"No law or rule of policy {policy.name} restricts {what}"
    noun = " and ".join(_SPREAD_NOUN[s] for s in spreads)
    if len(chosen) == replicas:
        copies = "1 copy" if replicas == 1 else f"{replicas} copies in distinct {noun}"
        names = ", ".join(x.name for x in chosen)
        return f"{head}: {copies} on {names} ({prefer.describe()})."
    if not candidates:
        return f"{head}, but no locations are configured."
    if not ordered:
        conflict = _conflict(rules)
        why = "" if conflict else ": " + "; ".join(f"{e.location}: {e.reason}" for e in exclusions)
        fix = (
            " Classify the object (x-amz-meta-residency-class, x-amz-meta-residency-subject)"
            " so that only the laws that protect it apply."
            if obj.data_class == UNCLASSIFIED or not obj.subject
            else ""
        )
        together = "it allows" if len(rules) == 1 else "together they allow"
        return (
            f"{head}, and {together} none of the {len(candidates)} configured "
            f"locations{conflict}{why}.{fix}"
        )
    widest = spreads[-1]
    keys = sorted({k for x in ordered if (k := spread_key(x, widest)) is not None})
    names = ", ".join(x.name for x in ordered)
    listed = f" ({', '.join(keys)})" if widest != "location" and keys else ""
    return (
        f"{head} and needs {replicas} copies in distinct {noun}, but the allowed "
        f"locations ({names}) span only {len(keys)} distinct {_SPREAD_NOUN[widest]}{listed}."
    )


def _conflict(rules: Sequence[Rule]) -> str:
    """Name the rules whose country allow-lists leave no country at all, if they do."""
    lists = [r for r in rules if r.constraints.allow_countries is not None]
    if len(lists) < 2:
        return ""
    common: frozenset[str] | None = None
    for r in lists:
        allowed = frozenset().union(*(t.countries for t in r.constraints.allow_countries or ()))
        common = allowed if common is None else common & allowed
    if common:
        return ""
    parts = ", ".join(
        f"{r.id} allows only {', '.join(t.label() for t in r.constraints.allow_countries or ())}"
        for r in lists
    )
    return f": the rules conflict ({parts}) and no country satisfies them all"
