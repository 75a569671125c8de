"""Cedar policy files: split, parse and validate them against the residency schema, once.

cedarpy reports parse errors without a position, so each file is split into its statements
(top-level `;`, outside strings and `//` comments) and every statement is parsed on its own:
errors then name `file:line`. Policies get stable ids (their `@id` annotation, else
`file.cedar:LINE`), which is what decisions, 403 messages and the audit log show.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import cedarpy

from residency.access.errors import PolicyFileError

DEFAULTS_NAME = "defaults.cedar"
_TEMPLATES = "policy templates (?principal, ?resource) are not supported; write a static policy"
_POLICY_PREFIX = re.compile(r"^for policy `[^`]*`,\s*")


@cache
def schema_text() -> str:
    return resources.files("residency.access").joinpath("cedar/residency.cedarschema").read_text()


@cache
def schema() -> cedarpy.Schema:
    """The residency Cedar schema, parsed once per process."""
    return cedarpy.Schema.from_str(schema_text())


def defaults_text() -> str:
    return resources.files("residency.access").joinpath(f"cedar/{DEFAULTS_NAME}").read_text()


@dataclass(frozen=True, slots=True)
class Statement:
    line: int
    text: str


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """One policy of a bundle: where it came from and what it says about itself."""

    id: str
    effect: str  # "permit" | "forbid"
    source: str  # file:line
    reason: str  # its @reason annotation, "" if none


def split_statements(text: str) -> list[Statement]:
    """Top-level statements with the line each starts on; comment-only tails are dropped."""
    out: list[Statement] = []
    start: int | None = None
    line = 1
    start_line = 1
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
        elif ch == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif ch.isspace():
            pass
        else:
            if start is None:
                start, start_line = i, line
            if ch == '"':
                i += 1
                while i < n and text[i] != '"':
                    if text[i] == "\\":
                        i += 1
                    elif text[i] == "\n":
                        line += 1
                    i += 1
            elif ch == ";":
                out.append(Statement(start_line, text[start : i + 1]))
                start = None
        i += 1
    if start is not None:
        out.append(Statement(start_line, text[start:]))
    return out


def _parse_statement(stmt: Statement, source: str) -> dict[str, Any]:
    """The statement's policy as Cedar JSON (EST); a file:line error if it does not parse."""
    try:
        est = json.loads(cedarpy.policies_to_json_str(stmt.text))
    except ValueError as exc:
        message = str(exc)
        if "?principal" in message or "?resource" in message:
            message += f" ({_TEMPLATES})"
        if not stmt.text.rstrip().endswith(";"):
            message += " (is a ';' missing at the end of the policy?)"
        raise PolicyFileError([f"{source}:{stmt.line}: {message}"]) from None
    if est.get("templates"):
        raise PolicyFileError([f"{source}:{stmt.line}: {_TEMPLATES}"])
    policies = list(est.get("staticPolicies", {}).values())
    if len(policies) != 1:  # pragma: no cover - one statement parses to one policy
        raise PolicyFileError([f"{source}:{stmt.line}: expected exactly one policy"])
    policy: dict[str, Any] = policies[0]
    return policy


def _check_text(text: str, source: str) -> list[tuple[PolicyInfo, dict[str, Any]]]:
    """Parse and validate one file's text; every problem in it is reported together."""
    problems: list[str] = []
    parsed: list[tuple[Statement, dict[str, Any]]] = []
    for stmt in split_statements(text):
        try:
            parsed.append((stmt, _parse_statement(stmt, source)))
        except PolicyFileError as exc:
            problems.extend(exc.problems)
    if problems:
        raise PolicyFileError(problems)
    out: list[tuple[PolicyInfo, dict[str, Any]]] = []
    for stmt, est in parsed:
        annotations = est.get("annotations") or {}
        pid = annotations.get("id") or f"{Path(source).name}:{stmt.line}"
        info = PolicyInfo(
            id=pid,
            effect=str(est["effect"]),
            source=f"{source}:{stmt.line}",
            reason=annotations.get("reason") or "",
        )
        out.append((info, est))
    result = cedarpy.validate_policies(text, schema())
    if not result.validation_passed:
        for err in result.errors:
            where = source
            m = re.fullmatch(r"policy(\d+)", err.policy_id)
            if m and int(m.group(1)) < len(out):
                info = out[int(m.group(1))][0]
                auto = info.id == f"{Path(source).name}:{info.source.rsplit(':', 1)[1]}"
                where = info.source if auto else f"{info.source}: policy {info.id}"
            problems.append(f"{where}: {_POLICY_PREFIX.sub('', err.error)}")
        raise PolicyFileError(problems)
    return out


