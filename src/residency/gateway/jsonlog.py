"""`--log-format json`: every log record as one JSON object on one line.

Fields: `time` (UTC, ISO 8601 with milliseconds), `level`, `logger`, `message`, and
`request_id` for every record written while a request is handled (the id its S3 response
carries in `x-amz-request-id`). An access line adds `method`, `path`, `status`, `operation`,
`bytes_in`, `bytes_out`, `duration_ms` and `client`. A traceback is one `exception` string.
The encoding is ASCII with everything else escaped (`\\n`, `\\u2028`), so nothing a client
sends can end a line or start a forged one.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

REQUEST_ID: ContextVar[str | None] = ContextVar("residency_request_id", default=None)
"""The id of the request being handled in this task (set by `AccessLog`)."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring for its fields)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            out["request_id"] = request_id
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            out.update(access)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=True, separators=(",", ":"), default=str)


def use_json(logger: logging.Logger) -> None:
    """Switch `logger`'s handlers to `JsonFormatter`, and give the root logger a JSON handler
    on stderr (warnings and errors) if it has none, so records of other libraries (asyncio,
    SQLAlchemy, uvicorn) are JSON lines too instead of Python's plain last-resort output."""
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    if not root.handlers:
        fallback = logging.StreamHandler(sys.stderr)
        fallback.setFormatter(JsonFormatter())
        fallback.setLevel(logging.WARNING)
        root.addHandler(fallback)


def granian_log_config() -> dict[str, Any]:
    """granian's own loggers (start-up, workers, errors) as JSON lines on stderr."""
    formatter = {"()": f"{__name__}.JsonFormatter"}
    handler = {"formatter": "json", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"generic": formatter, "access": formatter, "json": formatter},
        "handlers": {"console": handler, "access": handler},
        "loggers": {
            "_granian": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }
