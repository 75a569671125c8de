"""Which policy applies to an object: the operator's, narrowed by its bucket's.

The gateway, adopt, plan, migrate, report and access all call `effective_policy`, so they can
never disagree. A bucket's policy (a preset named at creation) only adds constraints: its rules
join the operator's, its exceptions are never taken (widening is the operator's alone), and the
stricter of the two unknown-subject and classification settings wins.
"""

from __future__ import annotations

from functools import lru_cache

from residency.policy.loader import load_policy
from residency.policy.model import Policy

_cache: dict[tuple[int, str], tuple[Policy, Policy]] = {}


@lru_cache(maxsize=64)
def _bucket_policy(spec: str) -> Policy:
    return load_policy(spec)


def effective_policy(operator: Policy, bucket_spec: str | None) -> Policy:
    """The operator's policy with the bucket's rules added (cached per operator policy)."""
    if not bucket_spec:
        return operator
    key = (id(operator), bucket_spec)
    hit = _cache.get(key)
    if hit is not None and hit[0] is operator:
        return hit[1]
    result = narrow(operator, _bucket_policy(bucket_spec))
    _cache[key] = (operator, result)
    return result


def narrow(operator: Policy, bucket: Policy) -> Policy:
    """Add `bucket`'s constraints to `operator`; nothing of `bucket` can widen."""
    # The same rule (id and where it is written) counts once; an operator rule that merely
    # shares an id with a law's rule must not switch that law off.
    have = {(r.id, r.source) for r in operator.rules}
    extra = tuple(r for r in bucket.rules if (r.id, r.source) not in have)
    if not extra and bucket.unknown_subject == operator.unknown_subject:
        return operator
    return operator.model_copy(
        update={
            "name": f"{operator.name} + bucket policy {bucket.name}",
            "sources": (
                *operator.sources,
                *(s for s in bucket.sources if s not in operator.sources),
            ),
            "groups": {**bucket.groups, **operator.groups},
            "classes": {**bucket.classes, **operator.classes},
            "party_lists": {
                name: operator.party_lists.get(name, frozenset())
                | bucket.party_lists.get(name, frozenset())
                for name in {*operator.party_lists, *bucket.party_lists}
            },
            "classifiers": (*operator.classifiers, *bucket.classifiers),
            "require_classification": operator.require_classification
            or bucket.require_classification,
            "unknown_subject": "refuse"
            if "refuse" in (operator.unknown_subject, bucket.unknown_subject)
            else "all-protected",
            "rules": (*operator.rules, *extra),
        }
    )
