"""Residency applies to every version (issue #13, "Versioning"): each version with bytes is
placed by its own classification, `plan`/`migrate` move it, `verify`, `scan`, `report` and
`policy diff` count it, and one left where the policy forbids it is out of compliance; delete
markers hold no bytes and never show up as objects. Through the real CLI, on fs locations,
with the versions written through meta's write path (intents, real blobs, commit)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from migrate_support import AWS, ORACLE, SRC, World, audit_details, json_lines, run_cli

from residency.catalog import load_catalog
from residency.config import load_settings
from residency.meta import Database
from residency.meta.repo.buckets import create_bucket, find_bucket
from residency.meta.repo.tenants import create_tenant
from residency.meta.specs import Checksums, VersionAttrs
from residency.meta.writes import commit_version, delete_object, fresh_blob_key, register_intents
from residency.storage import Location, open_locations, write_replicated

BUCKET = "tiktok"
US = VersionAttrs(data_class="personal", subject="US")
PUBLIC = VersionAttrs(data_class="public")


@dataclass(frozen=True)
class Version:
    key: str
    version_id: str
    """internal (plans and the audit log name versions by it)"""
    s3_id: str
    """what S3 clients see: `null` or the id"""
    size: int
    data: bytes
    blob: str


@dataclass
class Seeded:
    """us/old.bin: a null version (personal/US at Alibaba, from before versioning) under a
    current public one; us/report.pdf: a personal/US version under a current public one, both
    at Alibaba; us/gone.bin: a personal/US version under a delete marker; videos/v.public: one
    current public version. Alibaba may hold public data, never US persons' (Project Texas)."""

    old_null: Version
    old_current: Version
    report_v1: Version
    report_current: Version
    gone_v1: Version
    marker: str
    video: Version

    @property
    def noncurrent(self) -> list[Version]:
        return [self.old_null, self.report_v1, self.gone_v1]

    @property
    def current(self) -> list[Version]:
        return [self.old_current, self.report_current, self.video]


