"""The loaded policy: every group, country and class reference already resolved.

`loader.load_policy` builds these from YAML; tests and callers may also build them directly.
Nothing here reads files or the catalog, so evaluating a `Policy` is pure.

The model is cumulative: every rule whose scope covers an object constrains it, and the
allowed set is the intersection. Rules can only narrow; the only widening is a named, dated
`PolicyException` that relaxes one rule for named locations.
"""

from __future__ import annotations

import datetime as dt
import re
from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Data classes are dotted lowercase names; a class covers its dotted sub-classes
# (`personal` covers `personal.health`). The vocabulary is closed: these plus what a policy
# declares under `classes:`. Anything else is refused, never treated as "anywhere".
DATA_CLASS_RE = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$")
UNCLASSIFIED = "unclassified"
DATA_CLASSES: dict[str, str] = {
    "public": "published or publishable; no residency law restricts it",
    UNCLASSIFIED: (
        "nothing said what it is: judged as every class the laws in force cover, "
        "so it is placed only where all of them allow"
    ),
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
UnknownSubject = Literal["all-protected", "refuse"]

# Legal mechanisms an exception may cite: the transfer tools the presets' laws recognise.
MECHANISMS: dict[str, str] = {
    "gdpr-art45-dpf": "GDPR Art. 45: recipient certified under the EU-US Data Privacy Framework",
    "gdpr-art45-partial": "GDPR Art. 45: partial adequacy (e.g. Canada PIPEDA recipients)",
    "gdpr-art46-sccs": "GDPR Art. 46(2)(c): standard contractual clauses (Decision 2021/914)",
    "gdpr-art47-bcr": "GDPR Art. 47: binding corporate rules",
    "gdpr-art49-derogation": "GDPR Art. 49: derogation for a specific situation",
    "pipl-art38-cac-assessment": "PIPL Art. 38(1), 40: CAC security assessment passed",
    "pipl-art38-standard-contract": "PIPL Art. 38(3): CAC standard contract filed",
    "pipl-art38-certification": "PIPL Art. 38(2): personal information protection certification",
    "pipl-2024-exemption": "CAC Provisions on Cross-Border Data Flows (2024) Art. 5 exemption",
    "doj-202-401-cisa": "28 CFR 202.401: restricted transaction under the CISA security reqs",
    "doj-202-license": "28 CFR 202 Subpart H: general or specific licence from DOJ",
    "ru-152fz-art12-notice": "152-FZ Art. 12: Roskomnadzor notified; primary copy in Russia",
    "head-of-body-authorisation": "Head of a public body authorised storage outside Canada",
    "bc-fippa-supplementary-assessment": "BC FIPPA s.33.1: supplementary assessment done",
    "contract-comparable-protection": "Recipient bound by contract to comparable protection",
    "itar-120-54-encrypted": "22 CFR 120.54(a)(5): end-to-end encrypted, FIPS 140 validated",
    "itar-licence": "ITAR export licence or other DDTC approval",
    "id-gr71-committee-decision": "GR 71/2019 Art. 20(3): technology not available in Indonesia",
    "vn-pdp-transfer-assessment": "Vietnam PDP Law: cross-border transfer impact assessment filed",
    "sa-pdpl-safeguards": "Saudi PDPL Art. 29 transfer safeguards (SCCs, BCRs, certification)",
    "dod-premises": "DoD SRG: on-premises or DoD-approved location outside the US",
}


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

    def label(self) -> str:
        return self.group or self.spec.strip().upper()


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


def class_covers(scope_class: str, data_class: str) -> bool:
    """A class covers itself and its dotted sub-classes (`personal` covers `personal.health`)."""
    return data_class == scope_class or data_class.startswith(scope_class + ".")


class Scope(_Frozen):
    """Which objects a rule covers. Every given field must hold; an empty field covers all."""

    data_class: tuple[str, ...] = ()  # class names; each covers its sub-classes
    subject: tuple[CountryTerm, ...] = ()  # protected subjects; empty = any subject
    over_subjects: int | None = None  # volume threshold: applies above it (or when unknown)
    tenant: tuple[str, ...] = ()  # globs
    bucket: tuple[str, ...] = ()  # globs

    def covers_class(self, data_class: str) -> bool:
        if not self.data_class or data_class == UNCLASSIFIED:
            return True  # nothing said what it is: it may be any class this rule covers
        return any(class_covers(c, data_class) for c in self.data_class)

    def covers_place(self, tenant: str | None, bucket: str | None) -> bool:
        if self.tenant and (tenant is None or not _any_glob(tenant, self.tenant)):
            return False
        return not self.bucket or (bucket is not None and _any_glob(bucket, self.bucket))

    def covers_count(self, count: int | None) -> bool:
        return self.over_subjects is None or count is None or count > self.over_subjects

    def protected(self) -> frozenset[str]:
        return frozenset().union(*(t.countries for t in self.subject))


class Constraints(_Frozen):
    """Where the covered data may go, how many copies, and which locations are preferred."""

    allow_countries: tuple[CountryTerm, ...] | None = None  # None: any country
    deny_countries: tuple[CountryTerm, ...] = ()
    deny_vendor_hq: tuple[CountryTerm, ...] = ()  # operator HQ, or a controlling parent's
    vendor_control_pct: int = Field(default=50, ge=1, le=100)
    deny_listed: tuple[str, ...] = ()  # designated-party list names (Policy.party_lists)
    allow_providers: tuple[str, ...] | None = None  # None: any provider
    deny_providers: tuple[str, ...] = ()
    replicas: int = Field(default=1, ge=1)
    spread: Spread = "location"
    prefer: Preference = Preference()


class Rule(_Frozen):
    """One constraint of a law or of the operator, with where it was written."""

    id: str
    description: str = ""
    citation: str = ""
    source: str = ""  # "file:line" of the rule, or "" when built in code
    policy: str = ""  # the name of the file (preset or policy) the rule comes from
    scope: Scope = Scope()
    constraints: Constraints = Constraints()


class PolicyException(_Frozen):
    """A named, dated, evidenced relaxation of one rule for named locations."""

    id: str
    relaxes: str  # rule id
    mechanism: str  # a key of MECHANISMS
    locations: tuple[str, ...]
    evidence: str
    expires: dt.date
    description: str = ""
    source: str = ""

    def active(self, today: dt.date) -> bool:
        return today <= self.expires

    def cite(self) -> str:
        return f"exception {self.id} ({MECHANISMS.get(self.mechanism, self.mechanism)})"


class Placement(_Frozen):
    """The operator's baseline for every object: copies, failure domains and preference."""

    replicas: int = Field(default=1, ge=1)
    spread: Spread = "location"
    prefer: Preference = Preference()


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
    """A composed policy: the rules of this file and of everything it extends, all in force."""

    name: str
    description: str = ""
    citation: str = ""
    extends: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # every file that contributed, this one first
    # Every group a subject or rule may name (built-in and policy-local), already expanded,
    # and every ISO country code, so that evaluation never needs the catalog.
    groups: dict[str, frozenset[str]] = Field(default_factory=dict)
    countries: frozenset[str] = frozenset()
    classes: dict[str, str] = Field(default_factory=lambda: dict(DATA_CLASSES))
    party_lists: dict[str, frozenset[str]] = Field(default_factory=dict)  # casefolded names
    classifiers: tuple[Classifier, ...] = ()
    default_class: str = UNCLASSIFIED
    require_classification: bool = False
    unknown_subject: UnknownSubject = "all-protected"
    placement: Placement = Placement()
    rules: tuple[Rule, ...] = ()
    exceptions: tuple[PolicyException, ...] = ()

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def subject_countries(self, subject: str | None) -> frozenset[str]:
        """The countries a subject (`US`, `EU`, `@EEA`, or several: `US,DE`) stands for."""
        if not subject:
            return frozenset()
        out: set[str] = set()
        for part in subject.split(","):
            name = part.strip().lstrip("@").upper()
            if name:
                out |= self.groups.get(name, frozenset({name}))
        return frozenset(out)

    def knows_class(self, data_class: str) -> bool:
        return data_class in self.classes


def _any_glob(value: str, globs: tuple[str, ...]) -> bool:
    return any(fnmatchcase(value, g) for g in globs)
