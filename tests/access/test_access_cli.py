"""`residency access ...` and `residency principal ...` through the real command."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from residency.access import Ledger, ObjectRef, PrincipalRef
from residency.meta import Database
from residency.meta.models import AuditEntry
from residency.meta.repo import buckets, tenants

Cli = Callable[..., Any]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess (for module-scoped setup, where `cli` is not usable)."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "residency", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def world_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tenants acme and globex, principals alice (acme), li (acme, CN), bob (globex), a bucket.

    Built once per module through the real command; each test gets a copy.
    """
    data_dir = tmp_path_factory.mktemp("access-cli") / "residency-data"
    dd = str(data_dir)
    for tenant in ("acme", "globex"):
        assert run_cli("tenant", "create", tenant, "--data-dir", dd).returncode == 0
    assert (
        run_cli("principal", "set", "acme/alice", "--country", "US", "--data-dir", dd).returncode
        == 0
    )
    r = run_cli(
        "principal",
        "set",
        "acme/li",
        "--country",
        "cn",
        "--organisation",
        "ByteDance",
        "--data-dir",
        dd,
        "--json",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["effective_covered_person"] is True
    assert run_cli("principal", "set", "globex/bob", "--data-dir", dd).returncode == 0

    async def make_bucket() -> None:
        db = Database(f"sqlite+aiosqlite:///{data_dir / 'residency.db'}")
        try:
            async with db.session() as session:
                acme = await tenants.get_tenant(session, "acme")
                await buckets.create_bucket(session, acme, "acme-data")
        finally:
            await db.dispose()

    asyncio.run(make_bucket())
    return data_dir


@pytest.fixture
def world(world_template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "residency-data"
    shutil.copytree(world_template, copy)
    return copy


def _explain(cli: Cli, dd: Path, *args: str) -> Any:
    return cli("access", "explain", "--data-dir", str(dd), *args)


def test_explain_own_tenant_allowed_with_policy_id(cli: Cli, world: Path) -> None:
    r = _explain(
        cli,
        world,
        "--principal",
        "acme/alice",
        "--action",
        "ReadObject",
        "--resource",
        "acme-data/reports/q1.csv",
        "--class",
        "personal.health",
        "--subject",
        "US",
        "--subjects",
        "10",
        "--json",
    )
    assert r.code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["allowed"] is True
    assert out["policy_ids"] == ["tenant-ownership"]
    assert out["request"]["resource"]["tenant"] == "acme"
    assert out["request"]["resource"]["data_class"] == "personal.health"


def test_explain_other_tenant_denied_by_default(cli: Cli, world: Path) -> None:
    r = _explain(
        cli,
        world,
        "--principal",
        "globex/bob",
        "--action",
        "ListObjects",
        "--resource",
        "acme-data",
    )
    assert r.code == 1
    assert "DENY  ListObjects on bucket acme-data by globex/bob" in r.stdout
    assert "none matched, so Cedar denies by default" in r.stdout


def test_explain_names_the_deciding_forbid_and_its_source(cli: Cli, world: Path) -> None:
    r = _explain(
        cli,
        world,
        "--principal",
        "acme/li",
        "--action",
        "readobject",
        "--resource",
        "acme-data/patients.csv",
        "--class",
        "personal.health",
        "--subject",
        "US",
    )
    assert r.code == 1
    assert "DENY" in r.stdout
    assert "doj-undeclared-volume (forbid, defaults.cedar:" in r.stdout
    assert "covered_person=true organisation=ByteDance" in r.stdout


def test_explain_with_a_user_policy_file_and_context(cli: Cli, world: Path, tmp_path: Path) -> None:
    policy = tmp_path / "office.cedar"
    policy.write_text(
        '@id("office-only")\n@reason("only from the office network")\n'
        "forbid (principal, action, resource)\n"
        'unless { context has source_ip && context.source_ip.isInRange(ip("10.0.0.0/8")) };\n'
    )
    args = [
        "--principal",
        "acme/alice",
        "--action",
        "ListBuckets",
        "--resource",
        "tenant:acme",
        "--policy",
        str(policy),
    ]
    inside = _explain(cli, world, *args, "--context", '{"source_ip": "10.2.3.4"}')
    assert inside.code == 0, inside.stderr
    assert "ALLOW" in inside.stdout
    outside = _explain(
        cli,
        world,
        *args,
        "--context",
        '{"source_ip": "192.0.2.1", "time": "2026-11-23T10:00:00Z"}',
        "--json",
    )
    assert outside.code == 1
    out = json.loads(outside.stdout)
    assert out["policy_ids"] == ["office-only"]
    assert "only from the office network" in out["message"]
    assert out["request"]["context"]["time"] == "2026-11-23T10:00:00+00:00"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--action", "Fly"], "unknown action 'Fly'; use one of ListBuckets"),
        (["--context", "{nope"], "--context is not valid JSON"),
        (["--context", '{"colour": 1}'], "unknown key(s) colour"),
        (["--context", '{"source_ip": "nope"}'], "source_ip 'nope' is not an IP address"),
        (["--principal", "alice"], "write it as TENANT/NAME"),
        (["--principal", "acme/nobody"], "no principal 'acme/nobody'"),
        (["--resource", "no-such-bucket/k"], "pass --owner TENANT"),
        (["--action", "ListBuckets"], "ListBuckets applies to a tenant, not to object"),
    ],
)
def test_explain_bad_input_is_one_line(
    cli: Cli, world: Path, args: list[str], fragment: str
) -> None:
    base = {"--principal": "acme/alice", "--action": "ReadObject", "--resource": "acme-data/k"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    flat = [x for pair in base.items() for x in pair]
    r = _explain(cli, world, *flat)
    assert r.code == 2, r.stdout
    assert fragment in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_explain_refuses_invalid_policy_files(cli: Cli, world: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.cedar"
    bad.write_text("permit (principal, action, resource) when { resource.nope };\n")
    r = _explain(
        cli,
        world,
        "--principal",
        "acme/alice",
        "--action",
        "ReadObject",
        "--resource",
        "acme-data/k",
        "--policy",
        str(bad),
    )
    assert r.code == 2
    assert "invalid policies" in r.stderr
    assert f"{bad}:1:" in r.stderr


def test_check_reports_ok_files_with_their_policy_ids(cli: Cli, tmp_path: Path) -> None:
    good = tmp_path / "good.cedar"
    good.write_text(
        '@id("no-cn")\nforbid (principal, action, resource is Object)\n'
        'when { resource.countries.contains("CN") };\n'
    )
    r = cli("access", "check", str(good))
    assert r.code == 0, r.stderr
    assert f"ok  {good}: 1 policies (no-cn)" in r.stdout
    j = cli("access", "check", str(good), "--json")
    assert json.loads(j.stdout) == {
        "ok": True,
        "files": [{"file": str(good), "policies": ["no-cn"]}],
    }


def test_check_reports_every_problem_with_file_and_line(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.cedar"
    bad.write_text(
        "// header\n"
        'permit (principal, action == Action::"ReadObject", resource) when { resource.size > 1 };\n'
        '@id("x")\nforbid (principal, action == Action::"Bogus", resource);\n'
    )
    r = cli("access", "check", str(bad), str(tmp_path / "missing.cedar"))
    assert r.code == 1
    assert f"{bad}:2: attribute `size` on entity type `Object` not found" in r.stderr
    assert f"{bad}:3: policy x: unrecognized action" in r.stderr
    assert "missing.cedar: file not found" in r.stderr
    assert "Traceback" not in r.stderr
    j = cli("access", "check", str(bad), "--json")
    assert j.code == 1
    assert len(json.loads(j.stdout)["problems"]) >= 2


def test_ledger_shows_where_each_holder_stands(cli: Cli, world: Path) -> None:
    empty = cli("access", "ledger", "--data-dir", str(world))
    assert empty.code == 0
    assert "No covered access recorded." in empty.stdout

    async def charge() -> None:
        db = Database(f"sqlite+aiosqlite:///{world / 'residency.db'}")
        li = PrincipalRef.from_attributes(
            "acme", "li", {"country": "CN", "organisation": "ByteDance"}
        )
        try:
            async with db.session() as session:
                target = ObjectRef("acme-data", "dna", "acme", "genomic", "US", 25, version_id="v1")
                assert (await Ledger().charge(session, li, target)).allowed
        finally:
            await db.dispose()

    asyncio.run(charge())
    r = cli("access", "ledger", "--data-dir", str(world), "--json")
    assert r.code == 0, r.stderr
    (row,) = json.loads(r.stdout)
    assert row["holder"] == "org:ByteDance"
    assert row["category"] == "human_genomic"
    assert (row["count"], row["threshold"], row["percent_used"]) == (25, 100, 25.0)
    assert row["window_days"] == 365
    assert row["principals"] == ["acme/li"]
    table = cli("access", "ledger", "--data-dir", str(world))
    assert "org:ByteDance" in table.stdout
    assert "25.0%" in table.stdout
    assert "> 100" in table.stdout


def test_ledger_with_a_bad_thresholds_file(cli: Cli, world: Path, tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("categories: {x: {threshold: -1, classes: [a]}}\n")
    r = cli("access", "ledger", "--data-dir", str(world), "--thresholds", str(bad))
    assert r.code == 2
    assert "categories.x.threshold" in r.stderr


def test_principal_set_is_audited_and_shown(cli: Cli, world: Path) -> None:
    r = cli(
        "principal",
        "set",
        "acme/li",
        "--security-controls",
        "--role",
        "admin",
        "--data-dir",
        str(world),
        "--json",
    )
    assert r.code == 0, r.stderr
    attrs = json.loads(r.stdout)["attributes"]
    assert attrs == {
        "country": "CN",
        "organisation": "ByteDance",
        "security_controls": True,
        "roles": ["admin"],
    }
    cleared = cli(
        "principal",
        "set",
        "acme/li",
        "--clear",
        "organisation",
        "--not-covered-person",
        "--data-dir",
        str(world),
        "--json",
    )
    out = json.loads(cleared.stdout)
    assert "organisation" not in out["attributes"]
    assert out["effective_covered_person"] is False
    shown = cli("principal", "show", "acme/li", "--data-dir", str(world))
    assert "acme/li" in shown.stdout
    listed = cli("principal", "list", "--tenant", "acme", "--data-dir", str(world), "--json")
    assert [p["principal"] for p in json.loads(listed.stdout)] == ["acme/alice", "acme/li"]

    async def audit_targets() -> list[str]:
        db = Database(f"sqlite+aiosqlite:///{world / 'residency.db'}")
        try:
            async with db.session(write=False) as session:
                rows = await session.scalars(
                    select(AuditEntry.target).where(AuditEntry.kind == "admin")
                )
                return list(rows)
        finally:
            await db.dispose()

    assert asyncio.run(audit_targets()).count("principal/acme/li") == 3


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["acme/li", "--country", "China"], "country must be an ISO code"),
        (["nope/li"], "no tenant named 'nope'"),
        (["acme/bad name"], "invalid principal name"),
        (["acme/li", "--clear", "colour"], "--clear 'colour'"),
        (["acme"], "write it as TENANT/NAME"),
    ],
)
def test_principal_set_bad_input(cli: Cli, world: Path, args: list[str], fragment: str) -> None:
    r = cli("principal", "set", *args, "--data-dir", str(world))
    assert r.code == 2
    assert fragment in r.stderr
    assert "Traceback" not in r.stderr


def test_principal_show_unknown(cli: Cli, world: Path) -> None:
    r = cli("principal", "show", "acme/ghost", "--data-dir", str(world))
    assert r.code == 2
    assert "no principal named 'ghost'" in r.stderr


def test_explain_reads_a_stored_object_and_its_locations_countries(
    cli: Cli, world: Path, tmp_path: Path
) -> None:
    import hashlib

    from residency.meta.specs import Checksums, VersionAttrs
    from residency.meta.writes import commit_version, fresh_blob_key, register_intents

    config = tmp_path / "residency.yaml"
    config.write_text(
        f"data_dir: {world}\n"
        "locations:\n"
        "  - {name: aws-fra, provider: aws, region: eu-central-1, scheme: memory}\n"
        "  - {name: aws-use1, provider: aws, region: us-east-1, scheme: memory}\n"
    )
    locations = ("aws-fra", "aws-use1")

    async def put() -> None:
        db = Database(f"sqlite+aiosqlite:///{world / 'residency.db'}")
        blob = fresh_blob_key()
        try:
            async with db.session() as s:
                await register_intents(s, [(loc, blob) for loc in locations])
            async with db.session() as s:
                bucket = await buckets.get_bucket(s, "acme-data")
                md5 = hashlib.md5(b"x").hexdigest()
                await commit_version(
                    s,
                    bucket,
                    "cohort.vcf",
                    VersionAttrs(data_class="genomic", subject="US", subject_count=50),
                    blob_key=blob,
                    size=1,
                    etag=md5,
                    checksums=Checksums(md5=md5),
                    locations=locations,
                )
        finally:
            await db.dispose()

    asyncio.run(put())
    r = cli(
        "access",
        "explain",
        "--config",
        str(config),
        "--principal",
        "acme/li",
        "--action",
        "ReadObject",
        "--resource",
        "acme-data/cohort.vcf",
        "--json",
    )
    assert r.code == 0, r.stderr
    out = json.loads(r.stdout)
    res = out["request"]["resource"]
    assert (res["data_class"], res["subject"], res["subject_count"]) == ("genomic", "US", 50)
    assert res["countries"] == ["DE", "US"]
    assert res["version_id"]
    assert out["policy_ids"] == ["tenant-ownership"]
    # An operator forbid on where the object lives decides over ownership.
    policy = tmp_path / "eu.cedar"
    policy.write_text(
        '@id("no-de")\nforbid (principal, action, resource is Object)\n'
        'when { resource.countries.contains("DE") };\n'
    )
    denied = cli(
        "access",
        "explain",
        "--config",
        str(config),
        "--principal",
        "acme/alice",
        "--action",
        "ReadObject",
        "--resource",
        "acme-data/cohort.vcf",
        "--policy",
        str(policy),
    )
    assert denied.code == 1
    assert "no-de (forbid, " in denied.stdout
    assert "countries=DE,US" in denied.stdout
