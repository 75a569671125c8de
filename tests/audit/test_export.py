"""Export: filters, batching, time specs, and records an auditor can re-verify on their own."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from audit_helpers import append_many

from residency import audit
from residency.audit.export import RECORD_FIELDS
from residency.meta import Database


async def _export(db: Database, **kwargs: object) -> list[dict[str, object]]:
    async with db.session(write=False) as session:
        return [rec async for rec in audit.iter_entries(session, **kwargs)]  # type: ignore[arg-type]


async def test_export_streams_every_entry_in_order_across_batches(db: Database) -> None:
    await append_many(db, 7)
    records = await _export(db, batch_size=3)
    assert [r["seq"] for r in records] == list(range(1, 8))
    assert all(tuple(r) == RECORD_FIELDS for r in records)
    assert records[1]["detail"] == {
        "n": 1,
        "locations": ["eu-1", "eu-2"],
        "why": "rule eu-personal",
    }
    assert records[1]["tenant"] == "acme"
    assert records[0]["tenant"] is None


async def test_export_filters_by_kind_and_time(db: Database) -> None:
    await append_many(db, 3, kind="placement")
    middle = datetime.now(UTC)
    await append_many(db, 2, kind="refusal")
    await append_many(db, 1, kind="placement")
    end = datetime.now(UTC)
    await append_many(db, 1, kind="admin")

    assert [r["seq"] for r in await _export(db, kind="refusal")] == [4, 5]
    assert [r["seq"] for r in await _export(db, since=middle)] == [4, 5, 6, 7]
    assert [r["seq"] for r in await _export(db, until=middle)] == [1, 2, 3]
    assert [r["seq"] for r in await _export(db, since=middle, until=end, kind="placement")] == [6]
    assert [r["seq"] for r in await _export(db, kind="placement", batch_size=1)] == [1, 2, 3, 6]
    assert await _export(db, kind="delete") == []
    with pytest.raises(ValueError, match="unknown audit kind"):
        await _export(db, kind="nope")


async def test_an_auditor_can_recheck_the_chain_from_the_export_alone(db: Database) -> None:
    await append_many(db, 5)
    prev = "0" * 64
    for rec in await _export(db):
        doc = {k: rec[k] for k in ("seq", "ts", "kind", "actor", "tenant", "target", "detail")}
        doc["v"] = 1
        body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert rec["prev_hash"] == prev
        assert rec["hash"] == hashlib.sha256(bytes.fromhex(prev) + body.encode()).hexdigest()
        prev = str(rec["hash"])


async def test_last_entries_are_the_newest_oldest_first(db: Database) -> None:
    await append_many(db, 5)
    async with db.session(write=False) as session:
        assert [r["seq"] for r in await audit.last_entries(session, 2)] == [4, 5]
        assert [r["seq"] for r in await audit.last_entries(session, 50)] == [1, 2, 3, 4, 5]


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", NOW - timedelta(hours=24)),
        ("90s", NOW - timedelta(seconds=90)),
        ("1h30m", NOW - timedelta(hours=1, minutes=30)),
        ("7d", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(weeks=2)),
        ("2026-11-01T08:00:00Z", datetime(2026, 11, 1, 8, tzinfo=UTC)),
        ("2026-11-01T09:00:00+01:00", datetime(2026, 11, 1, 8, tzinfo=UTC)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
    ],
)
def test_time_specs(text: str, expected: datetime) -> None:
    assert audit.parse_time(text, now=NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "24", "h", "5y", "2026-13-01", "1h 30m"])
def test_bad_time_specs_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="neither an ISO 8601 time"):
        audit.parse_time(text, now=NOW)
