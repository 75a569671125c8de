"""The small-request path under concurrency: no 5xx from database contention, a busy database
answers SlowDown (retryable), and the per-process access-key cache has a bounded revocation
delay. A real `residency serve --workers 2` on loopback; boto3 retries are off throughout, so
every raw answer counts.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from gwserver import REGION, Server, create_key, one_location_config, run_residency, start_server

from residency.gateway.auth import KEY_CACHE_SECONDS

CONCURRENCY = 48


class Served:
    def __init__(self, server: Server, config: Path, root: Path, access: str, secret: str) -> None:
        self.server, self.config, self.root = server, config, root
        self.access, self.secret = access, secret

    def s3(self, access: str | None = None, secret: str | None = None) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.server.endpoint,
            aws_access_key_id=access or self.access,
            aws_secret_access_key=secret or self.secret,
            region_name=REGION,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"total_max_attempts": 1, "mode": "standard"},  # no retries
                max_pool_connections=CONCURRENCY,
            ),
        )

    @property
    def db_file(self) -> Path:
        return self.root / "data" / "residency.db"


def _config(root: Path) -> Path:
    """One location; load, not law, is under test: unlabelled data here is declared public."""
    policy = root / "policy.yaml"
    policy.write_text("name: public-by-default\nextends: [preset:default]\ndefault_class: public\n")
    return one_location_config(root, policy=str(policy))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("concurrency")
    config = _config(root)
    access, secret = create_key(config, root, "acme")
    server = start_server(["--config", str(config), "--workers", "2"], root)
    try:
        yield Served(server, config, root, access, secret)
    finally:
        server.stop()


def _status(call: Any) -> int:
    try:
        response = call()
    except ClientError as exc:
        return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])
    return int(response["ResponseMetadata"]["HTTPStatusCode"])


def test_concurrent_small_puts_on_two_workers_get_no_5xx(served: Served) -> None:
    s3 = served.s3()
    s3.create_bucket(Bucket="busy")
    bodies = {f"k{i % 16}-{i}": bytes([i % 251]) * 4096 for i in range(CONCURRENCY)}
    # Half the PUTs overwrite one shared key: replacement (retire + garbage) under contention.
    jobs = [(key, body) for key, body in bodies.items()]
    jobs += [("shared", bytes([i]) * 4096) for i in range(CONCURRENCY // 2)]

    def put(job: tuple[str, bytes]) -> int:
        key, body = job
        return _status(lambda: s3.put_object(Bucket="busy", Key=key, Body=body))

    def get(key: str) -> int:
        def fetch() -> Any:
            response = s3.get_object(Bucket="busy", Key=key)
            assert response["Body"].read() == bodies[key]
            return response

        return _status(fetch)

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        statuses = list(pool.map(put, jobs))
        statuses += [s for s in pool.map(get, list(bodies) * 2)]
    assert [s for s in statuses if s >= 500] == []
    assert set(statuses) == {200}
    for key, body in bodies.items():
        assert s3.get_object(Bucket="busy", Key=key)["Body"].read() == body
    shared = s3.get_object(Bucket="busy", Key="shared")["Body"].read()
    assert shared in {bytes([i]) * 4096 for i in range(CONCURRENCY // 2)}
    listed = s3.list_objects_v2(Bucket="busy")
    assert listed["KeyCount"] == len(bodies) + 1
    assert "database is locked" not in served.server.stderr.read_text()


def test_locked_database_answers_slowdown_and_reads_go_on(tmp_path: Path) -> None:
    # Its own server with a short busy timeout, so it does not wait 15 s for a lock held here.
    config = _config(tmp_path)
    access, secret = create_key(config, tmp_path, "acme")
    server = start_server(
        ["--config", str(config), "--workers", "1"],
        tmp_path,
        env={"RESIDENCY_SQLITE_BUSY_TIMEOUT_MS": "200"},
    )
    impatient = Served(server, config, tmp_path, access, secret)
    try:
        _slowdown_while_locked(impatient)
    finally:
        server.stop()
    log = server.stderr.read_text()
    assert "database busy" in log
    assert "Traceback" not in log


def _slowdown_while_locked(served: Served) -> None:
    s3 = served.s3()
    s3.create_bucket(Bucket="locked")
    s3.put_object(Bucket="locked", Key="before", Body=b"readable")
    holder = sqlite3.connect(served.db_file, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(ClientError) as caught:
            s3.put_object(Bucket="locked", Key="during", Body=b"x" * 4096)
        err = caught.value.response
        assert err["Error"]["Code"] == "SlowDown"
        assert err["ResponseMetadata"]["HTTPStatusCode"] == 503
        # WAL: readers never wait for the writer.
        assert s3.get_object(Bucket="locked", Key="before")["Body"].read() == b"readable"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    s3.put_object(Bucket="locked", Key="during", Body=b"x" * 4096)
    assert s3.get_object(Bucket="locked", Key="during")["Body"].read() == b"x" * 4096


def test_revoked_key_stops_working_within_the_cache_bound(served: Served) -> None:
    access, secret = create_key(served.config, served.root, "revokee")
    s3 = served.s3(access, secret)
    s3.create_bucket(Bucket="revokee-data")
    for _ in range(4):  # reach (and fill the cache of) both workers
        assert s3.list_objects_v2(Bucket="revokee-data")["KeyCount"] == 0
    revoked = run_residency(
        "key", "revoke", access, "--config", str(served.config), cwd=served.root
    )
    assert revoked.returncode == 0, revoked.stderr
    # The contract: once revoked, every worker refuses the key after KEY_CACHE_SECONDS.
    time.sleep(KEY_CACHE_SECONDS + 0.5)
    for _ in range(6):
        with pytest.raises(ClientError) as caught:
            s3.list_objects_v2(Bucket="revokee-data")
        assert caught.value.response["Error"]["Code"] == "InvalidAccessKeyId"
