"""One cached decision per distinct (class, subject, count, tenant, bucket, bucket policy):
plan, migrate, report and scan ask the same question of the same evaluator, and must get the
same answer. A bucket's own policy narrows the operator's (`policy.effective_policy`).

A bucket policy that cannot be loaded is a `BucketPolicyError` naming the bucket (every
command stops with that one line: see `residency.cli.main`).

The evaluator is pure and reads only those attributes, so caching on them is exact; a million
objects need only as many evaluations as there are distinct tuples. The cache is cleared when
it grows past `MAX_CACHED` (distinct subject counts could otherwise grow it without bound).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from residency.catalog.facts import LocationFacts
from residency.policy import Decision, ObjectAttrs, Policy, PolicyError, evaluate
from residency.policy.effective import effective_policy
from residency.policy.errors import BucketPolicyError

__all__ = ["MAX_CACHED", "Decider", "bucket_effective_policy", "check_bucket_policies"]

MAX_CACHED = 100_000

DecisionKey = tuple[str, str | None, int | None, str | None, str | None, str | None]


def bucket_effective_policy(operator: Policy, bucket: str | None, spec: str | None) -> Policy:
    """`effective_policy`, with a bucket policy that cannot be loaded a `BucketPolicyError`
    naming the bucket."""
    try:
        return effective_policy(operator, spec)
    except PolicyError as exc:  # only a bucket's own policy is loaded here
        raise BucketPolicyError(bucket, spec or "", exc) from None


def check_bucket_policies(operator: Policy, buckets: Iterable[tuple[str, str]]) -> None:
    """Load each (bucket, its own policy) now, before any work: `BucketPolicyError` for the
    first that cannot be loaded."""
    for bucket, spec in buckets:
        bucket_effective_policy(operator, bucket, spec)


class Decider:
    """`evaluate(policy, attrs, candidates)` with a bounded cache; counts evaluations."""

    def __init__(self, policy: Policy, candidates: Sequence[LocationFacts]) -> None:
        self.policy = policy
        self.candidates = tuple(candidates)
        self.evaluations = 0
        self._cache: dict[DecisionKey, Decision] = {}

    def decide(
        self,
        data_class: str,
        subject: str | None,
        tenant: str | None,
        bucket: str | None,
        subject_count: int | None = None,
        bucket_policy: str | None = None,
    ) -> Decision:
        key = (data_class, subject, subject_count, tenant, bucket, bucket_policy)
        decision = self._cache.get(key)
        if decision is None:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            attrs = ObjectAttrs(
                data_class=data_class,
                subject=subject,
                subject_count=subject_count,
                tenant=tenant,
                bucket=bucket,
            )
            policy = self._effective(bucket, bucket_policy)
            decision = evaluate(policy, attrs, self.candidates)
            self._cache[key] = decision
            self.evaluations += 1
        return decision

    def _effective(self, bucket: str | None, bucket_policy: str | None) -> Policy:
        return bucket_effective_policy(self.policy, bucket, bucket_policy)

    def reason(self, decision: Decision, location: str) -> str:
        """Why `location` is not allowed by `decision` (its exclusion, or the rule's choice)."""
        for e in decision.exclusions:
            if e.location == location:
                return e.reason
        if location not in {c.name for c in self.candidates}:
            return "not a configured location"
        if not decision.ok and not decision.allowed:
            return decision.message
        return f"not allowed by rule {decision.rule}"
