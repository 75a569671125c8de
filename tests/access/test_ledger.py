"""The 28 CFR 202 bulk-data ledger on a real SQLite database: arithmetic, window, aggregation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from residency.access import (
    BulkRulesError,
    Ledger,
    LedgerDecision,
    ObjectRef,
    PrincipalRef,
    load_bulk_rules,
)
from residency.access.models import LedgerCharge
from residency.meta import Database

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LI = PrincipalRef("acme", "li", country="CN", covered_person=True, organisation="ByteDance")
WANG = PrincipalRef("acme", "wang", country="CN", covered_person=True, organisation="ByteDance")
ZHAO = PrincipalRef("acme", "zhao", country="CN", covered_person=True)
SECURE = PrincipalRef("acme", "ops", covered_person=True, security_controls=True)
ALICE = PrincipalRef("acme", "alice", country="US")

_seq = iter(range(10**9))


def obj(
    data_class: str,
    count: int | None,
    subject: str = "US",
    *,
    key: str | None = None,
    version: str | None = None,
    tenant: str = "acme",
) -> ObjectRef:
    n = next(_seq)
    return ObjectRef(
        bucket="acme-data",
        key=key or f"obj-{n}",
        tenant=tenant,
        data_class=data_class,
        subject=subject,
        subject_count=count,
        version_id=version if version is not None else f"v{n}",
    )


async def charge(
    db: Database,
    who: PrincipalRef,
    target: ObjectRef,
    now: datetime = NOW,
    ledger: Ledger | None = None,
) -> LedgerDecision:
    async with db.session() as session:
        return await (ledger or Ledger()).charge(session, who, target, now=now)


async def total(db: Database) -> int:
    async with db.session(write=False) as session:
        return int(await session.scalar(select(func.coalesce(func.sum(LedgerCharge.records), 0))))


def test_default_thresholds_are_those_of_28_cfr_202_205() -> None:
    rules = load_bulk_rules()
    expected = {
        "government_related": 0,
        "human_genomic": 100,
        "human_omic_other": 1000,
        "biometric_identifiers": 1000,
        "precise_geolocation": 1000,
        "personal_health": 10000,
        "personal_financial": 10000,
        "covered_personal_identifiers": 100000,
    }
    assert {n: c.threshold for n, c in rules.categories.items()} == expected
    prohibited = {n for n, c in rules.categories.items() if c.prohibited}
    assert prohibited == {"government_related", "human_genomic", "human_omic_other"}
    assert rules.window_days == 365
    assert rules.category_for("genomic.wgs", "US").name == "human_genomic"  # type: ignore[union-attr]
    assert rules.category_for("proteomic", "us").name == "human_omic_other"  # type: ignore[union-attr]
    assert rules.category_for("personal.health", "DE") is None
    assert rules.category_for("personal.healthy", "US") is None
    assert rules.category_for("public", "US") is None


async def test_exactly_the_threshold_is_allowed_one_more_is_denied(db: Database) -> None:
    first = await charge(db, ZHAO, obj("genomic", 60))
    assert first.allowed
    assert first.applies
    assert first.audit_kind is None
    assert (first.before, first.records, first.after) == (0, 60, 60)
    at_limit = await charge(db, ZHAO, obj("genomic", 40))
    assert at_limit.allowed
    assert at_limit.after == 100
    over = await charge(db, ZHAO, obj("genomic", 1))
    assert not over.allowed
    assert over.audit_kind == "threshold_hit"
    assert (over.before, over.records, over.threshold) == (100, 0, 100)
    assert "would reach 101" in over.reason
    assert "more than the threshold of 100" in over.reason
    assert "prohibited transaction" in over.reason
    assert await total(db) == 100  # the denied access was not charged


async def test_rolling_window_lets_old_charges_expire(db: Database) -> None:
    start = NOW - timedelta(days=400)
    assert (await charge(db, ZHAO, obj("genomic", 100), now=start)).allowed
    assert not (await charge(db, ZHAO, obj("genomic", 1), now=start + timedelta(days=364))).allowed
    # Exactly 365 days later the old charge has left the preceding 12 months.
    later = await charge(db, ZHAO, obj("genomic", 100), now=start + timedelta(days=365))
    assert later.allowed
    assert later.before == 0


async def test_organisation_aggregates_its_staff(db: Database) -> None:
    assert (await charge(db, LI, obj("biometric", 600))).allowed
    second = await charge(db, WANG, obj("biometric", 401))
    assert second.holder == "org:ByteDance"
    assert second.before == 600
    assert not second.allowed
    assert "restricted transaction without the required security controls" in second.reason
    # Someone without that organisation has an account of their own.
    assert (await charge(db, ZHAO, obj("biometric", 1000))).allowed


async def test_accounts_are_per_tenant_and_category(db: Database) -> None:
    assert (await charge(db, ZHAO, obj("genomic", 100))).allowed
    assert (await charge(db, ZHAO, obj("genomic", 100, tenant="globex"))).allowed
    assert (await charge(db, ZHAO, obj("personal.health", 10000))).allowed


async def test_security_controls_exempt_restricted_but_not_prohibited(db: Database) -> None:
    assert (await charge(db, SECURE, obj("personal.financial", 10000))).allowed
    past = await charge(db, SECURE, obj("personal.financial", 5))
    assert past.allowed
    assert past.records == 5
    assert past.audit_kind == "threshold_hit"
    assert "security controls (28 CFR 202.401)" in past.reason
    assert (await charge(db, SECURE, obj("omic", 1000))).allowed
    prohibited = await charge(db, SECURE, obj("omic.proteomic", 1))
    assert not prohibited.allowed
    assert prohibited.kind == "prohibited"
    assert "28 CFR 202.301-303" in prohibited.reason


async def test_government_related_data_has_no_threshold(db: Database) -> None:
    denied = await charge(db, ZHAO, obj("government", 1))
    assert not denied.allowed
    assert denied.threshold == 0
    denied_secure = await charge(db, SECURE, obj("government.geolocation", 1))
    assert not denied_secure.allowed


async def test_not_covered_data_or_principal_is_not_counted(db: Database) -> None:
    for decision in (
        await charge(db, ALICE, obj("genomic", 10**6)),
        await charge(db, ZHAO, obj("genomic", 10**6, subject="DE")),
        await charge(db, ZHAO, obj("genomic", 10**6, subject=None)),  # type: ignore[arg-type]
        await charge(db, ZHAO, obj("public", 10**6)),
    ):
        assert decision.allowed
        assert not decision.applies
        assert decision.audit_kind is None
    assert await total(db) == 0
    ledger = Ledger()
    assert not ledger.applies(ALICE, obj("genomic", 1))
    assert not ledger.applies(ZHAO, obj("genomic", 1, subject="DE"))
    assert ledger.applies(ZHAO, obj("genomic", 1))


async def test_one_version_counts_once_per_window(db: Database) -> None:
    target = obj("genomic", 80, key="cohort.vcf", version="v1")
    assert (await charge(db, ZHAO, target)).records == 80
    again = await charge(db, ZHAO, target, now=NOW + timedelta(days=1))
    assert again.allowed
    assert again.records == 0
    assert "already counted" in again.reason
    # A new version of the same key is new data.
    assert not (await charge(db, ZHAO, obj("genomic", 80, key="cohort.vcf", version="v2"))).allowed
    # After the window the same version counts again.
    renewed = await charge(db, ZHAO, target, now=NOW + timedelta(days=366))
    assert renewed.records == 80


async def test_undeclared_count_counts_as_one_record(db: Database) -> None:
    assert (await charge(db, ZHAO, obj("genomic", 100))).allowed
    unknown = await charge(db, ZHAO, obj("genomic", None))
    assert not unknown.allowed
    assert "would reach 101" in unknown.reason


async def test_standings_report_count_threshold_and_share(db: Database) -> None:
    await charge(db, LI, obj("personal.health", 2500))
    await charge(db, WANG, obj("personal.health", 2500))
    await charge(db, SECURE, obj("biometric", 1500))
    await charge(db, ZHAO, obj("genomic", 7), now=NOW - timedelta(days=500))
    async with db.session(write=False) as session:
        rows = await Ledger().standings(session, now=NOW)
    by_holder = {(r.holder, r.category): r for r in rows}
    health = by_holder[("org:ByteDance", "personal_health")]
    assert (health.count, health.threshold, health.percent_used) == (5000, 10000, 50.0)
    assert health.principals == ("acme/li", "acme/wang")
    assert health.window_end == NOW
    assert health.window_start == NOW - timedelta(days=365)
    bio = by_holder[("principal:acme/ops", "biometric_identifiers")]
    assert bio.over
    assert rows[0] is bio  # over-threshold accounts first
    expired = by_holder[("principal:acme/zhao", "human_genomic")]
    assert expired.count == 0
    assert expired.to_dict()["percent_used"] == 0.0
    async with db.session(write=False) as session:
        assert await Ledger().standings(session, now=NOW, tenant="globex") == []


async def test_custom_thresholds_file(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "window_days: 30\n"
        "categories:\n"
        "  human_genomic: {threshold: 5, prohibited: true, classes: [genomic, genomic.*]}\n"
    )
    ledger = Ledger(load_bulk_rules(path))
    assert (await charge(db, ZHAO, obj("genomic", 5), ledger=ledger)).allowed
    assert not (await charge(db, ZHAO, obj("genomic", 1), ledger=ledger)).allowed
    later = await charge(db, ZHAO, obj("genomic", 5), now=NOW + timedelta(days=30), ledger=ledger)
    assert later.allowed
    assert later.window_days == 30


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("categories: {x: {threshold: -1, classes: [a]}}\n", "categories.x.threshold"),
        ("categories: {x: {threshold: 1}}\n", "categories.x.classes"),
        ("categories: {x: {threshold: 1, classes: [a], colour: red}}\n", "colour"),
        ("[1, 2]\n", "expected a mapping"),
        ("categories: {x: {threshold: 1, classes: [a]\n", "not valid YAML"),
    ],
)
def test_bad_thresholds_files_are_explained(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(BulkRulesError, match=r"bad\.yaml") as info:
        load_bulk_rules(path)
    assert fragment in info.value.message
    with pytest.raises(BulkRulesError, match="file not found"):
        load_bulk_rules(tmp_path / "none.yaml")
