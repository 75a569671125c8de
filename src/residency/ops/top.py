"""`residency top`: the admin server's counters as a live terminal view, no dashboard needed.

It reads what Prometheus would (`/metrics`, plus `/readyz` for the reasons a server is not
ready), keeps the previous scrape, and shows rates over the last interval: requests per
operation with their errors, latency percentiles (estimated from the histogram buckets as
PromQL's `histogram_quantile` does), bytes in and out, refusals by rule, bulk-threshold hits
and migration progress. The first view (and `--once`) shows averages since the server started.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from residency.gateway import telemetry

FETCH_TIMEOUT = 5.0


class ScrapeError(Exception):
    """The admin server could not be reached or did not answer with metrics."""


@dataclass
class RunView:
    actions: dict[str, float] = field(default_factory=dict)
    bytes: dict[str, float] = field(default_factory=dict)
    failed: float = 0.0
    running: bool = False


@dataclass
class Snapshot:
    """One scrape, reduced to what the view shows."""

    at: float
    requests: dict[tuple[str, str], float] = field(default_factory=dict)
    buckets: dict[str, dict[float, float]] = field(default_factory=dict)
    received: dict[str, float] = field(default_factory=dict)
    sent: dict[str, float] = field(default_factory=dict)
    errors: dict[tuple[str, str], float] = field(default_factory=dict)
    refusals: dict[str, float] = field(default_factory=dict)
    threshold_hits: dict[tuple[str, str, str], float] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)
    runs: dict[str, RunView] = field(default_factory=dict)
    readiness: Mapping[str, Any] = field(default_factory=dict)


def parse(text: str, *, at: float | None = None) -> Snapshot:
    """A snapshot of Prometheus text exposition (what `/metrics` answers)."""
    snap = Snapshot(at=time.time() if at is None else at)
    runs: dict[str, RunView] = defaultdict(RunView)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            op = labels.get("operation", "")
            if name == f"{telemetry.REQUESTS}_total":
                snap.requests[(op, labels.get("status", ""))] = value
            elif name == f"{telemetry.DURATION}_bucket":
                snap.buckets.setdefault(op, {})[float(labels["le"])] = value
            elif name == f"{telemetry.RECEIVED}_total":
                snap.received[op] = value
            elif name == f"{telemetry.SENT}_total":
                snap.sent[op] = value
            elif name == f"{telemetry.ERRORS}_total":
                snap.errors[(op, labels.get("code", ""))] = value
            elif name == f"{telemetry.REFUSALS}_total":
                snap.refusals[labels.get("rule", "")] = value
            elif name == f"{telemetry.THRESHOLD_HITS}_total":
                key = (
                    labels.get("category", ""),
                    labels.get("kind", ""),
                    labels.get("allowed", ""),
                )
                snap.threshold_hits[key] = value
            elif name == "residency_migration_actions":
                runs[labels["run"]].actions[labels["state"]] = value
            elif name == "residency_migration_bytes":
                runs[labels["run"]].bytes[labels["state"]] = value
            elif name == "residency_migration_failed_actions":
                runs[labels["run"]].failed = value
            elif name == "residency_migration_running":
                runs[labels["run"]].running = value > 0
            elif not labels:
                snap.gauges[name] = value
    snap.runs = dict(runs)
    return snap


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as response:
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:  # /readyz answers 503 with its reasons
        return exc.code, exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ScrapeError(f"cannot reach {url}: {reason}") from None


def scrape(base_url: str) -> Snapshot:
    """Fetch `/metrics` and `/readyz` from the admin server at `base_url`."""
    base = base_url.rstrip("/")
    status, body = _get(f"{base}/metrics")
    if status != 200:
        raise ScrapeError(f"{base}/metrics answered HTTP {status}")
    try:
        snap = parse(body)
    except ValueError as exc:
        raise ScrapeError(f"{base}/metrics is not Prometheus text: {exc}") from None
    _, ready = _get(f"{base}/readyz")
    try:
        readiness = json.loads(ready)
    except ValueError:
        readiness = {}
    snap.readiness = readiness if isinstance(readiness, dict) else {}
    return snap


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The q-quantile of cumulative buckets {upper bound: count}, interpolated linearly
    inside its bucket (PromQL's `histogram_quantile`); None without observations."""
    bounds = sorted(buckets)
    if not bounds:
        return None
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bound: say that bound
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def _delta(now: Mapping[Any, float], then: Mapping[Any, float] | None) -> dict[Any, float]:
    """Per-key increase since `then` (a counter reset, i.e. a restart, counts from zero)."""
    if then is None:
        return dict(now)
    out = {}
    for key, value in now.items():
        before = then.get(key, 0.0)
        out[key] = value - before if value >= before else value
    return out


def _rate(value: float, seconds: float) -> str:
    return f"{value / seconds:,.1f}" if seconds > 0 else "-"


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.1f}"


