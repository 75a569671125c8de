"""Operating the gateway (issue #13): the admin port's /metrics, /livez and /readyz, JSON access
logs with request ids, and `residency top`.

A module-scoped `residency serve --workers 2 --admin-port P --log-format json`: every request
is counted by whichever worker took it, and the scrape must add both workers up. Counters are
read with prometheus_client's own text parser, before and after each action.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import pytest
import yaml
from gwserver import (
    REGION,
    Server,
    _free_port,
    create_key,
    one_location_config,
    run_residency,
    serve_expecting_refusal,
    start_server,
    write_config,
)
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

HEALTH = {"residency-class": "personal.health", "residency-subject": "US"}
CN_PERSONAL = {"residency-class": "personal", "residency-subject": "CN"}


def scrape(admin: str) -> Samples:
    response = httpx.get(f"{admin}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def wait_for(check: Any, timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except httpx.TransportError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def readyz(admin: str) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{admin}/readyz", timeout=10)
    return response.status_code, response.json()


@dataclass
class Ops:
    server: Server
    admin: str
    config: Path
    root: Path
    access_key: str
    secret_key: str

    def s3(self, access_key: str | None = None, secret_key: str | None = None) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.server.endpoint,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_residency(*args, "--config", str(self.config), cwd=self.root)

    def log_records(self) -> list[dict[str, Any]]:
        """Every line of the server's stderr, each of which must be one JSON object."""
        lines = self.server.stderr.read_text().splitlines()
        records = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except ValueError:
                pytest.fail(f"a log line that is not JSON: {line!r}")
        return records

    def access_line(self, request_id: str) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for record in self.log_records():
                if record.get("request_id") == request_id and "status" in record:
                    return record
            return None

        found: dict[str, Any] = wait_for(find, 10, f"the access line of {request_id}")
        return found


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory, moto_server: Any) -> Iterator[Ops]:
    root = tmp_path_factory.mktemp("ops")
    config, _ = write_config(root, moto_server, moto_server.new_bucket())
    access, secret = create_key(config, root, "acme")
    admin_port = _free_port()
    args = ["--config", str(config), "--workers", "2", "--admin-port", str(admin_port)]
    server = start_server([*args, "--log-format", "json"], root)
    admin = f"http://127.0.0.1:{admin_port}"
    try:
        wait_for(lambda: readyz(admin)[0] == 200, what="/readyz 200")
        yield Ops(server, admin, config, root, access, secret)
    finally:
        server.stop()


@pytest.fixture
def bucket(ops: Ops) -> str:
    name = f"ops-{uuid.uuid4().hex[:10]}"
    ops.s3().create_bucket(Bucket=name)
    return name


def test_put_get_refusal_and_404_move_their_counters(ops: Ops, bucket: str) -> None:
    s3 = ops.s3()
    body = os.urandom(4096)
    before = scrape(ops.admin)
    s3.put_object(Bucket=bucket, Key="data.bin", Body=body)
    assert s3.get_object(Bucket=bucket, Key="data.bin")["Body"].read() == body
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        s3.get_object(Bucket=bucket, Key="no-such-key")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        s3.put_object(Bucket=bucket, Key="cn.csv", Body=b"x" * 100, Metadata=CN_PERSONAL)
    error = refused.value.response["Error"]
    assert error["Code"] == "ResidencyViolation"
    rules = [r for r in error["Rule"].split(",") if r]
    assert "pipl-mainland-only" in rules
    after = scrape(ops.admin)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "residency_s3_requests_total"
    assert moved(requests, operation="PutObject", status="200") == 1
    assert moved(requests, operation="PutObject", status="403") == 1
    assert moved(requests, operation="GetObject", status="200") == 1
    assert moved(requests, operation="GetObject", status="404") == 1
    errors = "residency_s3_errors_total"
    assert moved(errors, operation="GetObject", code="NoSuchKey") == 1
    assert moved(errors, operation="PutObject", code="ResidencyViolation") == 1
    for rule in rules:  # every rule the refusal named, as the S3 error's <Rule> says
        assert moved("residency_refusals_total", rule=rule) == 1, rule
    # Latency: one observation per request, in the +Inf bucket and the count.
    duration = "residency_s3_request_duration_seconds"
    assert moved(f"{duration}_count", operation="PutObject") == 2
    assert moved(f"{duration}_bucket", operation="GetObject", le="+Inf") == 2
    assert moved(f"{duration}_sum", operation="GetObject") > 0
    # Bytes: the 4 KiB body in (plus aws-chunked framing, if the SDK sent it) and out.
    assert 4096 <= moved("residency_s3_received_bytes_total", operation="PutObject") < 8192
    assert 4096 <= moved("residency_s3_sent_bytes_total", operation="GetObject") < 8192
    # Both workers are counted: readiness says so, and what they counted adds up.
    assert value(after, "residency_workers_ready") == 2
    assert value(after, "residency_workers") == 2
    assert value(after, "residency_ready") == 1
    assert value(after, "residency_database_up") == 1


