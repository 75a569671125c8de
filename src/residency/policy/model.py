"""The loaded policy: every group and country reference already resolved, ready to evaluate.

`loader.load_policy` builds these from YAML; tests and callers may also build them directly.
Nothing here reads files or the catalog, so evaluating a `Policy` is pure.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Data classes are dotted lowercase names; the documented vocabulary is below, but a policy may
# use its own (e.g. `personal.hr`) as long as rules and classifiers agree.
DATA_CLASS_RE = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$")
DATA_CLASSES: dict[str, str] = {
    "public": "published or publishable; no residency restriction",
    "unclassified": "nothing said what it is (the default `default_class`)",
    "personal": "personal data/information not in a more specific class",
    "personal.health": "health data (28 CFR 202.241; GDPR Art. 9; PIPL sensitive PI)",
    "personal.financial": "financial account and transaction data (28 CFR 202.240)",
    "personal.identifiers": "government IDs, device/ad IDs, logins (28 CFR 202.212 covered ids)",
    "genomic": "human genomic and other 'omic data (28 CFR 202.224)",
    "biometric": "biometric identifiers: face, fingerprint, voice, gait (28 CFR 202.204)",
    "geolocation": "precise geolocation, <= 1,000 m (28 CFR 202.242)",
    "government": "government-related data (28 CFR 202.222): no volume threshold",
}
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
SPREADS = ("location", "region", "provider", "country")
Spread = Literal["location", "region", "provider", "country"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CountryTerm(_Frozen):
    """One entry of a country list as written (`CN`, `@EEA`), with the countries it stands for."""

    spec: str
    group: str | None = None  # the group name when the entry is a group
    countries: frozenset[str]

    def why(self) -> str:
        """The parenthesised part of an exclusion reason: which group put the country here."""
        return f" (group {self.group})" if self.group else ""


class Preference(_Frozen):
    """How allowed locations are ordered before replicas are picked.

    `order`: as configured; `cheapest`: catalog storage price, unknown prices last;
    `nearest`: same country, then same continent, then the rest; `explicit`: the listed
    location names first, in list order, then the rest. Ties keep the configured order.
    """

    kind: Literal["order", "cheapest", "nearest", "explicit"] = "order"
    country: str | None = None  # nearest
    continent: str | None = None  # nearest: the country's continent, from the catalog
    locations: tuple[str, ...] = ()  # explicit

    def describe(self) -> str:
        if self.kind == "cheapest":
            return "cheapest storage price first"
        if self.kind == "nearest":
            return f"nearest to {self.country} first"
        if self.kind == "explicit":
            return "preferring " + ", ".join(self.locations)
        return "configured order"


class Match(_Frozen):
    """When a rule applies. Every given field must hold; an empty field matches anything."""

    data_class: tuple[str, ...] = ()  # fnmatch globs: `personal.*` (not `personal` itself)
    subject: tuple[CountryTerm, ...] = ()  # matches when the object's subject countries overlap
    tenant: tuple[str, ...] = ()  # globs
    bucket: tuple[str, ...] = ()  # globs


class Constraints(_Frozen):
    """Where the matched data may go, how many copies, and which locations are preferred."""

    allow_countries: tuple[CountryTerm, ...] | None = None  # None: any country
    deny_countries: tuple[CountryTerm, ...] = ()
    deny_vendor_hq: tuple[CountryTerm, ...] = ()
    allow_providers: tuple[str, ...] | None = None  # None: any provider
    deny_providers: tuple[str, ...] = ()
    replicas: int = Field(default=1, ge=1)
    spread: Spread = "location"
    prefer: Preference = Preference()

    def constrains_countries(self) -> bool:
        return self.allow_countries is not None or bool(self.deny_countries)


class Rule(_Frozen):
    """One first-match rule, with where it was written so decisions can point back at it."""

    id: str
    description: str = ""
    citation: str = ""
    source: str = ""  # "file:line" of the rule, or "" when built in code
    match: Match = Match()
    constraints: Constraints = Constraints()


class Classifier(_Frozen):
    """Derives a data class and/or subject from the object key (and optionally its bucket)."""

    prefix: str | None = None
    regex: str | None = None
    bucket: tuple[str, ...] = ()  # globs; empty = any bucket
    data_class: str | None = None
    subject: str | None = None
    source: str = ""

    def matches(self, key: str, bucket: str | None) -> bool:
        if self.bucket and (bucket is None or not any(fnmatchcase(bucket, b) for b in self.bucket)):
            return False
        if self.prefix is not None:
            return key.startswith(self.prefix)
        if self.regex is not None:
            return re.search(self.regex, key) is not None
        return True

    def describe(self) -> str:
        what = f"prefix {self.prefix!r}" if self.prefix is not None else f"regex {self.regex!r}"
        return f"classifier {what}" + (f" at {self.source}" if self.source else "")


class Policy(_Frozen):
    """A composed policy: own rules first, then each extended policy's rules, in order."""

    name: str
    description: str = ""
    citation: str = ""
    extends: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # every file that contributed, this one first
    # Every group a subject or rule may name (built-in and policy-local), already expanded,
    # so that evaluation never needs the catalog.
    groups: dict[str, frozenset[str]] = Field(default_factory=dict)
    classifiers: tuple[Classifier, ...] = ()
    default_class: str = "unclassified"
    require_classification: bool = False
    rules: tuple[Rule, ...] = ()

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def subject_countries(self, subject: str | None) -> frozenset[str]:
        """The countries a subject jurisdiction (`US`, `EU`, `@EEA`) stands for."""
        if not subject:
            return frozenset()
        name = subject.strip().lstrip("@").upper()
        if name in self.groups:
            return self.groups[name]
        return frozenset({name})
