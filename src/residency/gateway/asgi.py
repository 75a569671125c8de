"""ASGI entry for granian/uvicorn workers: `residency.gateway.asgi:create` (a factory).

Each worker process builds its own app from the same settings: `residency serve` passes the
resolved settings as JSON in `RESIDENCY_SERVE_SETTINGS`; otherwise they are read the usual way
(`RESIDENCY_CONFIG`, `./residency.yaml`, `RESIDENCY_*` env vars).
"""

from __future__ import annotations

import logging
import os
import sys

from starlette.applications import Starlette

from residency.config import Settings, load_settings
from residency.gateway.app import create_app

SETTINGS_ENV = "RESIDENCY_SERVE_SETTINGS"


def settings_from_env() -> Settings:
    serialized = os.environ.get(SETTINGS_ENV)
    if serialized:
        return Settings.model_validate_json(serialized)
    return load_settings()


def configure_logging(level: str) -> None:
    """One line per record on stderr for the `residency` loggers (workers start bare)."""
    logger = logging.getLogger("residency")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level.upper())


def create() -> Starlette:
    settings = settings_from_env()
    configure_logging(settings.log_level)
    return create_app(settings)
