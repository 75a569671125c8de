"""The Authorizer's decision cache: exact (never stale) and off when a policy reads context."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from residency.access import (
    Action,
    Authorizer,
    ObjectRef,
    PrincipalRef,
    RequestContext,
    RequestError,
)
from residency.access.authorizer import DECISION_CACHE_ENTRIES

US_READER = PrincipalRef("acme", "smith", country="US")
CN_READER = PrincipalRef.from_attributes("acme", "smith", {"country": "CN"})  # covered person
UNDECLARED = ObjectRef("acme-data", "unknown.csv", "acme", "personal.health", "US", None)
DECLARED = ObjectRef("acme-data", "unknown.csv", "acme", "personal.health", "US", 500)


def test_default_policies_are_cached() -> None:
    authz = Authorizer.from_files()
    assert not authz.bundle.reads_context
    assert authz.cache_decisions
    first = authz.authorize(US_READER, Action.READ_OBJECT, UNDECLARED)
    again = authz.authorize(US_READER, Action.READ_OBJECT, UNDECLARED)
    assert first.allowed
    assert again is first


def test_a_changed_principal_attribute_is_a_new_decision() -> None:
    authz = Authorizer.from_files()
    assert authz.authorize(US_READER, Action.READ_OBJECT, UNDECLARED).allowed
    # Same principal name, now a covered person: not served from the warm cache.
    denied = authz.authorize(CN_READER, Action.READ_OBJECT, UNDECLARED)
    assert not denied.allowed
    assert denied.policy_ids == ("doj-undeclared-volume",)
    assert authz.authorize(US_READER, Action.READ_OBJECT, UNDECLARED).allowed


def test_a_changed_resource_attribute_is_a_new_decision() -> None:
    authz = Authorizer.from_files()
    assert not authz.authorize(CN_READER, Action.READ_OBJECT, UNDECLARED).allowed
    assert authz.authorize(CN_READER, Action.READ_OBJECT, DECLARED).allowed


def test_policies_reading_context_are_never_cached(tmp_path: Path) -> None:
    policy = tmp_path / "hours.cedar"
    policy.write_text(
        '@id("audit-purpose")\n'
        'forbid (principal, action == Action::"ReadObject", resource is Object)\n'
        'when { context.purpose != "audit" };\n'
    )
    authz = Authorizer.from_files([policy])
    assert authz.bundle.reads_context
    assert not authz.cache_decisions
    audit = RequestContext(datetime.now(UTC), "127.0.0.1", "audit")
    other = RequestContext(datetime.now(UTC), "127.0.0.1", "marketing")
    assert authz.authorize(US_READER, Action.READ_OBJECT, DECLARED, audit).allowed
    assert not authz.authorize(US_READER, Action.READ_OBJECT, DECLARED, other).allowed
    assert authz.authorize(US_READER, Action.READ_OBJECT, DECLARED, audit).allowed


def test_context_use_is_found_anywhere_in_a_policy(tmp_path: Path) -> None:
    policy = tmp_path / "nested.cedar"
    policy.write_text(
        "permit (principal, action, resource)\n"
        "when { resource in principal.tenant && (context has purpose || false) };\n"
    )
    assert Authorizer.from_files([policy]).bundle.reads_context


def test_a_bad_context_is_refused_on_a_cache_hit_too() -> None:
    authz = Authorizer.from_files()
    assert authz.authorize(US_READER, Action.READ_OBJECT, DECLARED).allowed
    naive = RequestContext(datetime.now())
    with pytest.raises(RequestError, match="timezone-aware"):
        authz.authorize(US_READER, Action.READ_OBJECT, DECLARED, naive)
    not_an_ip = RequestContext(datetime.now(UTC), source_ip="10.0.0.300")
    for _ in range(2):  # a refusal is never remembered as valid
        with pytest.raises(RequestError, match="not an IP address"):
            authz.authorize(US_READER, Action.READ_OBJECT, DECLARED, not_an_ip)
    good = RequestContext(datetime.now(UTC), source_ip="10.0.0.3")
    assert authz.authorize(US_READER, Action.READ_OBJECT, DECLARED, good).allowed


def test_the_cache_is_bounded() -> None:
    authz = Authorizer.from_files()
    for i in range(DECISION_CACHE_ENTRIES + 10):
        obj = ObjectRef("acme-data", f"k{i}", "acme", "unclassified")
        assert authz.authorize(US_READER, Action.READ_OBJECT, obj).allowed
    assert len(authz._decisions) == DECISION_CACHE_ENTRIES
