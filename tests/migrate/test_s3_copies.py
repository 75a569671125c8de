"""Copies to and from a real S3 endpoint (moto): a large object arrives as a multipart upload
with parallel parts, and a small object costs exactly one request at the source."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from migrate_support import (
    AWS,
    ORACLE,
    SRC,
    World,
    adopt_and_plan,
    json_lines,
    make_world,
    payload,
    run_cli,
    tiktok_policy,
)

from residency.catalog import load_catalog
from residency.config import load_settings
from residency.meta import Database
from residency.migrate.engine import EngineOptions, Migrator
from residency.migrate.journal import load_plan
from residency.storage import open_locations

MIB = 1 << 20


def s3(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def s3_location(name: str, provider: str, region: str, moto: Any, bucket: str) -> dict[str, Any]:
    return {
        "name": name,
        "provider": provider,
        "region": region,
        "scheme": "s3",
        "options": moto.location_options(bucket),
    }


def blob_key(world: World, key: str) -> str:
    con = sqlite3.connect(world.root / "data" / "residency.db")
    try:
        row = con.execute(
            "select s.blob_key from object_versions v join segments s "
            "on s.object_version_id = v.id where v.key = ? and v.is_latest",
            (key,),
        ).fetchone()
    finally:
        con.close()
    return str(row[0])


class ConnectionCounter:
    """A TCP relay in front of the S3 endpoint that records the most connections open at once.

    An HTTP client opens another connection only when every one it has is busy, so a peak
    above one means requests really were in flight together.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.open = 0
        self.peak = 0

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            await asyncio.gather(self._pipe(client_r, up_w), self._pipe(up_r, client_w))
        finally:
            self.open -= 1

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.close()


async def test_a_large_object_arrives_as_a_parallel_multipart_upload(
    tmp_path: Path, moto_server: Any
) -> None:
    bucket = moto_server.new_bucket()
    world = make_world(tmp_path, extra=[s3_location(AWS, "aws", "us-east-1", moto_server, bucket)])
    data = random.Random(5).randbytes(40 * MIB)
    world.put_native("us/big.bin", data)
    plan = adopt_and_plan(world)

    settings = load_settings(world.config)
    port = int(moto_server.endpoint.rsplit(":", 1)[1])
    relay = ConnectionCounter(port)
    async with relay.serving() as endpoint:
        # The engine reaches S3 through the relay; the CLI below goes to moto directly.
        relayed = [
            cfg.model_copy(update={"options": {**cfg.options, "endpoint": endpoint}})
            if cfg.name == AWS
            else cfg
            for cfg in settings.locations
        ]
        locations = open_locations(
            settings.model_copy(update={"locations": relayed}), load_catalog()
        )
        db = Database(settings.db_url)
        try:
            header, _ = await load_plan(db, plan)
            options = EngineOptions(part_size=8 * MIB, part_streams=4)
            result = await Migrator(db, locations, options, policy=tiktok_policy()).run(header.id)
        finally:
            await db.dispose()
    assert (result.done, result.failed) == (1, 0), result.failures

    key = blob_key(world, "us/big.bin")
    client = s3(moto_server.endpoint)
    head = client.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == 40 * MIB
    assert head["ETag"].strip('"').endswith("-5")  # five 8 MiB parts: a multipart upload
    assert relay.peak >= 2, "the parts were uploaded one after another"
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert (world.dir(ORACLE) / key).read_bytes() == data  # the fs destination just streamed

    v = run_cli("verify", "--deep", "--json", *world.args(), cwd=world.root)
    assert v.code == 0, v.stdout + v.stderr
    report = json.loads(v.stdout)
    assert (report["objects"], report["blobs"], report["mismatches"]) == (1, 2, [])


@contextmanager
def logged_moto(log: Path) -> Iterator[str]:
    """A moto server of our own whose request log we can read (one line per request)."""
    exe = shutil.which("moto_server")
    assert exe, "moto_server is required"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with log.open("wb") as out:
        proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stderr=out, stdout=out)
        try:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, log.read_text(errors="replace")
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        break
                assert time.monotonic() < deadline, "moto did not start"
                time.sleep(0.05)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(10)


class _Moto:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def location_options(self, bucket: str, root: str = "/") -> dict[str, str]:
        return {
            "bucket": bucket,
            "endpoint": self.endpoint,
            "region": "us-east-1",
            "access_key_id": "testing",
            "secret_access_key": "testing",
            "root": root,
            "disable_config_load": "true",
            "disable_ec2_metadata": "true",
        }


