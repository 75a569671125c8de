"""28 CFR 202.205 data categories: which data classes they cover, their thresholds and windows.

Defaults ship in `bulk_thresholds.yaml` beside this module; an operator may point at a file
of the same shape to change them. Parsed once per path and cached.
"""

from __future__ import annotations

import fnmatch
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from residency.access.errors import BulkRulesError


class BulkCategory(BaseModel):
    """One category of covered data and the volume at which access becomes covered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    threshold: int = Field(ge=0)
    prohibited: bool = False
    unit: str = "us_persons"
    classes: tuple[str, ...] = Field(min_length=1)
    window_days: int | None = Field(default=None, gt=0)
    citation: str = ""

    @property
    def kind(self) -> str:
        return "prohibited" if self.prohibited else "restricted"

    def matches(self, data_class: str) -> bool:
        return any(fnmatch.fnmatchcase(data_class, glob) for glob in self.classes)


class BulkRules(BaseModel):
    """The categories in match order, whose subjects count, and the default rolling window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subjects: frozenset[str] = frozenset({"US"})
    window_days: int = Field(default=365, gt=0)
    categories: dict[str, BulkCategory]

    @model_validator(mode="before")
    @classmethod
    def _name_categories(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("categories"), dict):
            cats = {}
            for name, body in data["categories"].items():
                cats[name] = {**body, "name": name} if isinstance(body, dict) else body
            data = {**data, "categories": cats}
        return data

    def window_of(self, category: BulkCategory) -> int:
        return category.window_days or self.window_days

    def category_for(self, data_class: str, subject: str | None) -> BulkCategory | None:
        """The category an object of this class and subject jurisdiction counts towards."""
        if subject is None or subject.upper() not in self.subjects:
            return None
        for category in self.categories.values():
            if category.matches(data_class):
                return category
        return None

    def category_of_class(self, data_class: str) -> BulkCategory | None:
        """The category of a data class whatever its subjects (for Cedar's `doj_category`)."""
        for category in self.categories.values():
            if category.matches(data_class):
                return category
        return None

    def get(self, name: str) -> BulkCategory:
        try:
            return self.categories[name]
        except KeyError:
            raise BulkRulesError(
                f"unknown bulk-data category {name!r}; use one of {', '.join(self.categories)}"
            ) from None


def _parse(text: str, source: str) -> BulkRules:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BulkRulesError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise BulkRulesError(f"{source}: expected a mapping with 'categories'")
    try:
        return BulkRules.model_validate(data)
    except ValidationError as exc:
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()
        ]
        raise BulkRulesError(f"{source}: " + "; ".join(parts)) from None


@lru_cache(maxsize=8)
def _load_cached(path: str | None) -> BulkRules:
    if path is None:
        text = resources.files("residency.access").joinpath("bulk_thresholds.yaml").read_text()
        return _parse(text, "bulk_thresholds.yaml")
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise BulkRulesError(f"{path}: file not found") from None
    except OSError as exc:
        raise BulkRulesError(f"{path}: cannot read: {exc.strerror}") from None
    return _parse(text, path)


def load_bulk_rules(path: Path | str | None = None) -> BulkRules:
    """The built-in 28 CFR 202.205 thresholds, or those of the file at `path` (cached)."""
    return _load_cached(None if path is None else str(path))
