"""What an audit entry records: a closed set of kinds that reports and SIEM rules rely on."""

from __future__ import annotations

from enum import StrEnum


class AuditKind(StrEnum):
    """The kinds of event the log records (invariant 4: every decision is auditable)."""

    PLACEMENT = "placement"  # where a version's bytes were put, and by which rule
    REFUSAL = "refusal"  # a write refused because no location may hold it
    ACCESS_DENIED = "access_denied"  # an authorisation decision that said no
    THRESHOLD_HIT = "threshold_hit"  # a bulk-data threshold (28 CFR 202) was reached
    MIGRATION_STEP = "migration_step"  # a copy, verify or delete done by the migration engine
    ADMIN = "admin"  # keys, tenants, policies changed
    DELETE = "delete"  # an object or bucket removed


PLACEMENT = AuditKind.PLACEMENT
REFUSAL = AuditKind.REFUSAL
ACCESS_DENIED = AuditKind.ACCESS_DENIED
THRESHOLD_HIT = AuditKind.THRESHOLD_HIT
MIGRATION_STEP = AuditKind.MIGRATION_STEP
ADMIN = AuditKind.ADMIN
DELETE = AuditKind.DELETE

KINDS: frozenset[str] = frozenset(k.value for k in AuditKind)


def parse_kind(value: str) -> AuditKind:
    """The kind named by `value`; a ValueError that lists the valid kinds otherwise."""
    try:
        return AuditKind(value)
    except ValueError:
        raise ValueError(
            f"unknown audit kind {value!r}; use one of {', '.join(sorted(KINDS))}"
        ) from None
