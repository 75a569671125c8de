"""The 28 CFR 202 bulk-data ledger: how many US persons' records each covered holder has seen.

`Ledger.charge` is called when a covered principal is about to read an object. In the
caller's transaction it locks the holder's account row, sums the charges of the rolling
window, and either records the access or refuses it:

- the category's threshold is "more than N" (202.205): a total of exactly N is allowed;
- past the threshold a *prohibited* category ('omic data 202.303, government-related data
  202.301) is denied, a *restricted* one (202.401) is denied unless the principal has
  `security_controls` (then allowed, and reported as a threshold hit);
- one object version counts once per window, however often it is read;
- a denied access is not charged.

Holders are organisations when the principal names one (aggregation across a counterparty's
staff, 202.205 "in the aggregate"), else the principal itself; accounts are per tenant (the
US person that owns the data). Charges stay in the table after they leave the window: they
are the record keeping of 202.1101.

Run `charge` in a write session (`db.session()`): on SQLite that holds the write lock from
the start, on PostgreSQL the account row lock serialises charges to the same account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, false, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from residency.access.categories import BulkCategory, BulkRules, load_bulk_rules
from residency.access.entities import ObjectRef, PrincipalRef
from residency.access.models import LedgerAccount, LedgerCharge

# Audit kinds (values of residency.audit.kinds.AuditKind; not imported: same layer).
THRESHOLD_HIT = "threshold_hit"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class LedgerDecision:
    """The ledger's verdict on one access.

    `applies` is False when the ledger has nothing to say (not a covered principal, not a
    covered category, not US persons' data). `audit_kind` is "threshold_hit" whenever the
    access would take the holder past the threshold, allowed or not; `reason` is one
    sentence for the 403 message and the audit entry.
    """

    allowed: bool
    applies: bool
    reason: str
    category: str | None = None
    kind: str | None = None  # "prohibited" | "restricted"
    tenant: str | None = None
    holder: str | None = None
    threshold: int | None = None
    window_days: int | None = None
    before: int = 0  # records in the window before this access
    records: int = 0  # records this access added (0: denied, or already counted)
    audit_kind: str | None = None
    citation: str = ""

    @property
    def after(self) -> int:
        return self.before + self.records

    def audit_detail(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "category": self.category,
            "kind": self.kind,
            "holder": self.holder,
            "threshold": self.threshold,
            "window_days": self.window_days,
            "before": self.before,
            "records": self.records,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Standing:
    """Where one account stands in its current window (for `residency access ledger`)."""

    tenant: str
    holder: str
    category: str
    kind: str
    count: int
    threshold: int
    window_days: int
    window_start: datetime
    window_end: datetime
    principals: tuple[str, ...] = field(default=())
    last_charge: datetime | None = None

    @property
    def percent_used(self) -> float | None:
        """Share of the threshold used; None for "any volume" (threshold 0)."""
        return None if self.threshold == 0 else 100.0 * self.count / self.threshold

    @property
    def over(self) -> bool:
        return self.count > self.threshold

    def to_dict(self) -> dict[str, Any]:
        pct = self.percent_used
        return {
            "tenant": self.tenant,
            "holder": self.holder,
            "category": self.category,
            "kind": self.kind,
            "count": self.count,
            "threshold": self.threshold,
            "percent_used": None if pct is None else round(pct, 2),
            "over_threshold": self.over,
            "window_days": self.window_days,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "principals": list(self.principals),
            "last_charge": self.last_charge.isoformat() if self.last_charge else None,
        }


class Ledger:
    """Bulk-data accounting under one set of thresholds (immutable; share it)."""

    def __init__(self, rules: BulkRules | None = None) -> None:
        self.rules = rules or load_bulk_rules()

    def applies(self, principal: PrincipalRef, obj: ObjectRef) -> bool:
        """Whether `charge` has anything to record: check before opening a write session, so
        ordinary reads stay on read-only transactions."""
        return principal.covered_person and (
            self.rules.category_for(obj.data_class, obj.subject) is not None
        )

    async def charge(
        self,
        session: AsyncSession,
        principal: PrincipalRef,
        obj: ObjectRef,
        *,
        now: datetime | None = None,
    ) -> LedgerDecision:
        """Check and record `principal` reading `obj`, in the caller's transaction."""
        now = now or _utcnow()
        category = self.rules.category_for(obj.data_class, obj.subject)
        if category is None:
            return LedgerDecision(True, False, "not covered data (28 CFR 202.205)")
        if not principal.covered_person:
            return LedgerDecision(
                True, False, f"{principal.uid} is not a covered person (28 CFR 202.211)"
            )
        window = self.rules.window_of(category)
        since = now - timedelta(days=window)
        account_id = await _lock_account(session, obj.tenant, principal.holder, category.name, now)
        target = f"{obj.bucket}/{obj.key}"
        base = _Base(category, obj.tenant, principal.holder, window)
        before, counted = await _window(session, account_id, since, target, obj.version_id)
        if counted:
            return base.decision(
                True, before, 0, None, f"{target} already counted for {principal.holder}"
            )
        records = max(obj.subject_count if obj.subject_count is not None else 1, 0)
        after = before + records
        if after <= category.threshold:
            await _record(session, account_id, now, principal, target, obj.version_id, records)
            return base.decision(True, before, records, None, "within the bulk threshold")
        exempt = not category.prohibited and principal.security_controls
        over = (
            f"{principal.holder} would reach {after} US persons' {category.name} records "
            f"({category.unit}) in {window} days, more than the threshold of "
            f"{category.threshold} ({category.citation})"
        )
        if exempt:
            await _record(session, account_id, now, principal, target, obj.version_id, records)
            return base.decision(
                True,
                before,
                records,
                THRESHOLD_HIT,
                f"{over}; restricted transaction allowed: {principal.uid} has the required "
                "security controls (28 CFR 202.401)",
            )
        outcome = (
            "prohibited transaction (28 CFR 202.301-303), denied"
            if category.prohibited
            else "restricted transaction without the required security controls "
            "(28 CFR 202.401), denied"
        )
        return base.decision(False, before, 0, THRESHOLD_HIT, f"{over}: {outcome}")

    async def standings(
        self,
        session: AsyncSession,
        *,
        now: datetime | None = None,
        tenant: str | None = None,
    ) -> list[Standing]:
        """Every account's count in its current window, highest share of threshold first."""
        now = now or _utcnow()
        stmt = select(LedgerAccount).order_by(
            LedgerAccount.tenant, LedgerAccount.holder, LedgerAccount.category
        )
        if tenant is not None:
            stmt = stmt.where(LedgerAccount.tenant == tenant)
        out: list[Standing] = []
        for account in (await session.scalars(stmt)).all():
            category = self.rules.categories.get(account.category)
            if category is None:  # thresholds file no longer has it: nothing to judge against
                continue
            window = self.rules.window_of(category)
            since = now - timedelta(days=window)
            row = (
                await session.execute(
                    select(
                        func.coalesce(func.sum(LedgerCharge.records), 0), func.max(LedgerCharge.ts)
                    ).where(LedgerCharge.account_id == account.id, LedgerCharge.ts > since)
                )
            ).one()
            principals = (
                await session.scalars(
                    select(LedgerCharge.principal)
                    .where(LedgerCharge.account_id == account.id, LedgerCharge.ts > since)
                    .distinct()
                    .order_by(LedgerCharge.principal)
                )
            ).all()
            out.append(
                Standing(
                    tenant=account.tenant,
                    holder=account.holder,
                    category=account.category,
                    kind=category.kind,
                    count=int(row[0]),
                    threshold=category.threshold,
                    window_days=window,
                    window_start=since,
                    window_end=now,
                    principals=tuple(principals),
                    last_charge=row[1],
                )
            )
        out.sort(key=lambda s: (not s.over, -(s.percent_used or 0.0), s.tenant, s.holder))
        return out


@dataclass(frozen=True, slots=True)
class _Base:
    category: BulkCategory
    tenant: str
    holder: str
    window: int

    def decision(
        self, allowed: bool, before: int, records: int, audit_kind: str | None, reason: str
    ) -> LedgerDecision:
        return LedgerDecision(
            allowed=allowed,
            applies=True,
            reason=reason,
            category=self.category.name,
            kind=self.category.kind,
            tenant=self.tenant,
            holder=self.holder,
            threshold=self.category.threshold,
            window_days=self.window,
            before=before,
            records=records,
            audit_kind=audit_kind,
            citation=self.category.citation,
        )


async def _lock_account(
    session: AsyncSession, tenant: str, holder: str, category: str, now: datetime
) -> int:
    """The account's id, created on first use, with its row locked until commit."""
    locked = (
        select(LedgerAccount.id)
        .where(
            LedgerAccount.tenant == tenant,
            LedgerAccount.holder == holder,
            LedgerAccount.category == category,
        )
        .with_for_update()
    )
    account_id = await session.scalar(locked)
    if account_id is not None:
        return account_id
    values = {"tenant": tenant, "holder": holder, "category": category, "created": now}
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert

        await session.execute(insert(LedgerAccount).values(**values).on_conflict_do_nothing())
    elif dialect == "postgresql":
        # Two first charges may race to create the account: one inserts, the other waits for
        # its commit and then finds (and locks) the row below.
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        await session.execute(pg_insert(LedgerAccount).values(**values).on_conflict_do_nothing())
    else:
        session.add(LedgerAccount(**values))
        await session.flush()
    account_id = await session.scalar(locked)
    if account_id is None:  # pragma: no cover - inserted just above in this transaction
        raise RuntimeError("ledger account vanished")
    return account_id


async def _window(
    session: AsyncSession, account_id: int, since: datetime, target: str, version_id: str | None
) -> tuple[int, bool]:
    """Records charged in the window, and whether this very version is among them (one scan).

    An unversioned reference is never "the same data": it is always charged.
    """
    same = (
        and_(LedgerCharge.target == target, LedgerCharge.version_id == version_id)
        if version_id is not None
        else false()
    )
    row = (
        await session.execute(
            select(
                func.coalesce(func.sum(LedgerCharge.records), 0),
                func.coalesce(func.max(case((same, 1), else_=0)), 0),
            ).where(LedgerCharge.account_id == account_id, LedgerCharge.ts > since)
        )
    ).one()
    return int(row[0]), bool(row[1])


async def _record(
    session: AsyncSession,
    account_id: int,
    now: datetime,
    principal: PrincipalRef,
    target: str,
    version_id: str | None,
    records: int,
) -> None:
    session.add(
        LedgerCharge(
            account_id=account_id,
            ts=now,
            principal=principal.uid,
            target=target,
            version_id=version_id,
            records=records,
        )
    )
    await session.flush()


async def charge(
    session: AsyncSession,
    principal: PrincipalRef,
    obj: ObjectRef,
    *,
    now: datetime | None = None,
    rules: BulkRules | None = None,
) -> LedgerDecision:
    """`Ledger(rules).charge(...)` with the default thresholds unless `rules` is given."""
    return await Ledger(rules).charge(session, principal, obj, now=now)


__all__: Sequence[str] = ("Ledger", "LedgerDecision", "Standing", "charge")