def test_a_small_object_costs_one_request_at_the_source_then_is_erased(
    tmp_path: Path,
) -> None:
    log = tmp_path / "moto.log"
    with logged_moto(log) as endpoint:
        bucket = "source-bucket"
        client = s3(endpoint)
        client.create_bucket(Bucket=bucket)
        n = 12
        for i in range(n):
            client.put_object(Bucket=bucket, Key=f"us/{i:02d}.bin", Body=payload(i, 5000 + i))
        (tmp_path / "w").mkdir()
        world = make_world(
            tmp_path / "w",
            extra=[s3_location(SRC, "alibaba", "ap-southeast-1", _Moto(endpoint), bucket)],
        )
        plan = adopt_and_plan(world)
        before = log.read_text(errors="replace").count("\n")
        r = run_cli("migrate", str(plan), "--json", *world.args(), cwd=world.root)
        assert r.code == 0, r.stdout + r.stderr
        assert json_lines(r.stdout)[-1]["done"] == n
        left = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        assert [o["Key"] for o in left] == []  # no byte of a US person stays at the source
    requests = log.read_text(errors="replace").splitlines()[before:]
    per_key: dict[str, list[str]] = {}
    for line in requests:
        m = re.search(rf'"(\w+) /{bucket}/(us/\d+\.bin)[ ?]', line)
        if m:
            per_key.setdefault(m.group(2), []).append(m.group(1))
    # One GET copies it; then the source is erased: deleted in a batch (DeleteObjects, not a
    # DELETE per key) and confirmed gone by a HEAD of its own.
    assert per_key == {f"us/{i:02d}.bin": ["GET", "HEAD"] for i in range(n)}
    batches = [line for line in requests if re.search(rf'"POST /{bucket}/?\?delete', line)]
    assert 1 <= len(batches) < n
    for i in range(n):
        key = f"us/{i:02d}.bin"
        want = payload(i, 5000 + i)
        blob = blob_key(world, key)
        assert (world.dir(ORACLE) / blob).read_bytes() == want
        assert (world.dir(AWS) / blob).read_bytes() == want


@pytest.mark.parametrize("stage", ["missing-root", "source-changed"])
async def test_a_failed_small_copy_leaves_nothing_behind(world: World, stage: str) -> None:
    n = 4
    for i in range(n):
        world.put_native(f"us/{i}.bin", payload(i, 3000))
    plan = adopt_and_plan(world)
    if stage == "source-changed":
        world.put_native("us/2.bin", payload(2, 2999))  # shorter than recorded
    settings = load_settings(world.config)
    locations = open_locations(settings, load_catalog())
    if stage == "missing-root":
        shutil.rmtree(world.dir(AWS))  # the disk is gone: a write must not recreate it
    db = Database(settings.db_url)
    try:
        header, _ = await load_plan(db, plan)
        options = EngineOptions(max_attempts=2, backoff_base=0.01, backoff_max=0.02)
        result = await Migrator(db, locations, options, policy=tiktok_policy()).run(header.id)
    finally:
        await db.dispose()
    if stage == "missing-root":
        assert result.failed == n
        assert all("root directory" in f.error for f in result.failures)
        assert not world.dir(AWS).exists()
        # All or nothing: the other destination kept no copy either.
        assert [p for p in world.dir(ORACLE).rglob("*") if p.is_file()] == []
        for i in range(n):
            assert placed_locations(world, f"us/{i}.bin") == {SRC}
    else:
        assert (result.done, result.failed) == (n - 1, 1)
        assert "expected 3000 bytes, got 2999" in result.failures[0].error
        assert placed_locations(world, "us/2.bin") == {SRC}
        stored = {p.name for p in world.dir(ORACLE).rglob("*") if p.is_file()}
        assert len(stored) == n - 1  # the short source left no blob at the destination


def placed_locations(world: World, key: str) -> set[str]:
    con = sqlite3.connect(world.root / "data" / "residency.db")
    try:
        rows = con.execute(
            "select p.location from object_versions v join placements p "
            "on p.object_version_id = v.id where v.key = ? and v.is_latest",
            (key,),
        ).fetchall()
    finally:
        con.close()
    return {r[0] for r in rows}
