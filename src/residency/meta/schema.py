"""The whole schema, for tooling: every package's tables on one `MetaData`.

Packages above meta (audit, migrate, ...) declare their tables in `residency/<pkg>/models.py`
on `meta.models.Base` and ship their own Alembic revisions. Autogenerate and the
models-versus-migrations test need all of them loaded; the running system does not.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from sqlalchemy import MetaData

import residency
from residency.meta.models import Base


def model_modules() -> list[str]:
    """Names of the `residency.<pkg>.models` modules that exist."""
    names = []
    for info in pkgutil.iter_modules(residency.__path__):
        if info.ispkg and any(
            (Path(p) / info.name / "models.py").is_file() for p in residency.__path__
        ):
            names.append(f"residency.{info.name}.models")
    return sorted(names)


def full_metadata() -> MetaData:
    for name in model_modules():
        importlib.import_module(name)
    return Base.metadata
