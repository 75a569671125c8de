"""ASGI entry for granian/uvicorn workers: `residency.gateway.asgi:create` (a factory).

Each worker process builds its own app from the same settings: `residency serve` passes the
resolved settings as JSON in `RESIDENCY_SERVE_SETTINGS`; otherwise they are read the usual way
(`RESIDENCY_CONFIG`, `./residency.yaml`, `RESIDENCY_*` env vars).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from starlette.applications import Starlette

from residency.config import Settings, load_settings
from residency.gateway.accesslog import loggable
from residency.gateway.app import create_app
from residency.gateway.jsonlog import use_json

SETTINGS_ENV = "RESIDENCY_SERVE_SETTINGS"


def settings_from_env() -> Settings:
    serialized = os.environ.get(SETTINGS_ENV)
    if serialized:
        return Settings.model_validate_json(serialized)
    return load_settings()


class OneLineFormatter(logging.Formatter):
    """Every record is one line that nothing from a request can break: the message goes
    through `loggable` (control characters escaped; values the gateway escaped already, with
    their backslashes doubled, are left as they are), and a traceback's lines are indented
    under it with `  | `, so no text in an exception can pass for a record of its own."""

    def format(self, record: logging.LogRecord) -> str:
        saved = record.msg, record.args
        record.msg, record.args = loggable(record.getMessage(), backslash=False), None
        try:
            return super().format(record)
        finally:
            record.msg, record.args = saved

    def formatException(self, ei: Any) -> str:
        return "\n".join(f"  | {line}" for line in super().formatException(ei).splitlines())

    def formatStack(self, stack_info: str) -> str:
        return "\n".join(f"  | {line}" for line in stack_info.splitlines())


def configure_logging(level: str) -> None:
    """One line per record on stderr for the `residency` loggers (workers start bare)."""
    logger = logging.getLogger("residency")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level.upper())


def create() -> Starlette:
    settings = settings_from_env()
    configure_logging(settings.log_level)
    if settings.log_format == "json":
        use_json(logging.getLogger("residency"))
    return create_app(settings)
