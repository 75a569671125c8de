"""What the gateway counts for Prometheus: requests, latency, bytes, refusals, threshold hits.

`residency serve --admin-port` points `PROMETHEUS_MULTIPROC_DIR` at `<data_dir>/metrics`
(emptied at every start) before its workers start; each worker process counts into its own
memory-mapped files there (prometheus_client's multiprocess mode) and the admin server
(`residency.ops.admin`) adds every worker's files up when it is scraped. Without that
directory (no admin port, or the app embedded in a test) nothing is counted at all:
`Telemetry.open()` is None and the request path skips counting.

The request path pays what prometheus_client's multiprocess mode costs per increment (its one
process-wide lock and a write into a memory-mapped file) and nothing more: the labelled
children for an (operation, status) pair are looked up once and kept in a plain dict, and a
request is 3 to 5 increments (count, latency sum and bucket, bytes in, bytes out).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = "residency_s3_requests"
DURATION = "residency_s3_request_duration_seconds"
RECEIVED = "residency_s3_received_bytes"
SENT = "residency_s3_sent_bytes"
ERRORS = "residency_s3_errors"
REFUSALS = "residency_refusals"
THRESHOLD_HITS = "residency_threshold_hits"
WORKERS_READY = "residency_workers_ready"

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Seconds; small requests take milliseconds, 64 MiB transfers take seconds."""

UNROUTED = "Unknown"
"""The operation label of a request refused before its operation was known (bad headers...)."""
NO_RULE = "none"
"""The rule label of a refusal no rule is named for (e.g. classification required)."""

_shared: Telemetry | None = None


def _multiprocess_values() -> None:
    """Make sure metrics created from now on write to the multiprocess files.

    prometheus_client picks its value class when it is first imported; a process that
    imported it before `PROMETHEUS_MULTIPROC_DIR` was set (granian forks its workers from
    the `residency serve` process) would otherwise count in private memory nobody reads.
    """
    from prometheus_client import values

    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


class Telemetry:
    """The gateway's metrics in one worker process; `record` is called once per request."""

    def __init__(self) -> None:
        # registry=None: in multiprocess mode the files are what the admin server reads;
        # registering them anywhere would only export them twice.
        self.requests = Counter(
            REQUESTS,
            "S3 requests answered, by operation and HTTP status.",
            ["operation", "status"],
            registry=None,
        )
        self.duration = Histogram(
            DURATION,
            "Time from the request's arrival to the end of its response, by operation.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=None,
        )
        self.received = Counter(
            RECEIVED,
            "Request body bytes received (as sent: aws-chunked framing included).",
            ["operation"],
            registry=None,
        )
        self.sent = Counter(
            SENT, "Response body bytes sent, by operation.", ["operation"], registry=None
        )
        self.errors = Counter(
            ERRORS,
            "S3 error responses, by operation and S3 error code.",
            ["operation", "code"],
            registry=None,
        )
        self.refusals = Counter(
            REFUSALS,
            "Writes refused with ResidencyViolation, once for each rule that applied to them.",
            ["rule"],
            registry=None,
        )
        self.threshold_hits = Counter(
            THRESHOLD_HITS,
            "Reads that reached a 28 CFR 202 bulk threshold, by category, kind and whether "
            "they were still allowed.",
            ["category", "kind", "allowed"],
            registry=None,
        )
        self.ready = Gauge(
            WORKERS_READY,
            "Gateway worker processes that finished start-up and serve requests.",
            registry=None,
            multiprocess_mode="livesum",
        )
        self._children: dict[tuple[str, int], tuple[Any, Any, Any, Any]] = {}

    @classmethod
    def open(cls) -> Telemetry | None:
        """This process's telemetry when `PROMETHEUS_MULTIPROC_DIR` is set, else None.

        One instance per process: two would each keep their own idea of a value and
        overwrite each other's in the shared file.
        """
        global _shared
        if not os.environ.get(MULTIPROC_ENV):
            return None
        if _shared is None:
            _multiprocess_values()
            _shared = cls()
        return _shared

    def record(
        self,
        state: Mapping[str, Any],
        status: int,
        received: int,
        sent: int,
        seconds: float,
    ) -> None:
        """Count one finished request; `state` is the request's `scope["state"]`."""
        operation = state.get("operation") or UNROUTED
        key = (operation, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(operation, str(status or "-")),
                self.duration.labels(operation),
                self.received.labels(operation),
                self.sent.labels(operation),
            )
        count, duration, bytes_in, bytes_out = children
        count.inc()
        duration.observe(seconds)
        if received:
            bytes_in.inc(received)
        if sent:
            bytes_out.inc(sent)
        error = state.get("s3_error")
        if error is not None:
            self._error(operation, error)

    def _error(self, operation: str, error: Any) -> None:
        code = str(getattr(error, "code", "InternalError"))
        self.errors.labels(operation, code).inc()
        if code == "ResidencyViolation":
            fields: Mapping[str, str] = getattr(error, "fields", {})
            rules = [r.strip() for r in fields.get("Rule", "").split(",") if r.strip()]
            for rule in rules or [NO_RULE]:
                self.refusals.labels(rule).inc()

    def threshold_hit(self, category: str | None, kind: str | None, allowed: bool) -> None:
        """A read took its holder to or past a bulk threshold (allowed or refused)."""
        self.threshold_hits.labels(
            category or "unknown", kind or "unknown", "true" if allowed else "false"
        ).inc()
