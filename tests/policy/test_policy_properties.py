"""Property tests: for any policy, object and locations the decision obeys the invariants.

The three the law needs most: a rule can only narrow, the verdict does not depend on the
order of rules or locations, and an exception changes only what it names.
"""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from residency.catalog import LocationFacts
from residency.policy import (
    Constraints,
    CountryTerm,
    ObjectAttrs,
    Policy,
    PolicyException,
    Preference,
    Rule,
    Scope,
    evaluate,
)
from residency.policy.evaluate import exclusion_reasons, spread_key

COUNTRIES = ["US", "DE", "FR", "CN", "HK", "RU", "JP", "SG"]
GROUPS = {
    "EUROPE": frozenset({"DE", "FR"}),
    "COC": frozenset({"CN", "HK", "RU"}),
    "ASIA": frozenset({"CN", "HK", "JP", "SG"}),
}
CONTINENT = {"US": "North America", "DE": "Europe", "FR": "Europe", "RU": "Europe"}
VENDORS = {
    "aws": "US",
    "oci": "US",
    "alibaba": "CN",
    "tencent": "CN",
    "hetzner": "DE",
    "self": None,
}
CLASSES = ["public", "personal", "personal.health", "genomic", "government"]

terms = st.one_of(
    st.sampled_from(COUNTRIES).map(lambda c: CountryTerm(spec=c, countries=frozenset({c}))),
    st.sampled_from(sorted(GROUPS)).map(
        lambda g: CountryTerm(spec=f"@{g}", group=g, countries=GROUPS[g])
    ),
)
term_lists = st.lists(terms, min_size=1, max_size=3).map(tuple)


@st.composite
def locations(draw: st.DrawFn) -> list[LocationFacts]:
    n = draw(st.integers(min_value=0, max_value=8))
    out = []
    for i in range(n):
        provider = draw(st.sampled_from(sorted(VENDORS)))
        country = draw(st.one_of(st.none(), st.sampled_from(COUNTRIES)))
        out.append(
            LocationFacts(
                name=f"loc-{i}",
                provider=provider,
                provider_name=provider,
                vendor_hq=VENDORS[provider],
                region=draw(st.sampled_from(["r1", "r2", "r3"])),
                city="",
                country=country,
                countries=frozenset({country}) if country else frozenset(),
                continent=CONTINENT.get(country or "", "Asia"),
                storage_usd_per_gb_month=draw(
                    st.one_of(st.none(), st.sampled_from([0.01, 0.02, 0.023, 0.05]))
                ),
            )
        )
    return out


preferences = st.one_of(
    st.just(Preference()),
    st.just(Preference(kind="cheapest")),
    st.sampled_from(COUNTRIES).map(
        lambda c: Preference(kind="nearest", country=c, continent=CONTINENT.get(c, "Asia"))
    ),
    st.lists(st.sampled_from([f"loc-{i}" for i in range(8)]), unique=True, max_size=4).map(
        lambda names: Preference(kind="explicit", locations=tuple(names))
    ),
)


@st.composite
def rules(draw: st.DrawFn, index: int) -> Rule:
    maybe = lambda s: draw(st.one_of(st.none(), s))  # noqa: E731
    scope = Scope(
        data_class=draw(st.lists(st.sampled_from(CLASSES), max_size=2).map(tuple)),
        subject=draw(st.one_of(st.just(()), term_lists)),
        over_subjects=draw(st.sampled_from([None, 100, 1000])),
        tenant=draw(st.sampled_from([(), ("t1",), ("t*",)])),
        bucket=draw(st.sampled_from([(), ("b1",)])),
    )
    providers = st.lists(st.sampled_from(sorted(VENDORS)), min_size=1, max_size=3, unique=True)
    constraints = Constraints(
        allow_countries=maybe(term_lists),
        deny_countries=maybe(term_lists) or (),
        deny_vendor_hq=maybe(term_lists) or (),
        allow_providers=maybe(providers.map(tuple)),
        deny_providers=maybe(providers.map(tuple)) or (),
        replicas=draw(st.integers(min_value=1, max_value=3)),
        spread=draw(st.sampled_from(["location", "region", "provider", "country"])),
        prefer=draw(preferences),
    )
    return Rule(id=f"rule-{index}", scope=scope, constraints=constraints)


@st.composite
def policies(draw: st.DrawFn, max_rules: int = 4) -> Policy:
    n = draw(st.integers(min_value=1, max_value=max_rules))
    return Policy(
        name="random",
        groups=GROUPS,
        countries=frozenset(COUNTRIES),
        rules=tuple(draw(rules(i)) for i in range(n)),
    )


objects = st.builds(
    ObjectAttrs,
    data_class=st.sampled_from([*CLASSES, "geolocation", "unclassified"]),
    subject=st.one_of(st.none(), st.sampled_from([*COUNTRIES, *GROUPS, "@europe", "US,DE"])),
    subject_count=st.sampled_from([None, 5, 500, 5000]),
    tenant=st.sampled_from([None, "t1", "t2"]),
    bucket=st.sampled_from([None, "b1", "b2"]),
)


def _union(ts: tuple[CountryTerm, ...]) -> frozenset[str]:
    return frozenset().union(*(t.countries for t in ts))


