"""Cedar authorization: one decision per request, with the policies that made it.

Policies and schema are parsed and validated once (`Authorizer.from_files`, or the cached
`load_authorizer`); per request only the small entity slice is built and evaluated. Cedar
semantics: deny unless some permit matches; any matching forbid wins over every permit.

A decision is a pure function of the policies, the principal, the action, the resource and
the context. An `Authorizer` never changes its policies, and when none of them reads `context`
(the defaults do not) the context cannot change a decision either, so `authorize` remembers
decisions per (principal, action, resource): exact, never stale. Principals and resources are
value objects carrying every attribute Cedar sees, so a changed attribute (a principal made a
covered person, an object reclassified) is a different key, not a stale hit. Policies that read
`context` (time, source address, purpose) are evaluated afresh every time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import cedarpy

from residency.access.actions import RESOURCE_KINDS, Action
from residency.access.categories import BulkRules, load_bulk_rules
from residency.access.entities import (
    ObjectRef,
    PrincipalRef,
    RequestContext,
    Resource,
    entities_json,
    entity_slice,
    resource_kind,
    resource_uid,
)
from residency.access.errors import RequestError
from residency.access.policyfiles import PolicyBundle, load_bundle, schema


@dataclass(frozen=True, slots=True)
class AccessDecision:
    """Allowed or not, the deciding policy ids, and one human reason per policy.

    On a deny, `policy_ids` are the forbids that matched (empty when nothing permitted the
    request: Cedar's default deny). On an allow, they are the permits that matched.
    `errors` are policies Cedar skipped because they failed to evaluate for this request.
    """

    allowed: bool
    policy_ids: tuple[str, ...]
    reasons: tuple[str, ...]
    principal: str
    action: str
    resource: str
    errors: tuple[str, ...] = field(default=())

    @property
    def message(self) -> str:
        """One sentence for the S3 403 message and the audit log."""
        verdict = "allowed" if self.allowed else "denied"
        head = f"{self.action} on {self.resource} by {self.principal} {verdict}"
        if not self.policy_ids and self.errors:
            return f"{head}: the request could not be evaluated: {self.errors[0]}"
        if not self.policy_ids:
            return f"{head}: no policy permits it (default deny)."
        because = "; ".join(
            f"{pid}: {reason}" if reason else pid
            for pid, reason in zip(self.policy_ids, self.reasons, strict=True)
        )
        return f"{head} by policy {because}."

    def audit_detail(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "resource": self.resource,
            "allowed": self.allowed,
            "policies": list(self.policy_ids),
            "reason": self.message,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "decision": "allow" if self.allowed else "deny",
            "principal": self.principal,
            "action": self.action,
            "resource": self.resource,
            "policy_ids": list(self.policy_ids),
            "reasons": list(self.reasons),
            "errors": list(self.errors),
            "message": self.message,
        }


DECISION_CACHE_ENTRIES = 16_384
"""Decisions remembered per `Authorizer` (oldest dropped first); each is a few hundred bytes."""


class Authorizer:
    """Evaluates requests against one policy bundle; immutable and safe to share."""

    def __init__(
        self,
        bundle: PolicyBundle,
        rules: BulkRules | None = None,
    ) -> None:
        self.bundle = bundle
        self.rules = rules or load_bulk_rules()
        # Evaluated with the schema: it defines the action groups (`action in Action::"S3"`)
        # and validates each request's entity slice (about 15% of a decision, measured).
        self._schema = schema()
        self._categories: dict[str, str] = {}
        self._decisions: dict[tuple[PrincipalRef, Action, Resource], AccessDecision] = {}
        self.cache_decisions = not bundle.reads_context

    @classmethod
    def from_files(
        cls,
        paths: Sequence[Path] = (),
        *,
        defaults: bool = True,
        rules: BulkRules | None = None,
    ) -> Authorizer:
        """Parse and validate the default policies and `paths` (PolicyFileError if bad)."""
        return cls(load_bundle(paths, defaults=defaults), rules)

    def _category(self, data_class: str) -> str:
        found = self._categories.get(data_class)
        if found is None:
            category = self.rules.category_of_class(data_class)
            found = category.name if category else ""
            if len(self._categories) < 4096:
                self._categories[data_class] = found
        return found

    def _request(
        self,
        principal: PrincipalRef,
        action: Action,
        resource: Resource,
        context: RequestContext | None,
    ) -> tuple[dict[str, Any], dict[tuple[str, str], str]]:
        kind = resource_kind(resource)
        if kind not in RESOURCE_KINDS[action]:
            raise RequestError(
                f"action {action.value} applies to a "
                f"{' or '.join(sorted(RESOURCE_KINDS[action]))}, not to {resource.describe()}"
            )
        request = {
            "principal": {"type": "Principal", "id": principal.uid},
            "action": {"type": "Action", "id": action.value},
            "resource": resource_uid(resource),
            # A string: cedarpy passes it through instead of re-encoding a dict.
            "context": _dumps((context or RequestContext()).to_cedar()),
        }
        category = self._category(resource.data_class) if isinstance(resource, ObjectRef) else ""
        return request, entity_slice(principal, resource, category)

    def _decision(
        self,
        result: cedarpy.AuthzResult,
        principal: PrincipalRef,
        action: Action,
        resource: Resource,
    ) -> AccessDecision:
        ids = tuple(sorted(result.diagnostics.reasons))
        reasons = []
        for pid in ids:
            info = self.bundle.info(pid)
            reasons.append(info.reason if info else "")
        return AccessDecision(
            allowed=result.allowed,
            policy_ids=ids,
            reasons=tuple(reasons),
            principal=principal.uid,
            action=action.value,
            resource=resource.describe(),
            errors=tuple(str(e) for e in result.diagnostics.errors),
        )

    def authorize(
        self,
        principal: PrincipalRef,
        action: Action,
        resource: Resource,
        context: RequestContext | None = None,
    ) -> AccessDecision:
        """May `principal` do `action` on `resource`? Pure: no I/O (decisions may be cached)."""
        if not self.cache_decisions:
            return self._evaluate(principal, action, resource, context)
        key = (principal, action, resource)
        found = self._decisions.get(key)
        if found is not None:
            if context is not None:
                context.check()  # a bad context is refused, hit or miss
            return found
        decision = self._evaluate(principal, action, resource, context)
        if len(self._decisions) >= DECISION_CACHE_ENTRIES:
            self._decisions.pop(next(iter(self._decisions), key), None)  # oldest first
        self._decisions[key] = decision
        return decision

    def _evaluate(
        self,
        principal: PrincipalRef,
        action: Action,
        resource: Resource,
        context: RequestContext | None,
    ) -> AccessDecision:
        request, entities = self._request(principal, action, resource, context)
        result = cedarpy.is_authorized(
            request, self.bundle.policy_set, entities_json(entities), self._schema
        )
        return self._decision(result, principal, action, resource)

    def authorize_batch(
        self,
        principal: PrincipalRef,
        items: Sequence[tuple[Action, Resource]],
        context: RequestContext | None = None,
    ) -> list[AccessDecision]:
        """Several decisions for one caller in one Cedar call (DeleteObjects, CopyObject)."""
        if not items:
            return []
        context = context or RequestContext()
        requests = []
        entities: dict[tuple[str, str], str] = {}
        for action, resource in items:
            request, fragments = self._request(principal, action, resource, context)
            requests.append(request)
            entities.update(fragments)
        results = cedarpy.is_authorized_batch(
            requests, self.bundle.policy_set, entities_json(entities), self._schema
        )
        return [
            self._decision(result, principal, action, resource)
            for result, (action, resource) in zip(results, items, strict=True)
        ]


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


@lru_cache(maxsize=16)
def _cached(
    files: tuple[tuple[str, int, int], ...], defaults: bool, rules_path: str | None
) -> Authorizer:
    return Authorizer.from_files(
        [Path(p) for p, _, _ in files], defaults=defaults, rules=load_bulk_rules(rules_path)
    )


def load_authorizer(
    paths: Sequence[Path] = (), *, defaults: bool = True, rules_path: Path | None = None
) -> Authorizer:
    """A cached Authorizer for these files; re-parsed only when a file changes (mtime, size)."""
    stamps = []
    for path in paths:
        try:
            st = os.stat(path)
            stamps.append((str(path), st.st_mtime_ns, st.st_size))
        except OSError:
            stamps.append((str(path), -1, -1))  # load_bundle reports it properly
    return _cached(tuple(stamps), defaults, None if rules_path is None else str(rules_path))