def test_a_bulk_threshold_hit_is_counted(ops: Ops, bucket: str) -> None:
    ops.s3().put_object(
        Bucket=bucket,
        Key="cohort.csv",
        Body=b"records of 20000 people",
        Metadata={**HEALTH, "residency-subjects": "20000"},
    )
    done = ops.cli("principal", "set", "acme/li", "--country", "CN", "--covered-person")
    assert done.returncode == 0, done.stderr
    key = ops.cli("key", "create", "--tenant", "acme", "--name", "li", "--json")
    assert key.returncode == 0, key.stderr
    data = json.loads(key.stdout)
    reader = ops.s3(data["access_key_id"], data["secret_access_key"])
    before = scrape(ops.admin)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        reader.get_object(Bucket=bucket, Key="cohort.csv")
    assert exc.value.response["Error"]["Code"] == "AccessDenied"
    after = scrape(ops.admin)
    hits = "residency_threshold_hits_total"
    labels = {"category": "personal_health", "allowed": "false"}
    assert total(after, hits, **labels) - total(before, hits, **labels) == 1


def test_json_access_lines_carry_the_request_id_of_the_response(ops: Ops, bucket: str) -> None:
    s3 = ops.s3()
    put = s3.put_object(Bucket=bucket, Key="logged.bin", Body=b"y" * 4096)
    put_id = put["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    line = ops.access_line(put_id)
    assert line["logger"] == "residency.gateway"
    assert line["level"] == "info"
    assert (line["method"], line["status"], line["operation"]) == ("PUT", 200, "PutObject")
    assert line["path"] == f"/{bucket}/logged.bin"
    assert line["bytes_in"] >= 4096
    assert line["duration_ms"] > 0
    assert line["client"] == "127.0.0.1"
    assert put_id in line["message"]

    # An error response's id is the one its access line carries too.
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="absent")
    missing_id = exc.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    assert (ops.access_line(missing_id)["status"], missing_id != put_id) == (404, True)

    # A key with a line break stays inside its JSON string: every line still parses, and
    # the path comes back exactly as the client sent it.
    newline = s3.put_object(Bucket=bucket, Key="a\nforged", Body=b"z")
    forged_id = newline["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    assert ops.access_line(forged_id)["path"] == f"/{bucket}/a\nforged"
    # granian's own records (start-up, workers) are JSON lines on the same stream.
    assert any(r["logger"].startswith("_granian") for r in ops.log_records())


def test_livez_and_readyz(ops: Ops) -> None:
    live = httpx.get(f"{ops.admin}/livez", timeout=10)
    assert live.status_code == 200
    assert live.json()["alive"] is True
    status, body = readyz(ops.admin)
    assert status == 200
    assert body == {
        "ready": True,
        "workers": 2,
        "workers_ready": 2,
        "database": "ok",
        "problems": [],
    }


def test_residency_top_once_shows_the_counters(ops: Ops) -> None:
    shown = run_residency("top", "--url", ops.admin, "--once", cwd=ops.root)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "READY" in out
    assert "NOT READY" not in out
    assert "workers 2/2" in out
    for text in ("PutObject", "GetObject", "NoSuchKey", "ResidencyViolation"):
        assert text in out, text
    assert "pipl-mainland-only" in out  # refusals by rule
    assert "personal_health" in out  # threshold hits

    # The admin address can come from the config, as for `serve`.
    settings = yaml.safe_load(ops.config.read_text())
    settings["admin_port"] = int(ops.admin.rsplit(":", 1)[1])
    config = ops.root / "top.yaml"
    config.write_text(yaml.safe_dump(settings))
    from_config = run_residency("top", "--config", str(config), "--once", cwd=ops.root)
    assert from_config.returncode == 0, from_config.stderr
    assert "PutObject" in from_config.stdout


def test_residency_top_watches_rates_until_interrupted(ops: Ops) -> None:
    watch = subprocess.Popen(
        [sys.executable, "-m", "residency", "top", "--url", ops.admin, "--interval", "0.3"],
        cwd=ops.root,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        s3 = ops.s3()
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:  # traffic for the rates to show
            s3.list_buckets()
            time.sleep(0.1)
        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=30)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.communicate()
    assert watch.returncode == 0, err
    assert "rates: last 0." in out  # the view after a refresh: rates over the interval
    assert "ListBuckets" in out


def test_residency_top_without_a_server_is_one_line(ops: Ops) -> None:
    closed = f"http://127.0.0.1:{_free_port()}"
    down = run_residency("top", "--url", closed, "--once", cwd=ops.root)
    assert down.returncode == 2
    assert down.stderr.strip().count("\n") == 0
    assert f"cannot reach {closed}/metrics" in down.stderr
    unset = run_residency("top", "--config", str(ops.config), "--once", cwd=ops.root)
    assert unset.returncode == 2
    assert "no admin server configured" in unset.stderr


MOVE_POLICY = """
name: public-to-germany
extends: [preset:default]
default_class: public
rules:
  - id: public-in-germany
    scope: {data_class: [public]}
    constraints:
      allow_countries: [DE]
"""


def test_migration_progress_while_a_run_goes_and_when_it_is_done(ops: Ops, bucket: str) -> None:
    s3 = ops.s3()
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"move-{i}.bin", Body=os.urandom(1000))
    policy = ops.root / "move.yaml"
    policy.write_text(MOVE_POLICY)
    plan = ops.root / "move-plan.json"
    made = ops.cli("plan", "-o", str(plan), "--policy", str(policy))
    assert made.returncode in (0, 1), made.stderr
    run_id = json.loads(plan.read_text().splitlines()[0])["id"]
    migrate = subprocess.Popen(
        [
            *(sys.executable, "-m", "residency", "migrate", str(plan), "--policy", str(policy)),
            *("--max-rps", "2", "--config", str(ops.config)),
        ],
        cwd=ops.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def running() -> Samples | None:
            samples = scrape(ops.admin)
            if value(samples, "residency_migration_running", run=run_id) == 1:
                return samples
            return None

        during = wait_for(running, 60, "the run to show as running")
        actions = "residency_migration_actions"
        planned = total(during, actions, run=run_id)
        assert planned >= 3
        _, err = migrate.communicate(timeout=120)
    finally:
        if migrate.poll() is None:
            migrate.kill()
            migrate.communicate()
    assert migrate.returncode == 0, err
    after = scrape(ops.admin)
    assert value(after, "residency_migration_running", run=run_id) == 0
    assert total(after, actions, run=run_id) == planned
    finished = value(after, actions, run=run_id, state="done") + value(
        after, actions, run=run_id, state="skipped"
    )
    assert finished == planned
    assert value(after, "residency_migration_failed_actions", run=run_id) == 0
    assert value(after, "residency_migration_bytes", run=run_id, state="done") >= 3000


def test_readiness_fails_while_the_database_is_unreachable(ops: Ops) -> None:
    db = Path(yaml.safe_load(ops.config.read_text())["data_dir"]) / "residency.db"
    moved = db.with_name("residency.db.unmounted")
    db.rename(moved)
    try:
        status, body = readyz(ops.admin)
        assert status == 503
        assert body["ready"] is False
        assert body["workers_ready"] == 2
        assert any(p.startswith("database: no database at") for p in body["problems"])
        samples = scrape(ops.admin)
        assert value(samples, "residency_database_up") == 0
        assert value(samples, "residency_ready") == 0
    finally:
        moved.rename(db)
    status, body = readyz(ops.admin)
    assert (status, body["ready"], body["problems"]) == (200, True, [])


# --------------------------------------------------------------------------- own servers


def test_a_busy_admin_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = one_location_config(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        port = str(_free_port())
        done = serve_expecting_refusal(
            "--config", str(config), "--port", port, "--admin-port", str(busy), cwd=tmp_path
        )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: admin port {busy} on 127.0.0.1 is already in use; "
        "stop that server or pick --admin-port"
    )
    same = serve_expecting_refusal(
        "--config", str(config), "--port", port, "--admin-port", port, cwd=tmp_path
    )
    assert same.returncode == 2
    assert same.stderr.strip() == f"error: --admin-port {port} is the S3 port; pick another one"


def _answers(host: str, port: int) -> bool:
    """Whether something accepts connections on (host, port)."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _admin_line(server: Server) -> str:
    lines = [ln for ln in server.stdout.read_text().splitlines() if ln.startswith("Admin: ")]
    assert len(lines) == 1, server.stdout.read_text()
    return lines[0]


def test_the_admin_port_stays_on_loopback_when_the_s3_port_is_exposed(tmp_path: Path) -> None:
    """`--host 0.0.0.0` exposes S3, not the metrics: the admin server (no authentication)
    listens on 127.0.0.1 unless --admin-host (or `admin_host`) names another address.

    127.0.0.2 stands for "another address of this machine": it reaches a server listening on
    every address, never one listening on 127.0.0.1 alone."""
    config = one_location_config(tmp_path)
    port, admin_port = _free_port(), _free_port()
    args = ["--config", str(config), "--host", "0.0.0.0", "--admin-port", str(admin_port)]
    server = start_server(args, tmp_path)
    try:
        assert httpx.get(f"http://127.0.0.2:{_port_of(server)}/", timeout=5).status_code == 403
        assert httpx.get(f"http://127.0.0.1:{admin_port}/livez", timeout=5).status_code == 200
        assert not _answers("127.0.0.2", admin_port)  # before: the admin port was on 0.0.0.0
        assert _admin_line(server) == (
            f"Admin: http://127.0.0.1:{admin_port}/metrics http://127.0.0.1:{admin_port}/livez "
            f"http://127.0.0.1:{admin_port}/readyz (listening on 127.0.0.1:{admin_port}, this "
            "machine only; --admin-host exposes it)"
        )
    finally:
        server.stop()
    # The same port for both is refused although the addresses differ: 0.0.0.0 takes them all.
    same = serve_expecting_refusal(
        "--config", str(config), "--host", "0.0.0.0", "--port", str(port),
        "--admin-port", str(port), cwd=tmp_path,
    )  # fmt: skip
    assert same.returncode == 2
    assert same.stderr.strip() == f"error: --admin-port {port} is the S3 port; pick another one"


@pytest.mark.parametrize("how", ["flag", "env"])
def test_admin_host_chooses_where_the_admin_port_listens(tmp_path: Path, how: str) -> None:
    config = one_location_config(tmp_path)
    admin_port = _free_port()
    args = ["--config", str(config), "--admin-port", str(admin_port)]
    if how == "flag":
        server = start_server([*args, "--admin-host", "127.0.0.2"], tmp_path)
    else:
        server = start_server(args, tmp_path, env={"RESIDENCY_ADMIN_HOST": "127.0.0.2"})
    try:
        assert httpx.get(f"http://127.0.0.2:{admin_port}/livez", timeout=5).status_code == 200
        assert not _answers("127.0.0.1", admin_port)
        assert f"(listening on 127.0.0.2:{admin_port}, this machine only" in _admin_line(server)
        # `residency top` finds it where the config says it is.
        if how == "env":
            top = run_residency(
                "top", "--config", str(config), "--once", cwd=tmp_path,
                env={"RESIDENCY_ADMIN_HOST": "127.0.0.2", "RESIDENCY_ADMIN_PORT": str(admin_port)},
            )  # fmt: skip
            assert top.returncode == 0, top.stderr
    finally:
        server.stop()


def _port_of(server: Server) -> int:
    return int(server.endpoint.rsplit(":", 1)[1])


def test_not_ready_until_start_up_finished(tmp_path: Path) -> None:
    """The admin port answers while the server still waits for its database: alive, not
    ready; ready once every worker has started."""
    config = one_location_config(tmp_path, sqlite_busy_timeout_ms=120_000)
    create_key(config, tmp_path, "acme")  # the database exists, in WAL mode
    db = tmp_path / "data" / "residency.db"
    admin_port, port = _free_port(), _free_port()
    admin = f"http://127.0.0.1:{admin_port}"
    # Another process holds the write lock: start-up (its schema check) must wait for it.
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    err = tmp_path / "serve.err"
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "residency", "serve", "--config", str(config)),
                *("--port", str(port), "--admin-port", str(admin_port)),
            ],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    server = Server(proc, f"http://127.0.0.1:{port}", tmp_path, tmp_path / "none", err)
    try:
        wait_for(lambda: httpx.get(f"{admin}/livez", timeout=2).status_code == 200, 60, "livez")
        for _ in range(3):
            status, body = readyz(admin)
            assert status == 503, body
            assert body["workers_ready"] == 0
            assert "0 of 1 workers ready" in body["problems"]
            time.sleep(0.3)
        assert proc.poll() is None, err.read_text()
        lock.execute("ROLLBACK")
        wait_for(lambda: readyz(admin)[0] == 200, 60, "/readyz 200 after start-up")
        assert httpx.get(f"{server.endpoint}/", timeout=10).status_code == 403  # S3 answers
    finally:
        lock.close()
        server.stop()
    # The admin server went away with the gateway.
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{admin}/livez", timeout=2)


def test_top_estimates_percentiles_as_histogram_quantile_does() -> None:
    from residency.ops.top import quantile

    buckets = {0.01: 0.0, 0.1: 50.0, 1.0: 100.0, float("inf"): 100.0}
    assert quantile(0.25, buckets) == pytest.approx(0.055)  # halfway into (0.01, 0.1]
    assert quantile(0.5, buckets) == pytest.approx(0.1)
    assert quantile(0.75, buckets) == pytest.approx(0.55)
    # Beyond the last finite bound: that bound (PromQL says the same).
    assert quantile(0.99, {0.1: 0.0, float("inf"): 10.0}) == pytest.approx(0.1)
    assert quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None
