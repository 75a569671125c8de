"""The planner's decisions, in-process: copies, deletes, keeps, sources, costs, caching."""

from __future__ import annotations

import pytest
from migrate_support import AWS, ORACLE, POLICY, SRC

from residency.catalog import load_catalog
from residency.config import LocationConfig
from residency.migrate.planfile import PlanAction, Unplaceable
from residency.migrate.planner import Planner
from residency.policy import load_policy

EU = "aws-eu-central-1"


@pytest.fixture
def planner() -> Planner:
    catalog = load_catalog()
    locs = [
        LocationConfig(name=SRC, provider="alibaba", region="ap-southeast-1"),
        LocationConfig(name=ORACLE, provider="oci", region="us-ashburn-1"),
        LocationConfig(name=AWS, provider="aws", region="us-east-1"),
        LocationConfig(name=EU, provider="aws", region="eu-central-1"),
    ]
    return Planner(load_policy(POLICY), [catalog.facts_for(c) for c in locs])


def plan(
    planner: Planner,
    placements: list[str],
    cls: str = "personal",
    subject: str = "US",
    key: str = "k",
    size: int = 1000,
) -> PlanAction | Unplaceable | None:
    return planner.plan_object(
        bucket="b",
        key=key,
        version_id="v",
        size=size,
        segments=1,
        data_class=cls,
        subject=subject,
        tenant="t",
        placements=placements,
    )


def test_us_data_moves_off_alibaba_to_two_us_providers(planner: Planner) -> None:
    action = plan(planner, [SRC])
    assert isinstance(action, PlanAction)
    assert action.src == SRC
    assert action.copy_to == (ORACLE, AWS)  # the policy prefers Oracle; spread by provider
    assert action.delete_from == (SRC,)
    # Every law in scope applies at once: the TikTok rule and the clean-cloud law it extends.
    assert action.rule is not None
    assert "project-texas" in action.rule.split(",")


def test_compliant_replicas_are_kept_and_counted(planner: Planner) -> None:
    assert plan(planner, [ORACLE, AWS]) is None
    # One compliant copy stays and counts; the second replica comes from a cheaper source.
    action = plan(planner, [SRC, AWS])
    assert isinstance(action, PlanAction)
    assert action.copy_to == (ORACLE,)
    assert action.delete_from == (SRC,)
    assert action.src == AWS  # priced egress beats Alibaba's unknown price


def test_delete_only_when_replicas_are_complete(planner: Planner) -> None:
    action = plan(planner, [SRC, ORACLE, AWS])
    assert isinstance(action, PlanAction)
    assert (action.copy_to, action.delete_from, action.src) == ((), (SRC,), None)


def test_no_compliant_location_and_no_known_source(planner: Planner) -> None:
    # Russian personal data must stay in Russia: no configured location qualifies.
    item = plan(planner, [SRC], subject="RU")
    assert isinstance(item, Unplaceable)
    assert item.reason
    item = plan(planner, ["somewhere-else"], key="lost")
    assert isinstance(item, Unplaceable)
    assert "no configured location holds it" in item.reason
    s = planner.summary
    assert (s.unplaceable, s.no_source) == (2, 1)
    assert [x["key"] for x in s.unplaceable_sample] == ["k", "lost"]


def test_summary_costs_and_decision_cache(planner: Planner) -> None:
    for i in range(100):
        plan(planner, [SRC], key=f"us/{i}", size=1 << 20)
    for i in range(50):
        plan(planner, [EU], cls="public", key=f"p/{i}", size=10)
    s = planner.summary
    assert s.decisions == 2  # 150 objects, two distinct (class, subject, tenant, bucket)
    assert (s.objects, s.moves, s.keep) == (150, 100, 50)
    assert (s.copies, s.copy_bytes, s.deletes) == (200, 200 << 20, 100)
    assert s.unpriced_egress_bytes == {"alibaba": 200 << 20}
    assert s.routes[f"{SRC} -> {ORACLE}"] == [100, 100 << 20]
    assert (s.gets, s.puts, s.delete_requests) == (200, 200, 100)
    assert s.duration_s(100 << 20) == pytest.approx(2.0)
    # From a priced source, egress is charged at the catalog price.
    plan(planner, [EU], key="eu-copy", size=1 << 30)
    assert planner.summary.egress_usd_by_provider["aws"] > 0