def _uptime(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def render(url: str, now: Snapshot, previous: Snapshot | None = None) -> RenderableType:
    """The view: over the last interval when `previous` is given, else since start-up."""
    started = now.gauges.get("residency_start_time_seconds", now.at)
    if previous is not None:
        seconds, window = now.at - previous.at, f"last {now.at - previous.at:.1f} s"
    else:
        seconds, window = now.at - started, "since start"
    parts: list[RenderableType] = [_header(url, now, started, window)]
    parts.append(_requests_table(now, previous, seconds))
    if now.errors:
        parts.append(_errors_table(now, previous))
    if now.refusals:
        parts.append(_counter_table("Refusals (ResidencyViolation) by rule", "rule", now.refusals))
    if now.threshold_hits:
        parts.append(_threshold_table(now))
    if now.runs:
        parts.append(_migrations_table(now))
    return Group(*parts)


def _header(url: str, now: Snapshot, started: float, window: str) -> Text:
    ready = now.gauges.get("residency_ready") == 1
    workers = int(now.gauges.get("residency_workers", 0))
    workers_ready = int(now.gauges.get(telemetry.WORKERS_READY, 0))
    database = "ok" if now.gauges.get("residency_database_up") == 1 else "DOWN"
    text = Text()
    text.append("residency top ", style="bold")
    text.append(f"{url}  ")
    text.append("READY" if ready else "NOT READY", style="bold green" if ready else "bold red")
    text.append(
        f"  workers {workers_ready}/{workers}  database {database}  "
        f"up {_uptime(now.at - started)}  rates: {window}"
    )
    for problem in now.readiness.get("problems", []) if not ready else []:
        text.append(f"\n  not ready: {problem}", style="red")
    return text


def _requests_table(now: Snapshot, previous: Snapshot | None, seconds: float) -> Table:
    requests = _delta(now.requests, previous.requests if previous else None)
    received = _delta(now.received, previous.received if previous else None)
    sent = _delta(now.sent, previous.sent if previous else None)
    by_op: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    totals: dict[str, float] = defaultdict(float)
    for (op, _status), count in now.requests.items():
        totals[op] += count
    for (op, status), count in requests.items():
        row = by_op[op]
        row["n"] += count
        if status.startswith("4"):
            row["4xx"] += count
        elif status.startswith("5"):
            row["5xx"] += count
    table = Table(title="S3 requests", title_justify="left", expand=False)
    for name in ("operation", "total", "req/s", "4xx", "5xx", "p50 ms", "p99 ms", "in/s", "out/s"):
        table.add_column(name, justify="left" if name == "operation" else "right")
    for op in sorted(totals, key=lambda o: (-by_op[o]["n"] if o in by_op else 0, -totals[o], o)):
        row = by_op.get(op, {})
        buckets = _delta(now.buckets.get(op, {}), previous.buckets.get(op) if previous else None)
        table.add_row(
            op,
            f"{totals[op]:,.0f}",
            _rate(row.get("n", 0.0), seconds),
            f"{row.get('4xx', 0.0):,.0f}",
            f"{row.get('5xx', 0.0):,.0f}",
            _ms(quantile(0.5, buckets)),
            _ms(quantile(0.99, buckets)),
            _bytes(received.get(op, 0.0) / seconds) if seconds > 0 else "-",
            _bytes(sent.get(op, 0.0) / seconds) if seconds > 0 else "-",
        )
    return table


def _errors_table(now: Snapshot, previous: Snapshot | None) -> Table:
    recent = _delta(now.errors, previous.errors if previous else None)
    table = Table(title="S3 errors", title_justify="left")
    for name in ("operation", "code", "total", "new"):
        table.add_column(name, justify="right" if name in ("total", "new") else "left")
    for (op, code), total in sorted(now.errors.items(), key=lambda kv: (-kv[1], kv[0]))[:15]:
        table.add_row(op, code, f"{total:,.0f}", f"{recent.get((op, code), 0.0):,.0f}")
    return table


def _counter_table(title: str, label: str, values: Mapping[str, float]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(label)
    table.add_column("total", justify="right")
    for key, total in sorted(values.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(key, f"{total:,.0f}")
    return table


def _threshold_table(now: Snapshot) -> Table:
    table = Table(title="Bulk-data threshold hits (28 CFR 202)", title_justify="left")
    for name in ("category", "kind", "allowed", "total"):
        table.add_column(name, justify="right" if name == "total" else "left")
    for (category, kind, allowed), total in sorted(now.threshold_hits.items()):
        table.add_row(category, kind, allowed, f"{total:,.0f}")
    return table


FINISHED_STATES = ("done", "skipped")


def _migrations_table(now: Snapshot) -> Table:
    table = Table(title="Migrations", title_justify="left")
    for name in ("run", "state", "actions done", "bytes done", "failed", "progress"):
        table.add_column(name, justify="left" if name in ("run", "state") else "right")
    for run_id, run in sorted(now.runs.items()):
        total = sum(run.actions.values())
        done = sum(run.actions.get(s, 0.0) for s in FINISHED_STATES)
        size = sum(run.bytes.values())
        moved = sum(run.bytes.get(s, 0.0) for s in FINISHED_STATES)
        share = done / total if total else 1.0
        bar = "#" * round(share * 20)
        table.add_row(
            run_id[:16],
            "running" if run.running else "finished",
            f"{done:,.0f}/{total:,.0f}",
            f"{_bytes(moved)}/{_bytes(size)}",
            f"{run.failed:,.0f}",
            f"{bar:<20} {share:6.1%}",
        )
    return table