def body(key: str, size: int) -> bytes:
    unit = f"{key}|".encode()
    return (unit * (size // len(unit) + 1))[:size]


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _put(
    db: Database, locations: dict[str, Location], key: str, attrs: VersionAttrs, size: int
) -> Version:
    data = body(f"{key}/{attrs.data_class}/{size}", size)
    blob = fresh_blob_key()
    async with db.session() as session:
        await register_intents(session, [(SRC, blob)])
    info = await write_replicated([locations[SRC]], blob, _chunks(data), expect_size=size)
    async with db.session() as session:
        bucket = await find_bucket(session, BUCKET)
        assert bucket is not None
        commit = await commit_version(
            session,
            bucket,
            key,
            attrs,
            blob_key=blob,
            size=info.size,
            etag=info.etag,
            checksums=Checksums.from_digests(info),
            locations=(SRC,),
        )
        v = commit.version
        return Version(key, v.version_id, v.s3_version_id, v.size, data, blob)


async def _versioning(db: Database, state: str) -> None:
    async with db.session() as session:
        bucket = await find_bucket(session, BUCKET)
        assert bucket is not None
        bucket.versioning = state


async def _seed(world: World) -> Seeded:
    settings = load_settings(world.config)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url)
    try:
        await db.migrate()
        locations = open_locations(settings, load_catalog())
        async with db.session() as session:
            await create_bucket(session, await create_tenant(session, "bt"), BUCKET)
        old_null = await _put(db, locations, "us/old.bin", US, 500)
        await _versioning(db, "Enabled")
        old_current = await _put(db, locations, "us/old.bin", PUBLIC, 300)
        report_v1 = await _put(db, locations, "us/report.pdf", US, 1000)
        report_current = await _put(db, locations, "us/report.pdf", PUBLIC, 600)
        gone_v1 = await _put(db, locations, "us/gone.bin", US, 700)
        async with db.session() as session:
            bucket = await find_bucket(session, BUCKET)
            assert bucket is not None
            deletion = await delete_object(session, bucket, "us/gone.bin")
            assert deletion.marker is not None
            marker = deletion.marker.version_id
        video = await _put(db, locations, "videos/v.public", PUBLIC, 400)
    finally:
        await db.dispose()
    assert old_null.s3_id == "null"
    assert report_v1.s3_id == report_v1.version_id != "null"
    return Seeded(old_null, old_current, report_v1, report_current, gone_v1, marker, video)


@pytest.fixture
def seeded(world: World) -> Seeded:
    return asyncio.run(_seed(world))


def cli(world: World, *args: str) -> tuple[int, str, str]:
    r = run_cli(*args, *world.args(), cwd=world.root)
    assert "Traceback" not in r.stderr, r.stderr
    return r.code, r.stdout, r.stderr


def placements(world: World, version_id: str) -> dict[str, bytes]:
    """The bytes of one version at each location the database places it."""
    con = sqlite3.connect(world.root / "data" / "residency.db")
    try:
        rows = con.execute(
            "select p.location, s.blob_key from object_versions v "
            "join segments s on s.object_version_id = v.id "
            "join placements p on p.object_version_id = v.id "
            "where v.version_id = ? order by p.location, s.seq",
            (version_id,),
        ).fetchall()
    finally:
        con.close()
    return {loc: (world.dir(loc) / key).read_bytes() for loc, key in rows}


def latest(world: World, version_id: str) -> bool:
    con = sqlite3.connect(world.root / "data" / "residency.db")
    try:
        row = con.execute(
            "select is_latest from object_versions where version_id = ?", (version_id,)
        ).fetchone()
    finally:
        con.close()
    return bool(row[0])


def test_every_version_with_bytes_is_planned_moved_verified_scanned_and_reported(
    world: World, seeded: Seeded
) -> None:
    s = seeded
    noncurrent_ids = {v.version_id for v in s.noncurrent}
    noncurrent_bytes = sum(v.size for v in s.noncurrent)
    all_bytes = sum(v.size for v in s.noncurrent + s.current)

    # plan: a move for each noncurrent personal/US version, by its own classification; the
    # current versions (public) stay; the delete marker is no object.
    plan = world.root / "plan.jsonl"
    code, out, err = cli(world, "plan", "-o", str(plan), "--json")
    assert code == 0, out + err
    summary = json.loads(out)
    assert summary["objects"] == 6
    assert summary["bytes"] == all_bytes
    assert (summary["noncurrent_versions"], summary["noncurrent_bytes"]) == (3, noncurrent_bytes)
    assert (summary["moves"], summary["keep"]) == (3, 3)
    assert (summary["copies"], summary["deletes"]) == (6, 3)
    assert summary["routes"][f"{SRC} -> {ORACLE}"] == {"objects": 3, "bytes": noncurrent_bytes}
    lines = json_lines(plan.read_text())[1:-1]
    assert all(line["op"] == "move" for line in lines)
    moves = {line["version"]: line for line in lines}
    assert set(moves) == noncurrent_ids
    for v in s.noncurrent:
        assert moves[v.version_id]["key"] == v.key
        assert moves[v.version_id]["noncurrent"] == v.s3_id  # "null" for the null version
        assert moves[v.version_id]["delete"] == [SRC]
    assert s.marker not in plan.read_text()
    code, text, _ = cli(world, "plan")
    assert "of which noncurrent versions" in text

    # Before the migration: the report is out of compliance because of noncurrent versions
    # only, and names each by key and S3 version id.
    code, out, _ = cli(world, "report", "--json", "-o", str(world.root / "before.html"))
    report = json.loads(out)
    assert code == 1
    assert report["compliant"] is False
    assert report["totals"]["objects"] == 6  # not 7: the delete marker holds no bytes
    assert report["totals"]["bytes"] == all_bytes
    assert report["totals"]["noncurrent_versions"] == 3
    assert report["totals"]["noncurrent_bytes"] == noncurrent_bytes
    assert report["totals"]["placed_objects"] == 6
    assert report["violations_total"] == 3
    assert report["violations_bytes"] == noncurrent_bytes
    found = {(v["key"], v["version"], v["noncurrent"]) for v in report["violations"]}
    assert found == {(v.key, v.version_id, v.s3_id) for v in s.noncurrent}
    assert all(v["delete_from"] == [SRC] for v in report["violations"])
    assert s.marker not in out
    html = (world.root / "before.html").read_text()
    shown = f'us/report.pdf <span class="muted">(noncurrent version {s.report_v1.s3_id})'
    assert shown in html
    assert "incl. 3 noncurrent versions" in html

    # verify --deep re-reads every version's bytes, the noncurrent ones too.
    code, out, err = cli(world, "verify", "--deep", "--json")
    assert code == 0, out + err
    checked = json.loads(out)
    assert (checked["objects"], checked["blobs"], checked["bytes"]) == (6, 6, all_bytes)

    # scan: every blob at Alibaba is placed (none unreferenced, none missing); the noncurrent
    # versions' are forbidden there, each named with its version.
    code, out, _ = cli(world, "scan", SRC, "--json")
    assert code == 1
    (ali,) = json.loads(out)["locations"]
    assert (ali["listed"], ali["placed"], ali["listed_bytes"]) == (6, 6, all_bytes)
    assert ali["counts"]["forbidden"] == 3
    assert ali["bytes"]["forbidden"] == noncurrent_bytes
    assert ali["counts"]["unreferenced"] == ali["counts"]["missing"] == 0
    targets = {d["target"] for d in ali["sample"]}
    assert targets == {f"{BUCKET}/{v.key} (noncurrent version {v.s3_id})" for v in s.noncurrent}

    # migrate moves the noncurrent versions and erases their Alibaba copies; the current
    # versions stay where they are, and no version changes which one is current.
    code, out, err = cli(world, "migrate", str(plan), "--json")
    assert code == 0, out + err
    result = json_lines(out)[-1]
    assert (result["done"], result["failed"], result["skipped"]) == (3, 0, 0)
    assert (result["erased"], result["erased_bytes"]) == (3, noncurrent_bytes)
    for v in s.noncurrent:
        assert placements(world, v.version_id) == {ORACLE: v.data, AWS: v.data}
        assert not (world.dir(SRC) / v.blob).exists()
        assert not latest(world, v.version_id)
    for v in s.current:
        assert placements(world, v.version_id) == {SRC: v.data}
        assert latest(world, v.version_id)
    assert latest(world, s.marker)
    erased = audit_details(world, "erased")
    assert {d["version"] for _, d in erased} == noncurrent_ids
    assert {t for t, _ in erased} == {f"{BUCKET}/{v.key}" for v in s.noncurrent}

    # Afterwards everything is where the policy allows it, every version counted.
    code, out, err = cli(world, "verify", "--deep", "--json")
    assert code == 0, out + err
    checked = json.loads(out)
    assert checked["objects"] == 6
    assert checked["blobs"] == 3 * 2 + 3
    assert checked["bytes"] == 2 * noncurrent_bytes + (all_bytes - noncurrent_bytes)
    code, out, _ = cli(world, "scan", "--json")
    assert code == 0, out
    scanned = {loc["location"]: loc for loc in json.loads(out)["locations"]}
    assert {name: loc["placed"] for name, loc in scanned.items()} == {SRC: 3, ORACLE: 3, AWS: 3}
    assert scanned[ORACLE]["listed_bytes"] == noncurrent_bytes
    code, out, _ = cli(world, "report", "--json", "-o", str(world.root / "after.html"))
    assert code == 0, out
    report = json.loads(out)
    assert report["compliant"] is True
    assert report["totals"]["objects"] == 6
    assert report["totals"]["noncurrent_versions"] == 3
    by_location = {r["location"]: (r["objects"], r["bytes"]) for r in report["locations"]}
    assert by_location == {
        SRC: (3, all_bytes - noncurrent_bytes),
        ORACLE: (3, noncurrent_bytes),
        AWS: (3, noncurrent_bytes),
    }
    code, out, _ = cli(world, "plan", "--json")
    assert code == 0
    assert json.loads(out)["moves"] == 0


def test_migrate_moves_the_planned_version_whether_current_or_not_until_it_is_deleted(
    world: World, seeded: Seeded
) -> None:
    """The engine loads the planned version itself: one that was current at planning and has a
    newer version by now is still moved (its bytes are still where they may not be); one
    deleted since planning is skipped."""
    s = seeded
    settings = load_settings(world.config)

    async def put(key: str, attrs: VersionAttrs, size: int) -> Version:
        db = Database(settings.db_url)
        try:
            return await _put(db, open_locations(settings, load_catalog()), key, attrs, size)
        finally:
            await db.dispose()

    fresh = asyncio.run(put("us/new.bin", US, 800))  # current, and at Alibaba
    plan = world.root / "plan.jsonl"
    code, out, err = cli(world, "plan", "-o", str(plan))
    assert code == 0, out + err
    moves = {line["version"]: line for line in json_lines(plan.read_text())[1:-1]}
    assert set(moves) == {v.version_id for v in [*s.noncurrent, fresh]}
    assert "noncurrent" not in moves[fresh.version_id]  # current when planned

    newer = asyncio.run(put("us/new.bin", PUBLIC, 50))

    async def delete_null() -> None:
        from residency.meta.writes import delete_version

        db = Database(settings.db_url)
        try:
            async with db.session() as session:
                bucket = await find_bucket(session, BUCKET)
                assert bucket is not None
                assert await delete_version(session, bucket, "us/old.bin", "null") is not None
        finally:
            await db.dispose()

    asyncio.run(delete_null())
    code, out, err = cli(world, "migrate", str(plan), "--json")
    assert code == 0, out + err
    result = json_lines(out)[-1]
    assert (result["done"], result["skipped"], result["failed"]) == (3, 1, 0)
    for v in (s.report_v1, s.gone_v1, fresh):
        assert placements(world, v.version_id) == {ORACLE: v.data, AWS: v.data}
        assert not (world.dir(SRC) / v.blob).exists()
    assert not latest(world, fresh.version_id)
    assert latest(world, newer.version_id)
    assert placements(world, newer.version_id) == {SRC: newer.data}
    assert placements(world, s.old_null.version_id) == {}


PERMISSIVE = "name: permissive\nrules:\n  - id: no-kp\n    constraints: {deny_countries: [KP]}\n"


def test_policy_diff_counts_noncurrent_versions(world: World, seeded: Seeded) -> None:
    s = seeded
    loose = world.root / "permissive.yaml"
    loose.write_text(PERMISSIVE)
    tiktok = str(Path(__file__).resolve().parents[2] / "examples" / "tiktok-2022.yaml")
    code, out, _ = cli(world, "policy", "diff", str(loose), tiktok, "--json")
    assert code == 1
    data = json.loads(out)
    assert (data["objects"], data["noncurrent_versions"]) == (6, 3)
    noncurrent_bytes = sum(v.size for v in s.noncurrent)
    assert data["breaking"] == {"objects": 3, "bytes": noncurrent_bytes}
    assert data["leaving_bytes"] == {SRC: noncurrent_bytes}
    assert {(x["key"], x["noncurrent"]) for x in data["sample"]} == {
        (v.key, v.s3_id) for v in s.noncurrent
    }
    code, text, _ = cli(world, "policy", "diff", str(loose), tiktok)
    assert "6 objects" in text
    assert "3 of them noncurrent versions" in text
    assert f"s3://{BUCKET}/us/report.pdf (noncurrent version {s.report_v1.s3_id})" in text


def test_access_explain_judges_the_version_asked_for(world: World, seeded: Seeded) -> None:
    s = seeded
    code, _, err = cli(world, "principal", "set", "bt/alice", "--country", "US")
    assert code == 0, err

    def explain(*extra: str) -> dict[str, Any]:
        code, out, err = cli(
            world,
            "access",
            "explain",
            "--principal",
            "bt/alice",
            "--action",
            "ReadObject",
            "--resource",
            f"{BUCKET}/us/report.pdf",
            "--json",
            *extra,
        )
        assert code in (0, 1), err
        resource: dict[str, Any] = json.loads(out)["request"]["resource"]
        return resource

    current = explain()
    assert (current["data_class"], current["version_id"]) == (
        "public",
        s.report_current.version_id,
    )
    old = explain("--version-id", s.report_v1.s3_id)
    assert (old["data_class"], old["subject"], old["version_id"]) == (
        "personal",
        "US",
        s.report_v1.version_id,
    )
    assert old["countries"] == ["SG"]  # the version's own placements
    code, _, err = cli(
        world,
        "access",
        "explain",
        "--principal",
        "bt/alice",
        "--action",
        "ReadObject",
        "--resource",
        f"{BUCKET}/us/report.pdf",
        "--version-id",
        "0" * 32,
    )
    assert code == 2
    assert "no version" in err
