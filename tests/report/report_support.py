"""A small world for report tests: four real `fs` locations, objects written through the meta
write path (intents, real blobs, commit), audit entries through the audit chain, and a policy
that has just become stricter than the placements it finds (US health data on Alibaba)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import testkit
from residency.audit import append
from residency.catalog import load_catalog
from residency.config import load_settings
from residency.meta import Database
from residency.meta.repo.buckets import create_bucket, find_bucket
from residency.meta.repo.tenants import create_tenant, find_tenant
from residency.meta.specs import Checksums, VersionAttrs
from residency.meta.writes import commit_version, fresh_blob_key, register_intents
from residency.storage import Location, open_locations, write_replicated
from testkit import CliResult

ALI = "alibaba-ap-southeast-1"
OCI = "oci-us-ashburn-1"
AWS = "aws-us-east-1"
EU = "aws-eu-central-1"
SCRIPT_KEY = "us/<script>x</script>&\"'.json"

POLICY = """\
name: health-2025
description: US health data moved under 28 CFR 202 after the bulk-data rule took effect.
citation: 28 CFR Part 202 (DOJ bulk sensitive data rule, 2025)
rules:
  - id: us-health
    citation: 28 CFR 202.241; 28 CFR 202.601
    scope: {data_class: personal.health, subject: US}
    constraints:
      allow_countries: [US]
      deny_vendor_hq: ["@COUNTRIES_OF_CONCERN"]
      replicas: 2
      spread: provider
      prefer: [oci-us-ashburn-1]
  - id: eea-personal
    citation: GDPR Art. 44-45
    scope: {data_class: personal, subject: "@EEA"}
    constraints: {allow_countries: ["@EEA"]}
  - id: cn-personal
    citation: PIPL Art. 40
    scope: {data_class: personal, subject: CN}
    constraints: {allow_countries: [CN]}
"""

# (bucket, key, data class, subject, size, locations)
OBJECTS: list[tuple[str, str, str, str | None, int, tuple[str, ...]]] = [
    ("clinic", "us/patient-1.json", "personal.health", "US", 1000, (ALI,)),
    ("clinic", "us/patient-2.json", "personal.health", "US", 3000, (ALI, OCI)),
    ("clinic", SCRIPT_KEY, "personal.health", "US", 500, (ALI,)),
    ("clinic", "us/ok.json", "personal.health", "US", 2000, (OCI, AWS)),
    ("shop", "eu/user.json", "personal", "DE", 700, (EU,)),
    ("shop", "eu/stray.json", "personal", "DE", 400, (AWS,)),
    ("shop", "cn/user.json", "personal", "CN", 100, (AWS,)),
    ("media", "public/video.mp4", "public", None, 5000, (ALI,)),
]


@dataclass
class World:
    root: Path
    config: Path
    policy: Path

    def args(self) -> list[str]:
        return ["--config", str(self.config)]


def make_world(root: Path) -> World:
    locs = [
        {
            "name": name,
            "provider": provider,
            "region": region,
            "scheme": "fs",
            "options": {"root": str(root / "stores" / name)},
        }
        for name, provider, region in (
            (ALI, "alibaba", "ap-southeast-1"),
            (OCI, "oci", "us-ashburn-1"),
            (AWS, "aws", "us-east-1"),
            (EU, "aws", "eu-central-1"),
        )
    ]
    policy = root / "policy.yaml"
    policy.write_text(POLICY)
    config = root / "residency.yaml"
    config.write_text(
        yaml.safe_dump({"data_dir": str(root / "data"), "policy": str(policy), "locations": locs})
    )
    return World(root, config, policy)


def payload(seed: str, size: int) -> bytes:
    unit = seed.encode()
    return (unit * (size // len(unit) + 1))[:size]


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 256):
        yield data[i : i + 256]


async def put(
    db: Database,
    locations: dict[str, Location],
    *,
    tenant: str,
    bucket: str,
    key: str,
    data_class: str,
    subject: str | None,
    data: bytes,
    at: tuple[str, ...],
    subject_count: int | None = None,
) -> None:
    """One object through the real write path: intents, replicated blob write, commit."""
    async with db.session() as session:
        t = await find_tenant(session, tenant) or await create_tenant(session, tenant)
        if await find_bucket(session, bucket) is None:
            await create_bucket(session, t, bucket)
    blob = fresh_blob_key()
    async with db.session() as session:
        await register_intents(session, [(loc, blob) for loc in at])
    info = await write_replicated(
        [locations[loc] for loc in at], blob, _chunks(data), expect_size=len(data)
    )
    async with db.session() as session:
        b = await find_bucket(session, bucket)
        assert b is not None
        await commit_version(
            session,
            b,
            key,
            VersionAttrs(data_class=data_class, subject=subject, subject_count=subject_count),
            blob_key=blob,
            size=info.size,
            etag=info.etag,
            checksums=Checksums.from_digests(info),
            locations=at,
        )


async def seed(world: World, *, audit: bool = True) -> None:
    settings = load_settings(world.config)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url)
    try:
        await db.migrate()
        locations = open_locations(settings, load_catalog())
        for bucket, key, cls, subject, size, at in OBJECTS:
            await put(
                db,
                locations,
                tenant="acme",
                bucket=bucket,
                key=key,
                data_class=cls,
                subject=subject,
                data=payload(key, size),
                at=at,
            )
        if audit:
            await seed_audit(db)
    finally:
        await db.dispose()


async def seed_audit(db: Database) -> None:
    entries: list[tuple[str, str, str, dict[str, Any]]] = [
        ("refusal", "acme/alice", "clinic/us/a", {"message": "no location may hold it: first"}),
        ("placement", "acme/alice", "clinic/us/ok.json", {"locations": [OCI, AWS]}),
        ("refusal", "acme/bob", "clinic/us/b", {"message": "second refusal"}),
        ("access_denied", "evil/<img src=x onerror=alert(1)>", "clinic", {"operation": "GET"}),
        ("refusal", "acme/alice", "clinic/us/c", {"message": "third refusal"}),
        ("threshold_hit", "acme/etl", "clinic", {"outcome": "100,000 US persons reached"}),
        ("access_denied", "evil/mallory", "shop", {"operation": "PUT"}),
    ]
    async with db.session() as session:
        for kind, actor, target, detail in entries:
            await append(session, kind, actor=actor, tenant="acme", target=target, detail=detail)


def run_cli(*args: str, cwd: Path, timeout: float = 300) -> CliResult:
    """`python -m residency ARGS` in a subprocess, as a user would run it."""
    return testkit.run_cli(*args, cwd=cwd, timeout=timeout)