@dataclass(frozen=True)
class PolicyBundle:
    """A parsed, validated set of policies with their metadata; immutable, share freely."""

    policy_set: cedarpy.PolicySet
    policies: dict[str, PolicyInfo]
    sources: tuple[str, ...]
    reads_context: bool = True
    """Whether any policy mentions `context`; if none does, a decision depends only on the
    principal, action and resource (what lets `Authorizer` cache decisions)."""

    def info(self, policy_id: str) -> PolicyInfo | None:
        return self.policies.get(policy_id)


def check_file(path: Path) -> list[PolicyInfo]:
    """Validate one file on its own; raises PolicyFileError naming file:line and policy."""
    return [info for info, _ in _check_text(_read(path), str(path))]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyFileError([f"{path}: file not found"]) from None
    except IsADirectoryError:
        raise PolicyFileError([f"{path}: is a directory, not a .cedar file"]) from None
    except UnicodeDecodeError:
        raise PolicyFileError([f"{path}: not UTF-8 text"]) from None
    except OSError as exc:
        raise PolicyFileError([f"{path}: cannot read: {exc.strerror}"]) from None


def build_bundle(texts: Iterable[tuple[str, str]]) -> PolicyBundle:
    """Bundle (source, text) pairs; duplicate policy ids across sources are errors."""
    problems: list[str] = []
    infos: dict[str, PolicyInfo] = {}
    static: dict[str, Any] = {}
    sources: list[str] = []
    for source, text in texts:
        sources.append(source)
        try:
            checked = _check_text(text, source)
        except PolicyFileError as exc:
            problems.extend(exc.problems)
            continue
        for info, est in checked:
            if info.id in infos:
                problems.append(
                    f"{info.source}: policy id {info.id!r} is already used at "
                    f"{infos[info.id].source}"
                )
                continue
            infos[info.id] = info
            static[info.id] = est
    if problems:
        raise PolicyFileError(problems)
    doc = {"staticPolicies": static, "templates": {}, "templateLinks": []}
    return PolicyBundle(
        cedarpy.PolicySet.from_json_str(json.dumps(doc)),
        infos,
        tuple(sources),
        reads_context=_mentions_context(static),
    )


def _mentions_context(node: Any) -> bool:
    """True if a policy's JSON form (EST) reads the `context` variable anywhere."""
    if isinstance(node, dict):
        if node.get("Var") == "context":
            return True
        return any(_mentions_context(v) for v in node.values())
    if isinstance(node, list):
        return any(_mentions_context(v) for v in node)
    return False


def load_bundle(paths: Sequence[Path] = (), *, defaults: bool = True) -> PolicyBundle:
    """The default policies (unless `defaults=False`) plus the operator's files, in order."""
    texts: list[tuple[str, str]] = []
    if defaults:
        texts.append((DEFAULTS_NAME, defaults_text()))
    problems: list[str] = []
    for path in paths:
        try:
            texts.append((str(path), _read(path)))
        except PolicyFileError as exc:
            problems.extend(exc.problems)
    try:
        bundle = build_bundle(texts)
    except PolicyFileError as exc:
        problems.extend(exc.problems)
    if problems:
        raise PolicyFileError(problems)
    return bundle
