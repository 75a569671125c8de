"""One settings model, read from `residency.yaml` and `RESIDENCY_*` environment variables.

Environment variables win over the file so that a deployment can override a checked-in config
(`RESIDENCY_DATABASE_URL=postgresql+asyncpg://...`). They are read here, in a dozen lines,
rather than by pydantic-settings: importing that library cost every command ~60 ms, and
all it did for us was this lookup.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SCHEMES = ("fs", "memory", "s3", "oss", "cos", "obs", "azblob", "gcs")


class ConfigError(Exception):
    """A config file or value is wrong; the message says where and why."""


class LocationConfig(BaseModel):
    """A configured place where bytes can be stored.

    `provider`/`region` name catalog facts (country, vendor HQ, prices); the OpenDAL `scheme` and
    `options` say where the bytes really go. An `fs` location may stand for a cloud region.
    `provider: self` is an own data center: then `country` is required.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    provider: str
    region: str
    scheme: str = "fs"
    options: dict[str, str] = Field(default_factory=dict)
    country: str | None = None
    city: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError("must be lowercase letters, digits and '-', starting alphanumeric")
        return v

    @field_validator("scheme")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if v not in SCHEMES:
            raise ValueError(f"unsupported scheme {v!r}; use one of {', '.join(SCHEMES)}")
        return v

    @field_validator("country")
    @classmethod
    def _country(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Z]{2}", v):
            raise ValueError("must be an ISO 3166-1 alpha-2 code such as 'US'")
        return v


ENV_PREFIX = "RESIDENCY_"


class Settings(BaseModel):
    """Everything a residency process needs to know about its environment.

    `load_settings` merges the file, the environment and flags; `Settings(...)` itself is
    exactly what it is given.
    """

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Path("./residency-data")
    database_url: str | None = None
    policy: Path | None = None
    locations: list[LocationConfig] = Field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 9000
    workers: int = 1
    region_name: str = "us-east-1"
    log_level: str = "info"
    # Virtual-host addressing: `bucket.<base_domain>`; comma-separated for several names.
    base_domain: str | None = None
    # Sign an audit checkpoint (Ed25519) every N entries.
    audit_checkpoint_every: int = Field(default=1000, ge=1)
    # Operator Cedar policy files added to the built-in tenant-ownership policies.
    access_policies: list[Path] = Field(default_factory=list)
    # 28 CFR 202.205 bulk thresholds; None means the shipped defaults.
    bulk_thresholds: Path | None = None
    # `false` (`RESIDENCY_ACCESS_ENFORCEMENT=off`) skips Cedar and the bulk-data ledger, for
    # measuring their cost only: tenants stay apart by plain ownership, nothing else holds.
    access_enforcement: bool = True
    # How long an SQLite connection waits for another process's write lock (None: 15 s).
    sqlite_busy_timeout_ms: int | None = Field(default=None, ge=0)
    # Slow or stalled request bodies: 400 RequestTimeout, and the connection is closed, when
    # no byte of the body arrives for `body_idle_timeout` seconds, or when, over any such
    # span spent waiting for the client, fewer than `body_min_rate` bytes/s arrive (a client
    # trickling a byte every few seconds). `body_min_rate: 0` keeps only the idle timeout.
    body_idle_timeout: float = Field(default=20.0, gt=0, le=3600)
    body_min_rate: int = Field(default=1024, ge=0)
    # The admin HTTP server of `residency serve` (Prometheus `/metrics`, `/livez`, `/readyz`)
    # listens on `admin_host:admin_port`; no port (the default) means no admin server and no
    # counting. It has no authentication, so it stays on loopback whatever address the S3
    # port is exposed on (`host`) unless `admin_host` names another one.
    admin_port: int | None = Field(default=None, ge=1, le=65535)
    admin_host: str = "127.0.0.1"
    # `text`: one readable line per log record; `json`: one JSON object per line, with the
    # request id (and, for access lines, method, path, status, bytes, duration, operation).
    log_format: Literal["text", "json"] = "text"

    @property
    def db_url(self) -> str:
        """The async SQLAlchemy URL; SQLite under `data_dir` unless one is given."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'residency.db').resolve()}"

    @property
    def admin_address(self) -> str:
        """The address the admin server listens on (`admin_host`: loopback by default, never
        `host` just because the S3 port is exposed there)."""
        return self.admin_host

    def location(self, name: str) -> LocationConfig:
        for loc in self.locations:
            if loc.name == name:
                return loc
        raise ConfigError(f"no location named {name!r} (configured: {self.location_names()})")

    def location_names(self) -> str:
        return ", ".join(loc.name for loc in self.locations) or "none"


def _format_validation(err: ValidationError, source: str) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        parts.append(f"{where}: {e['msg']}")
    return f"{source}: " + "; ".join(parts)


def settings_from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Settings given as `RESIDENCY_<FIELD>` variables (any case, like pydantic-settings).

    List and mapping fields are JSON (`RESIDENCY_ACCESS_POLICIES='["a.cedar"]'`), and JSON
    `null` means unset; every other value is the plain string, validated with the rest.
    """
    env = os.environ if environ is None else environ
    by_name = {key.upper(): value for key, value in env.items()}
    found: dict[str, Any] = {}
    for name, field in Settings.model_fields.items():
        var = f"{ENV_PREFIX}{name.upper()}"
        if var not in by_name:
            continue
        value: Any = by_name[var]
        if _is_json(field.annotation):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ConfigError(f"{var}: not valid JSON ({exc})") from None
            if value is None:
                continue
        found[name] = value
    return found


def _is_json(annotation: Any) -> bool:
    """A list or mapping, alone or in a union (`list[str] | None`)."""
    if get_origin(annotation) in (list, dict):
        return True
    return any(get_origin(arg) in (list, dict) for arg in get_args(annotation))


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read settings from `path` (or `./residency.yaml` if present), env vars and overrides."""
    import yaml  # only reading a file needs it (gateway workers get their Settings as JSON)

    data: dict[str, Any] = {}
    if path is None and "RESIDENCY_CONFIG" in os.environ:
        path = Path(os.environ["RESIDENCY_CONFIG"])
    if path is None and Path("residency.yaml").exists():
        path = Path("residency.yaml")
    source = "settings"
    if path is not None:
        source = str(path)
        try:
            loaded = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: file not found") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        data = loaded or {}
    # Env vars beat the file (a key the environment sets is not read from the file even
    # when the variable is JSON null), and flags beat both.
    env_set = {key.upper() for key in os.environ}
    data = {k: v for k, v in data.items() if f"{ENV_PREFIX}{str(k).upper()}" not in env_set}
    data.update(settings_from_environment())
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, source)) from None
    names = [loc.name for loc in settings.locations]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{source}: duplicate location names: {', '.join(dupes)}")
    return settings
