"""Cedar authorization and the 28 CFR 202 bulk-data ledger, enforced by the real gateway.

A module-scoped `residency serve` with an operator `.cedar` file; principals get their
attributes from `residency principal set`, exactly as an operator would set them.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
import yaml
from gwserver import REGION, Gateway, create_key, run_residency, start_server, write_config

USER_POLICY = """
@id("interns-no-secrets")
@reason("interns may not read anything under secrets/")
forbid (principal in Role::"intern", action == Action::"ReadObject", resource is Object)
when { resource.key like "secrets/*" };

@id("interns-keep-archive")
@reason("interns may not delete archived objects")
forbid (principal in Role::"intern", action == Action::"DeleteObject", resource is Object)
when { resource.key like "archive/*" };

@id("reports-need-purpose")
@reason("reports/ is read only for a declared audit purpose")
forbid (principal, action == Action::"ReadObject", resource is Object)
when { resource.key like "reports/*" && context.purpose != "audit" };
"""

HEALTH = {"residency-class": "personal.health", "residency-subject": "US"}
THRESHOLD = 10_000  # 28 CFR 202.205(e): personal health data of more than 10,000 US persons


def code_of(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[int, str, str]:
    r = exc.value.response
    return (
        r["ResponseMetadata"]["HTTPStatusCode"],
        str(r["Error"].get("Code")),
        str(r["Error"].get("Message", "")),
    )


class AccessServer:
    """The running gateway plus a way to mint principals with attributes and query the log."""

    def __init__(self, gw: Gateway, root: Path) -> None:
        self.gw = gw
        self.root = root

    def cli(self, *args: str) -> Any:
        return run_residency(*args, "--config", str(self.gw.config), cwd=self.root)

    def principal(self, name: str, *attrs: str) -> Any:
        """A client signing as acme/<name>, after `residency principal set acme/<name> ...`."""
        done = self.cli("principal", "set", f"acme/{name}", *attrs)
        assert done.returncode == 0, done.stderr
        key = self.cli("key", "create", "--tenant", "acme", "--name", name, "--json")
        assert key.returncode == 0, key.stderr
        data = json.loads(key.stdout)
        return self.gw.s3(data["access_key_id"], data["secret_access_key"])

    def audit(self, kind: str, target: str) -> list[dict[str, Any]]:
        from sqlalchemy import select

        from residency.config import load_settings
        from residency.meta import Database
        from residency.meta.models import AuditEntry

        async def rows() -> list[dict[str, Any]]:
            db = Database(load_settings(self.gw.config).db_url)
            try:
                async with db.session(write=False) as session:
                    found = await session.execute(
                        select(AuditEntry.detail)
                        .where(AuditEntry.kind == kind, AuditEntry.target == target)
                        .order_by(AuditEntry.seq)
                    )
                    return [d if isinstance(d, dict) else json.loads(d) for (d,) in found]
            finally:
                await db.dispose()

        return asyncio.run(rows())


@pytest.fixture(scope="module")
def access(tmp_path_factory: pytest.TempPathFactory, moto_server: Any) -> Iterator[AccessServer]:
    root = tmp_path_factory.mktemp("access")
    config, dirs = write_config(root, moto_server, moto_server.new_bucket())
    policy = root / "team.cedar"
    policy.write_text(USER_POLICY)
    settings = yaml.safe_load(config.read_text())
    settings["access_policies"] = [str(policy)]
    config.write_text(yaml.safe_dump(settings))
    access_key, secret = create_key(config, root, "acme")
    other_key, other_secret = create_key(config, root, "globex")
    server = start_server(["--config", str(config)], root)
    gw = Gateway(
        endpoint=server.endpoint,
        access_key=access_key,
        secret_key=secret,
        region=REGION,
        data_dir=root / "data",
        config=config,
        server=server,
        moto_bucket="",
        other_access_key=other_key,
        other_secret_key=other_secret,
        _locations=dirs,
    )
    try:
        yield AccessServer(gw, root)
    finally:
        server.stop()


@pytest.fixture
def bucket(access: AccessServer) -> str:
    name = f"acc-{uuid.uuid4().hex[:10]}"
    access.gw.s3().create_bucket(Bucket=name)
    return name


def test_user_policy_forbids_a_prefix(access: AccessServer, bucket: str) -> None:
    owner = access.gw.s3()
    owner.put_object(Bucket=bucket, Key="secrets/plan.txt", Body=b"top secret")
    owner.put_object(Bucket=bucket, Key="public/readme.txt", Body=b"hello")
    intern = access.principal("intern-1", "--role", "intern")

    assert intern.get_object(Bucket=bucket, Key="public/readme.txt")["Body"].read() == b"hello"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        intern.get_object(Bucket=bucket, Key="secrets/plan.txt")
    status, code, message = code_of(exc)
    assert (status, code) == (403, "AccessDenied")
    assert "interns-no-secrets" in message
    assert "secrets/" in message
    # The owner's admin key is not an intern: same object, allowed.
    assert owner.get_object(Bucket=bucket, Key="secrets/plan.txt")["Body"].read() == b"top secret"

    # A key that does not exist under the prefix is refused too: existence is not revealed.
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        intern.get_object(Bucket=bucket, Key="secrets/missing.txt")
    assert code_of(exc)[:2] == (403, "AccessDenied")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        intern.head_object(Bucket=bucket, Key="secrets/plan.txt")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # Copying is reading: the source check applies, and nothing is written.
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        intern.copy_object(
            Bucket=bucket, Key="public/leak.txt", CopySource=f"{bucket}/secrets/plan.txt"
        )
    assert code_of(exc)[:2] == (403, "AccessDenied")
    assert "public/leak.txt" not in [
        o["Key"] for o in owner.list_objects_v2(Bucket=bucket)["Contents"]
    ]

    denials = access.audit("access_denied", f"s3://{bucket}/secrets/plan.txt")
    assert any(
        d.get("policies") == ["interns-no-secrets"] and d.get("action") == "ReadObject"
        for d in denials
    ), denials


def test_batch_delete_refuses_only_the_forbidden_keys(access: AccessServer, bucket: str) -> None:
    owner = access.gw.s3()
    for key in ("archive/2024.csv", "tmp/scratch.csv"):
        owner.put_object(Bucket=bucket, Key=key, Body=b"x")
    intern = access.principal("intern-2", "--role", "intern")
    result = intern.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "archive/2024.csv"}, {"Key": "tmp/scratch.csv"}]},
    )
    assert [d["Key"] for d in result.get("Deleted", [])] == ["tmp/scratch.csv"]
    errors = result.get("Errors", [])
    assert [(e["Key"], e["Code"]) for e in errors] == [("archive/2024.csv", "AccessDenied")]
    assert "interns-keep-archive" in errors[0]["Message"]
    left = [o["Key"] for o in owner.list_objects_v2(Bucket=bucket)["Contents"]]
    assert left == ["archive/2024.csv"]
    assert access.audit("access_denied", f"s3://{bucket}/archive/2024.csv")
    # Every key forbidden: the request as a whole is refused.
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        intern.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "archive/2024.csv"}]})
    assert code_of(exc)[:2] == (403, "AccessDenied")


def test_versioned_batch_delete_refuses_only_the_forbidden_versions(
    access: AccessServer, bucket: str
) -> None:
    """The same Cedar rules judge each entry of a versioned batch on the version it names."""
    owner = access.gw.s3()
    owner.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    kept = owner.put_object(Bucket=bucket, Key="archive/2024.csv", Body=b"a")["VersionId"]
    scratch = owner.put_object(Bucket=bucket, Key="tmp/scratch.csv", Body=b"x")["VersionId"]
    intern = access.principal("intern-3", "--role", "intern")
    result = intern.delete_objects(
        Bucket=bucket,
        Delete={
            "Objects": [
                {"Key": "archive/2024.csv", "VersionId": kept},
                {"Key": "tmp/scratch.csv", "VersionId": scratch},
            ]
        },
    )
    assert [(d["Key"], d["VersionId"]) for d in result["Deleted"]] == [("tmp/scratch.csv", scratch)]
    errors = result["Errors"]
    assert [(e["Key"], e["Code"], e["VersionId"]) for e in errors] == [
        ("archive/2024.csv", "AccessDenied", kept)
    ]
    assert "interns-keep-archive" in errors[0]["Message"]
    versions = owner.list_object_versions(Bucket=bucket)["Versions"]
    assert [(v["Key"], v["VersionId"]) for v in versions] == [("archive/2024.csv", kept)]
    assert access.audit("access_denied", f"s3://{bucket}/archive/2024.csv")


def test_context_purpose_is_evaluated(access: AccessServer, bucket: str) -> None:
    s3 = access.gw.s3()
    s3.put_object(Bucket=bucket, Key="reports/q3.pdf", Body=b"numbers")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="reports/q3.pdf")
    assert "reports-need-purpose" in code_of(exc)[2]

    def declare(request: Any, **_: Any) -> None:
        request.headers["x-residency-purpose"] = "audit"

    s3.meta.events.register("before-sign.s3.GetObject", declare)
    assert s3.get_object(Bucket=bucket, Key="reports/q3.pdf")["Body"].read() == b"numbers"


def test_other_tenant_denied_by_default_policy(access: AccessServer, bucket: str) -> None:
    access.gw.s3().put_object(Bucket=bucket, Key="a.txt", Body=b"a")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        access.gw.other_s3().get_object(Bucket=bucket, Key="a.txt")
    status, code, message = code_of(exc)
    assert (status, code) == (403, "AccessDenied")
    assert "default deny" in message
    assert "globex/admin" in message


def _health_objects(access: AccessServer, bucket: str, counts: dict[str, int]) -> None:
    s3 = access.gw.s3()
    for key, count in counts.items():
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=f"records of {count} people".encode(),
            Metadata={**HEALTH, "residency-subjects": str(count)},
        )


def test_covered_person_stops_at_the_bulk_threshold(access: AccessServer, bucket: str) -> None:
    _health_objects(
        access, bucket, {"cohort-a.csv": 4_000, "cohort-b.csv": 6_000, "cohort-c.csv": 1}
    )
    reader = access.principal("li", "--country", "CN", "--covered-person")
    # 4,000 + 6,000 = exactly the threshold: allowed ("more than 10,000" is covered).
    for key in ("cohort-a.csv", "cohort-b.csv"):
        assert reader.get_object(Bucket=bucket, Key=key)["Body"].read().startswith(b"records")
    # Reading the same version again does not count twice.
    reader.get_object(Bucket=bucket, Key="cohort-a.csv")["Body"].read()
    # HEAD reads no records: not charged, not refused.
    reader.head_object(Bucket=bucket, Key="cohort-c.csv")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        reader.get_object(Bucket=bucket, Key="cohort-c.csv")
    status, code, message = code_of(exc)
    assert (status, code) == (403, "AccessDenied")
    assert "10001" in message
    assert "10000" in message
    assert "202.401" in message
    hits = access.audit("threshold_hit", f"s3://{bucket}/cohort-c.csv")
    assert [(h["allowed"], h["before"], h["threshold"]) for h in hits] == [(False, 10_000, 10_000)]
    # Copying the object elsewhere is reading it: refused the same way.
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        reader.copy_object(Bucket=bucket, Key="copy.csv", CopySource=f"{bucket}/cohort-c.csv")
    assert code_of(exc)[:2] == (403, "AccessDenied")

    ledger = access.cli("access", "ledger", "--json")
    assert ledger.returncode == 0, ledger.stderr
    rows = [r for r in json.loads(ledger.stdout) if r["holder"] == "principal:acme/li"]
    assert [(r["category"], r["count"]) for r in rows] == [("personal_health", THRESHOLD)]


def test_security_controls_allow_restricted_data_past_the_threshold(
    access: AccessServer, bucket: str
) -> None:
    _health_objects(access, bucket, {"big.csv": 9_000, "more.csv": 2_000})
    reader = access.principal("wang", "--country", "CN", "--covered-person", "--security-controls")
    for key in ("big.csv", "more.csv"):
        assert reader.get_object(Bucket=bucket, Key=key)["Body"].read().startswith(b"records")
    hits = access.audit("threshold_hit", f"s3://{bucket}/more.csv")
    assert [(h["allowed"], h["before"], h["records"]) for h in hits] == [(True, 9_000, 2_000)]


def test_undeclared_volume_is_refused_to_covered_persons(access: AccessServer, bucket: str) -> None:
    access.gw.s3().put_object(Bucket=bucket, Key="unknown.csv", Body=b"?", Metadata=HEALTH)
    reader = access.principal("zhao", "--country", "CN")  # covered: country of concern
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        reader.get_object(Bucket=bucket, Key="unknown.csv")
    assert "doj-undeclared-volume" in code_of(exc)[2]
    # A US principal is not covered: the same object reads fine.
    us_reader = access.principal("smith", "--country", "US")
    assert us_reader.get_object(Bucket=bucket, Key="unknown.csv")["Body"].read() == b"?"


def test_audit_chain_still_verifies(access: AccessServer) -> None:
    done = access.cli("audit", "verify")
    assert done.returncode == 0, done.stdout + done.stderr


def test_bad_policy_file_refuses_to_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.cedar"
    bad.write_text('permit (principal, action == Action::"NoSuchAction", resource);\n')
    config = tmp_path / "residency.yaml"
    config.write_text(
        yaml.safe_dump({"data_dir": str(tmp_path / "data"), "access_policies": [str(bad)]})
    )
    done = run_residency("serve", "--config", str(config), "--port", "1", cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "bad.cedar" in lines[0]
    assert "Traceback" not in done.stderr