@settings(max_examples=200, deadline=None)
@given(policy=policies(), obj=objects, candidates=locations())
def test_decision_invariants(
    policy: Policy, obj: ObjectAttrs, candidates: list[LocationFacts]
) -> None:
    d = evaluate(policy, obj, candidates)
    names = [c.name for c in candidates]
    excluded = [e.location for e in d.exclusions]
    # Every location is either allowed or excluded with a reason, never both.
    assert sorted([*d.allowed, *excluded]) == sorted(names)
    assert all(e.reason for e in d.exclusions)
    assert set(d.chosen) <= set(d.allowed)
    assert len(set(d.chosen)) == len(d.chosen)
    assert d.message
    by_name = {x.name: x for x in candidates}
    # Every applying rule holds at every allowed location (the intersection).
    for rule_id in d.rule_ids:
        c = policy.rule(rule_id).constraints
        for name in d.allowed:
            loc = by_name[name]
            if c.allow_countries is not None:
                assert loc.country is not None
                assert loc.country in _union(c.allow_countries)
            if c.deny_countries:
                assert loc.country is not None
                assert loc.country not in _union(c.deny_countries)
            if loc.vendor_hq is not None:
                assert loc.vendor_hq not in _union(c.deny_vendor_hq)
            if c.allow_providers is not None:
                assert loc.provider in c.allow_providers
            assert loc.provider not in c.deny_providers
    # Every exclusion names a rule that applied.
    for e in d.exclusions:
        assert any(f"rule {r}" in e.reason for r in d.rule_ids)
    if d.ok:
        assert len(d.chosen) == d.replicas
        for spread in d.spreads:
            keys = [spread_key(by_name[n], spread) for n in d.chosen]
            assert None not in keys
            assert len(set(keys)) == len(keys)
    else:
        assert d.chosen == ()


@settings(max_examples=150, deadline=None)
@given(policy=policies(), extra=rules(99), obj=objects, candidates=locations())
def test_adding_a_rule_never_allows_a_denied_location(
    policy: Policy, extra: Rule, obj: ObjectAttrs, candidates: list[LocationFacts]
) -> None:
    before = evaluate(policy, obj, candidates)
    after = evaluate(policy.model_copy(update={"rules": (*policy.rules, extra)}), obj, candidates)
    assert set(after.allowed) <= set(before.allowed)


@settings(max_examples=150, deadline=None)
@given(
    policy=policies(),
    obj=objects,
    candidates=locations(),
    order=st.randoms(use_true_random=False),
)
def test_verdict_is_independent_of_rule_and_location_order(
    policy: Policy, obj: ObjectAttrs, candidates: list[LocationFacts], order: object
) -> None:
    import random

    assert isinstance(order, random.Random)
    rules = list(policy.rules)
    order.shuffle(rules)
    shuffled = list(candidates)
    order.shuffle(shuffled)
    # The verdict (the allowed set, whether a placement exists) does not depend on order;
    # only which allowed locations are preferred may.
    a = evaluate(policy, obj, candidates)
    b = evaluate(policy.model_copy(update={"rules": tuple(rules)}), obj, shuffled)
    assert set(a.allowed) == set(b.allowed)
    assert set(a.rule_ids) == set(b.rule_ids)
    assert a.replicas == b.replicas
    assert set(a.spreads) == set(b.spreads)
    assert a.ok == b.ok


@settings(max_examples=150, deadline=None)
@given(
    policy=policies(),
    obj=objects,
    candidates=locations(),
    pick=st.data(),
)
def test_an_exception_changes_only_what_it_names(
    policy: Policy, obj: ObjectAttrs, candidates: list[LocationFacts], pick: st.DataObject
) -> None:
    rule = pick.draw(st.sampled_from(policy.rules))
    names = pick.draw(
        st.lists(st.sampled_from([f"loc-{i}" for i in range(8)]), min_size=1, unique=True)
    )
    exc = PolicyException(
        id="x",
        relaxes=rule.id,
        mechanism="gdpr-art46-sccs",
        locations=tuple(names),
        evidence="e",
        expires=dt.date(2100, 1, 1),
    )
    before = evaluate(policy, obj, candidates)
    after = evaluate(policy.model_copy(update={"exceptions": (exc,)}), obj, candidates)
    assert set(before.allowed) <= set(after.allowed)
    by_name = {x.name: x for x in candidates}
    for name in set(after.allowed) - set(before.allowed):
        # Newly allowed: it is named, and the relaxed rule is the only one that excluded it.
        assert name in names
        others = [r for r in policy.rules if r.id in before.rule_ids and r.id != rule.id]
        assert all(not exclusion_reasons(r, by_name[name]) for r in others)
    expired = exc.model_copy(update={"expires": dt.date(2000, 1, 1)})
    lapsed = evaluate(policy.model_copy(update={"exceptions": (expired,)}), obj, candidates)
    assert lapsed.allowed == before.allowed


@settings(max_examples=75, deadline=None)
@given(policy=policies(), obj=objects, candidates=locations())
def test_decisions_are_deterministic(
    policy: Policy, obj: ObjectAttrs, candidates: list[LocationFacts]
) -> None:
    first = evaluate(policy, obj, candidates)
    rebuilt = Policy.model_validate(policy.model_dump())
    assert evaluate(rebuilt, obj, list(candidates)) == first
    assert evaluate(policy, obj, tuple(candidates)) == first


@settings(max_examples=75, deadline=None)
@given(policy=policies(), obj=objects, candidates=locations())
def test_chosen_follow_preference_order(
    policy: Policy, obj: ObjectAttrs, candidates: list[LocationFacts]
) -> None:
    d = evaluate(policy, obj, candidates)
    positions = [d.allowed.index(n) for n in d.chosen]
    assert positions == sorted(positions)
