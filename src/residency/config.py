"""One settings model, read from `residency.yaml` and `RESIDENCY_*` environment variables.

Environment variables win over the file so that a deployment can override a checked-in config
(`RESIDENCY_DATABASE_URL=postgresql+asyncpg://...`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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


class Settings(BaseSettings):
    """Everything a residency process needs to know about its environment."""

    model_config = SettingsConfigDict(env_prefix="RESIDENCY_", extra="forbid")

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

    @property
    def db_url(self) -> str:
        """The async SQLAlchemy URL; SQLite under `data_dir` unless one is given."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'residency.db').resolve()}"

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


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Read settings from `path` (or `./residency.yaml` if present), env vars and overrides."""
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
    # Env vars beat the file: drop file keys that the environment sets.
    for key in list(data):
        if f"RESIDENCY_{key.upper()}" in os.environ:
            del data[key]
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, source)) from None
    names = [loc.name for loc in settings.locations]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{source}: duplicate location names: {', '.join(dupes)}")
    return settings
