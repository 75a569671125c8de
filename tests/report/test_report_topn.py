"""In-process: the capped list is exactly the N largest violations across many groups."""

from __future__ import annotations

import random
from pathlib import Path

from report_support import ALI, AWS, OCI, make_world, payload, put

from residency.catalog import load_catalog
from residency.config import load_settings
from residency.meta import Database
from residency.policy import load_policy
from residency.report import collect_report, render_html
from residency.storage import open_locations

SETS = {(ALI,): True, (OCI,): True, (OCI, AWS): False, (AWS, OCI): False, (ALI, OCI): True}


async def test_top_n_is_the_largest_violations_in_order(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    settings = load_settings(world.config)
    settings.data_dir.mkdir(parents=True)
    catalog = load_catalog()
    db = Database(settings.db_url)
    rng = random.Random(7)
    expected: list[tuple[int, str, str]] = []
    try:
        await db.migrate()
        locations = open_locations(settings, catalog)
        for i in range(90):
            bucket = f"bucket-{i % 3}"
            at = rng.choice(list(SETS))
            size = rng.choice([10, 20, 30, 40, 50, 60, 70, 80, 90, 100])  # many ties
            cls, subject = ("public", None) if i % 10 == 0 else ("personal.health", "US")
            key = f"k/{i:03d}"
            await put(
                db,
                locations,
                tenant="t",
                bucket=bucket,
                key=key,
                data_class=cls,
                subject=subject,
                data=payload(key, size),
                at=at,
            )
            if cls != "public" and SETS[at]:
                expected.append((size, bucket, key))
        facts = [catalog.facts_for(c) for c in settings.locations]
        policy = load_policy(world.policy)
        report = await collect_report(db, policy, facts, catalog, top=7)
        full = await collect_report(db, policy, facts, catalog, top=1000)
    finally:
        await db.dispose()
    expected.sort(key=lambda e: (-e[0], e[1], e[2]))
    assert report.violations_total == len(expected)
    assert report.violations_bytes == sum(e[0] for e in expected)
    assert [(v.size, v.bucket, v.key) for v in report.violations] == expected[:7]
    assert [(v.size, v.bucket, v.key) for v in full.violations] == expected
    under = next(v for v in full.violations if v.locations == (OCI,))
    assert under.reasons == ("1 compliant replica(s) of the 2 that rule us-health requires",)
    assert under.copy_to == (AWS,)
    assert under.delete_from == ()
    html = render_html(report)
    assert html.count('<td class="key">') == 7


async def test_top_n_never_lists_a_compliant_object_of_a_like_group(tmp_path: Path) -> None:
    """Two objects alike in class, subject, bucket and placement but not in how many persons
    they hold: only the one over the bulk threshold violates, and only it is listed."""
    world = make_world(tmp_path)
    world.policy.write_text(
        """\
name: bulk-only
rules:
  - id: bulk-genomic
    citation: 28 CFR 202.224
    scope: {data_class: genomic, subject: US, over_subjects: 100}
    constraints: {deny_vendor_hq: ["@COUNTRIES_OF_CONCERN"]}
"""
    )
    settings = load_settings(world.config)
    settings.data_dir.mkdir(parents=True)
    catalog = load_catalog()
    db = Database(settings.db_url)
    try:
        await db.migrate()
        locations = open_locations(settings, catalog)
        for key, count, size in (("bulk", 5000, 10), ("few", 3, 99)):
            await put(
                db,
                locations,
                tenant="t",
                bucket="labs",
                key=key,
                data_class="genomic",
                subject="US",
                data=payload(key, size),
                at=(ALI,),
                subject_count=count,
            )
        facts = [catalog.facts_for(c) for c in settings.locations]
        report = await collect_report(db, load_policy(world.policy), facts, catalog, top=10)
    finally:
        await db.dispose()
    assert report.violations_total == 1
    assert [(v.key, v.size) for v in report.violations] == [("bulk", 10)]
