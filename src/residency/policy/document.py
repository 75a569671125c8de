"""The shape of a policy file as written: strict, so a typo is an error and not a silent no-op.

Only syntax is checked here (field names, types, code formats, globs, regexes); whether a
group, country or provider exists is checked by the loader against the catalog.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from residency.policy.model import DATA_CLASS_RE, MECHANISMS

RULE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
NAME_GLOB_RE = re.compile(r"^[A-Za-z0-9_.*?-]+$")  # tenant / bucket globs
TERM_RE = re.compile(r"^@?[A-Za-z][A-Za-z0-9_]*$")  # a country code or a group name
GROUP_NAME_RE = re.compile(r"^[A-Z][A-Z0-9_]{2,}$")
PROVIDER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
LOCATION_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def _listify(value: Any) -> Any:
    """Let a single value stand for a one-element list (`subject: US`)."""
    return [value] if isinstance(value, str) else value


def _nonempty(values: list[str]) -> list[str]:
    if not values:
        raise ValueError("must not be empty (leave the field out instead)")
    return values


StrList = Annotated[list[str], BeforeValidator(_listify)]


def _check_each(values: list[str], pattern: re.Pattern[str], what: str) -> list[str]:
    _nonempty(values)
    for v in values:
        if not pattern.match(v):
            raise ValueError(f"{v!r} is not {what}")
    return values


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _check_replicas(v: int) -> int:
    if v < 1:
        raise ValueError(f"must be at least 1, got {v}")
    return v


def _check_prefer(v: str | list[str] | dict[str, str] | None) -> Any:
    if isinstance(v, list):
        _check_each(v, LOCATION_RE, "a location name")
        if len(set(v)) != len(v):
            raise ValueError("lists a location twice")
    elif isinstance(v, dict) and set(v) != {"nearest"}:
        raise ValueError("as a mapping it must be {nearest: <COUNTRY>}")
    elif isinstance(v, str) and v != "cheapest" and not v.startswith("nearest:"):
        raise ValueError(
            f"{v!r} is not a preference: use cheapest, nearest:<COUNTRY> "
            "or a list of location names"
        )
    return v


Replicas = Annotated[int, AfterValidator(_check_replicas)]
Prefer = Annotated[str | list[str] | dict[str, str] | None, AfterValidator(_check_prefer)]
Spread = Literal["location", "region", "provider", "country"]


class ScopeDoc(_Doc):
    data_class: StrList | None = None
    subject: StrList | None = None
    over_subjects: int | None = None
    tenant: StrList | None = None
    bucket: StrList | None = None

    @field_validator("data_class")
    @classmethod
    def _classes(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        return _check_each(
            v, DATA_CLASS_RE, "a data class name (dotted lowercase; it covers its sub-classes)"
        )

    @field_validator("over_subjects")
    @classmethod
    def _threshold(cls, v: int | None) -> int | None:
        if v is not None and v < 0:
            raise ValueError(f"must not be negative, got {v}")
        return v

    @field_validator("subject")
    @classmethod
    def _subject(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        return _check_each(v, TERM_RE, "a country code or @GROUP")

    @field_validator("tenant", "bucket")
    @classmethod
    def _names(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        return _check_each(v, NAME_GLOB_RE, "a name glob (letters, digits, '.-_', '*' and '?')")


class ConstraintsDoc(_Doc):
    allow_countries: StrList | None = None
    deny_countries: StrList | None = None
    deny_vendor_hq: StrList | None = None
    vendor_control_pct: int = 50
    deny_listed: StrList | None = None
    allow_providers: StrList | None = None
    deny_providers: StrList | None = None
    replicas: Replicas = 1
    spread: Spread = "location"
    prefer: Prefer = None

    @field_validator("allow_countries", "deny_countries", "deny_vendor_hq")
    @classmethod
    def _terms(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        return _check_each(v, TERM_RE, "a country code or @GROUP")

    @field_validator("allow_providers", "deny_providers")
    @classmethod
    def _providers(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        return _check_each(v, PROVIDER_RE, "a provider id such as 'aws'")

    @field_validator("vendor_control_pct")
    @classmethod
    def _pct(cls, v: int) -> int:
        if not 1 <= v <= 100:
            raise ValueError(f"must be a percentage from 1 to 100, got {v}")
        return v

    @field_validator("deny_listed")
    @classmethod
    def _lists(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        return _check_each(v, GROUP_NAME_RE, "a party-list name (UPPER_CASE, 3+ characters)")


class PlacementDoc(_Doc):
    replicas: Replicas = 1
    spread: Spread = "location"
    prefer: Prefer = None


class ExceptionDoc(_Doc):
    id: str
    description: str = ""
    relaxes: str
    mechanism: str
    locations: StrList
    evidence: str
    expires: dt.date = Field(strict=False)

    @field_validator("id", "relaxes")
    @classmethod
    def _id(cls, v: str) -> str:
        if not RULE_ID_RE.match(v):
            raise ValueError(f"{v!r} is not an id (lowercase letters, digits, '.', '_', '-')")
        return v

    @field_validator("mechanism")
    @classmethod
    def _mechanism(cls, v: str) -> str:
        if v not in MECHANISMS:
            raise ValueError(
                f"{v!r} is not a transfer mechanism the engine knows; use one of "
                + ", ".join(sorted(MECHANISMS))
            )
        return v

    @field_validator("locations")
    @classmethod
    def _locations(cls, v: list[str]) -> list[str]:
        return _check_each(v, LOCATION_RE, "a location name")

    @field_validator("evidence")
    @classmethod
    def _evidence(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must say where the evidence is (contract, filing, assessment id)")
        return v


class RuleDoc(_Doc):
    id: str
    description: str = ""
    citation: str = ""
    scope: ScopeDoc = Field(default_factory=ScopeDoc)
    constraints: ConstraintsDoc = Field(default_factory=ConstraintsDoc)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not RULE_ID_RE.match(v):
            raise ValueError(f"{v!r} is not a rule id (lowercase letters, digits, '.', '_', '-')")
        return v


class ClassifierDoc(_Doc):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=False)

    prefix: str | None = None
    regex: str | None = None
    bucket: StrList | None = None
    data_class: str | None = Field(default=None, alias="class")
    subject: str | None = None

    @field_validator("regex")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return v

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        return _check_each(v, NAME_GLOB_RE, "a bucket glob")

    @field_validator("data_class")
    @classmethod
    def _class(cls, v: str | None) -> str | None:
        if v is not None and not DATA_CLASS_RE.match(v):
            raise ValueError(f"{v!r} is not a data class (dotted lowercase, e.g. personal.health)")
        return v

    @field_validator("subject")
    @classmethod
    def _subject(cls, v: str | None) -> str | None:
        if v is not None and not TERM_RE.match(v):
            raise ValueError(f"{v!r} is not a country code or @GROUP")
        return v

    @model_validator(mode="after")
    def _one_way(self) -> ClassifierDoc:
        if (self.prefix is None) == (self.regex is None):
            raise ValueError("give exactly one of prefix or regex")
        if self.data_class is None and self.subject is None:
            raise ValueError("give class, subject or both")
        return self


class PolicyDoc(_Doc):
    name: str | None = None
    description: str = ""
    citation: str = ""
    extends: StrList = Field(default_factory=list)
    groups: dict[str, StrList] = Field(default_factory=dict)
    classes: dict[str, str] = Field(default_factory=dict)
    party_lists: dict[str, list[str]] = Field(default_factory=dict)
    classifiers: list[ClassifierDoc] = Field(default_factory=list)
    default_class: str | None = None
    require_classification: bool | None = None
    unknown_subject: Literal["all-protected", "refuse"] | None = None
    placement: PlacementDoc | None = None
    rules: list[RuleDoc] = Field(default_factory=list)
    exceptions: list[ExceptionDoc] = Field(default_factory=list)

    @field_validator("classes")
    @classmethod
    def _new_classes(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not DATA_CLASS_RE.match(name):
                raise ValueError(f"{name!r} is not a data class (dotted lowercase)")
        return v

    @field_validator("party_lists")
    @classmethod
    def _party_lists(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for name in v:
            if not GROUP_NAME_RE.match(name):
                raise ValueError(f"{name!r} is not a party-list name (UPPER_CASE, 3+ characters)")
        return v

    @field_validator("default_class")
    @classmethod
    def _default_class(cls, v: str | None) -> str | None:
        if v is not None and not DATA_CLASS_RE.match(v):
            raise ValueError(f"{v!r} is not a data class (dotted lowercase, e.g. unclassified)")
        return v
