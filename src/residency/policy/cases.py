"""Policy case tables: expected verdicts for hypothetical objects, checked like `opa test`.

A case file lists objects (class, subject, subject count) at one catalog location each, with the
verdict the law gives (`allow`, `deny`, or `refuse` for an unknown class or subject) and, for a
denial, the rule that must be among the reasons. Cases are written from the law, so a mismatch
is a finding about the policy or the engine, never something to paper over in the table.

Parsing is strict (an unknown field is an error at `file:line`, like a policy file) and, apart
from reading the file, everything here is pure: the catalog and the policy are passed in.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError

from residency.catalog import Catalog, CatalogError, LocationFacts
from residency.config import LocationConfig
from residency.policy.classify import normalize_class, normalize_count, normalize_subject
from residency.policy.errors import ClassificationError, Problem
from residency.policy.evaluate import Decision, ObjectAttrs, evaluate
from residency.policy.model import Policy
from residency.policy.yamlsrc import format_loc, node_line, plain

Verdict = Literal["allow", "deny", "refuse"]
REFUSALS = ("unknown-class", "unknown-subject")

_RULE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# `provider/region` from the catalog, or `self/CC` for an own data center in country CC.
_AT_RE = re.compile(r"^(?P<provider>[a-z0-9][a-z0-9_-]*)/(?P<region>[A-Za-z0-9][A-Za-z0-9._-]*)$")
_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")


class CaseError(Exception):
    """A case file is unreadable or invalid: one `file:line: field: why` line per problem."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=False)


class CaseDoc(_Doc):
    """One case as written; `class` is a Python keyword, hence the alias."""

    name: str = Field(min_length=1)
    citation: str = Field(min_length=1)
    data_class: str = Field(alias="class", min_length=1)
    subject: str | None = None
    count: int | None = Field(default=None, ge=0)
    at: str
    expect: Verdict
    because: str | None = None

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str:
        if not _AT_RE.match(v):
            raise ValueError(
                f"{v!r} is not a location: write provider/region from the catalog "
                "(aws/us-east-1) or self/CC for an own data center (self/DE)"
            )
        return v

    @field_validator("because")
    @classmethod
    def _because(cls, v: str | None) -> str | None:
        if v is not None and not _RULE_ID_RE.match(v):
            raise ValueError(f"{v!r} is not a rule id (lowercase letters, digits, '.', '_', '-')")
        return v


class CaseFileDoc(_Doc):
    policy: str | None = None  # the policy the cases were written for (documentation)
    cases: list[CaseDoc] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Case:
    """One expected verdict, with where it was written (`file:line`)."""

    name: str
    citation: str
    data_class: str
    subject: str | None
    count: int | None
    at: str
    expect: Verdict
    because: str | None
    source: str  # "file:line" of the case
    lines: Mapping[str, int] = field(default_factory=dict)  # field name -> line, for problems
    path: str = ""  # "cases[3]", for problems

    def problem(self, key: str, message: str) -> Problem:
        """A problem with one field of this case, located at that field's line."""
        file, _, line = self.source.rpartition(":")
        return Problem(file, self.lines.get(key, int(line)), f"{self.path}.{key}", message)


@dataclass(frozen=True, slots=True)
class CaseFile:
    display: str
    policy: str | None
    cases: tuple[Case, ...]


@dataclass(frozen=True, slots=True)
class CaseResult:
    """What the policy said about a case, and whether that is what the law says."""

    case: Case
    actual: Verdict
    passed: bool
    rules: tuple[str, ...]  # ids of the rules that applied to the object
    reasons: tuple[str, ...]  # why the location was excluded (or refused)
    problem: str  # empty when passed: what disagreed
    exceptions: tuple[str, ...] = ()  # policy exceptions that allowed the location

    def to_dict(self) -> dict[str, Any]:
        c = self.case
        return {
            "source": c.source,
            "name": c.name,
            "citation": c.citation,
            "class": c.data_class,
            "subject": c.subject,
            "count": c.count,
            "at": c.at,
            "expect": c.expect,
            "because": c.because,
            "actual": self.actual,
            "passed": self.passed,
            "rules": list(self.rules),
            "reasons": list(self.reasons),
            "exceptions": list(self.exceptions),
            "problem": self.problem,
        }


# -- parsing ------------------------------------------------------------------------------


def load_cases(path: Path, display: str | None = None) -> CaseFile:
    """Read and validate one case file; `CaseError` with `file:line` for anything wrong."""
    shown = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CaseError([Problem(shown, None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseError([Problem(shown, None, "", f"cannot read: {exc}")]) from None
    return parse_cases(text, shown)


def parse_cases(text: str, display: str) -> CaseFile:
    """Validate case-file text strictly; every problem is reported, each at its line."""
    try:
        tree = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        raise CaseError([Problem(display, line, "", f"not valid YAML: {what}")]) from None
    if tree is None:
        raise CaseError([Problem(display, 1, "", "the file is empty")])
    if not isinstance(tree, CommentedMap):
        raise CaseError([Problem(display, 1, "", "expected a mapping (policy:, cases:)")])
    try:
        doc = CaseFileDoc.model_validate(plain(tree))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if isinstance(p, int) or "[" not in str(p))
            problems.append(Problem(display, node_line(tree, loc), format_loc(loc), _message(err)))
        raise CaseError(problems) from None
    problems = []
    seen: dict[str, int] = {}
    for i, c in enumerate(doc.cases):
        line = node_line(tree, ("cases", i))
        if c.because is not None and c.expect != "deny":
            problems.append(
                Problem(
                    display,
                    node_line(tree, ("cases", i, "because")),
                    f"cases[{i}].because",
                    f"only a deny names a deciding rule (this case expects {c.expect})",
                )
            )
        if c.name in seen:
            problems.append(
                Problem(
                    display,
                    line,
                    f"cases[{i}].name",
                    f"case name {c.name!r} is already used at line {seen[c.name]}",
                )
            )
        seen.setdefault(c.name, line)
    if problems:
        raise CaseError(problems)
    cases = tuple(
        Case(
            name=c.name,
            citation=" ".join(c.citation.split()),
            data_class=c.data_class,
            subject=c.subject,
            count=c.count,
            at=c.at,
            expect=c.expect,
            because=c.because,
            source=f"{display}:{node_line(tree, ('cases', i))}",
            lines={k: node_line(tree, ("cases", i, k)) for k in ("at", "because", "class")},
            path=f"cases[{i}]",
        )
        for i, c in enumerate(doc.cases)
    )
    return CaseFile(display=display, policy=doc.policy, cases=cases)


def check_against(policy: Policy, files: Iterable[CaseFile]) -> list[Problem]:
    """A `because:` must name a rule of the policy under test: a typo is bad input, not a fail."""
    known = sorted(r.id for r in policy.rules)
    problems = []
    for f in files:
        for c in f.cases:
            if c.because is None or c.because in known:
                continue
            close = difflib.get_close_matches(c.because, known, n=3)
            hint = ", ".join(close) if close else ""
            hint = f"did you mean {hint}?" if hint else "its rules: " + ", ".join(known)
            problems.append(
                c.problem("because", f"policy {policy.name} has no rule {c.because!r}; {hint}")
            )
    return problems


# -- locations ----------------------------------------------------------------------------


def location_config(at: str) -> LocationConfig:
    """`aws/us-east-1` -> a location standing for that region; `self/DE` -> own DC in DE."""
    m = _AT_RE.match(at)
    if m is None:
        raise CatalogError(f"{at!r} is not provider/region")
    provider, region = m["provider"], m["region"]
    name = re.sub(r"[^a-z0-9-]+", "-", at.lower()).strip("-")[:63]
    if provider == "self":
        code = region.upper()
        if not _COUNTRY_RE.match(code):
            raise CatalogError("an own data center is self/CC, CC its ISO country code (self/DE)")
        return LocationConfig(
            name=name, provider="self", region=f"own-{code.lower()}", country=code
        )
    return LocationConfig(name=name, provider=provider, region=region)


def resolve_locations(
    catalog: Catalog, files: Iterable[CaseFile]
) -> tuple[dict[str, LocationFacts], list[Problem]]:
    """The catalog facts for every `at:`, and a problem at the line of each unknown one."""
    facts: dict[str, LocationFacts] = {}
    problems: list[Problem] = []
    for f in files:
        for c in f.cases:
            if c.at in facts:
                continue
            try:
                facts[c.at] = catalog.facts_for(location_config(c.at))
            except CatalogError as exc:
                text = str(exc)
                message = text.split(": ", 1)[-1] if text.startswith("location ") else text
                problems.append(c.problem("at", f"{c.at}: {message}"))
    return facts, problems


def prepare(
    policy: Policy, catalog: Catalog, files: Sequence[CaseFile]
) -> dict[str, LocationFacts]:
    """Check the cases against the policy and the catalog; `CaseError` with every problem."""
    facts, problems = resolve_locations(catalog, files)
    problems = sorted(
        [*check_against(policy, files), *problems], key=lambda p: (p.file, p.line or 0)
    )
    if problems:
        raise CaseError(problems)
    return facts


# -- running ------------------------------------------------------------------------------


def run_case(policy: Policy, case: Case, facts: LocationFacts) -> CaseResult:
    """Classify the case's object as the gateway would, evaluate it at one location, compare."""
    try:
        data_class = normalize_class(policy, case.data_class, "class") or case.data_class
        subject = normalize_subject(policy, case.subject, "subject")
        count = normalize_count(case.count)
    except ClassificationError as exc:
        return _result(case, "refuse", (), (str(exc),))
    decision = evaluate(policy, ObjectAttrs(data_class, subject, count), [facts])
    rules = tuple(r.id for r in decision.rules)
    if decision.refusal in REFUSALS:
        return _result(case, "refuse", rules, (decision.message,))
    if facts.name in decision.allowed:
        return _result(case, "allow", rules, (), decision.exceptions)
    return _result(case, "deny", rules, _reasons(decision, facts.name))


def run_cases(
    policy: Policy, files: Iterable[CaseFile], facts: dict[str, LocationFacts]
) -> list[CaseResult]:
    return [run_case(policy, c, facts[c.at]) for f in files for c in f.cases]


def _result(
    case: Case,
    actual: Verdict,
    rules: tuple[str, ...],
    reasons: tuple[str, ...],
    exceptions: tuple[str, ...] = (),
) -> CaseResult:
    problem = ""
    if actual != case.expect:
        problem = f"expected {case.expect}, got {actual}"
    elif case.because is not None and not any(_names_rule(r, case.because) for r in reasons):
        problem = f"expected deny because of rule {case.because}, but it is not among the reasons"
    return CaseResult(case, actual, not problem, rules, reasons, problem, exceptions)


def _reasons(decision: Decision, location: str) -> tuple[str, ...]:
    return tuple(
        part
        for e in decision.exclusions
        if e.location == location
        for part in e.reason.split("; ")
        if part
    )


def _names_rule(reason: str, rule_id: str) -> bool:
    """`rule doj-omic` in the reason, not a longer id that starts with it."""
    return re.search(rf"\brule {re.escape(rule_id)}(?![a-z0-9._-])", reason) is not None


_FIELDS = ("policy", "cases", "name", "citation", "class", "subject", "count", "at", "expect")


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        name = str(err["loc"][-1])
        close = difflib.get_close_matches(name, [*_FIELDS, "because"], n=1)
        return "unknown field" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error":
        return "must be allow, deny or refuse"
    return str(err["msg"]).removeprefix("Value error, ")
