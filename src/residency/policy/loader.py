"""Read policy YAML, compose `extends:`, resolve every group and code against the catalog.

Errors point at `file:line: field.path`. Composition order: a policy's own rules first, then
each policy it extends, depth first, in the order listed; a file reached twice (diamond) counts
once, at its first position. Everything is resolved here so `evaluate` needs no catalog.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError

from residency.policy.document import (
    GROUP_NAME_RE,
    TERM_RE,
    ClassifierDoc,
    ConstraintsDoc,
    ExceptionDoc,
    PlacementDoc,
    PolicyDoc,
    RuleDoc,
    ScopeDoc,
)
from residency.policy.errors import PolicyError, Problem
from residency.policy.model import (
    COUNTRY_RE,
    DATA_CLASSES,
    UNCLASSIFIED,
    Classifier,
    Constraints,
    CountryTerm,
    Placement,
    Policy,
    PolicyException,
    Preference,
    Rule,
    Scope,
)
from residency.policy.presets import PRESET_PREFIX, preset_display, preset_names, preset_path
from residency.policy.yamlsrc import Loc, format_loc, node_line, plain

if TYPE_CHECKING:
    from residency.catalog import Catalog


_KNOWN_FIELDS = sorted(
    {
        (f.alias or n)
        for m in (PolicyDoc, RuleDoc, ScopeDoc, ConstraintsDoc, ClassifierDoc, ExceptionDoc)
        for n, f in m.model_fields.items()
    }
)


# Keys of the first-match model and what replaced them.
_RENAMED = {"match": "scope"}


def load_policy(path_or_preset: str | Path, *, catalog: Catalog | None = None) -> Policy:
    """Load a policy file or `preset:NAME`, with everything it extends, fully resolved."""
    if catalog is None:
        from residency.catalog import load_catalog

        catalog = load_catalog()
    ref = str(path_or_preset)
    if isinstance(path_or_preset, str) and ref.startswith(PRESET_PREFIX):
        try:
            path = preset_path(ref[len(PRESET_PREFIX) :])
        except KeyError as exc:
            raise PolicyError(Problem(ref, None, "", str(exc.args[0]))) from None
        return _Loader(catalog).load(path, preset_display(path))
    return _Loader(catalog).load(Path(path_or_preset), ref)


def list_presets(*, catalog: Catalog | None = None) -> list[Policy]:
    """Every built-in preset, loaded (so a broken preset fails loudly, not at first use)."""
    return [load_policy(PRESET_PREFIX + name, catalog=catalog) for name in preset_names()]


@dataclass
class _Loaded:
    """One file, validated and resolved, plus everything it pulls in (in composition order)."""

    path: Path
    display: str
    name: str
    doc: PolicyDoc
    rules: list[Rule]
    classifiers: list[Classifier]
    exceptions: list[PolicyException]
    placement: Placement | None
    default_class_at: str
    local_groups: dict[str, tuple[frozenset[str], str]]  # name -> (countries, "file:line")
    files: list[_Loaded] = field(default_factory=list)  # self first, then extended, deduped


class _File:
    """A parsed YAML file that can say on which line any field path sits."""

    def __init__(self, display: str, tree: Any) -> None:
        self.display = display
        self.tree = tree
        self.problems: list[Problem] = []

    def line(self, loc: Loc) -> int:
        return node_line(self.tree, loc)

    def where(self, loc: Loc) -> str:
        return f"{self.display}:{self.line(loc)}"

    def problem(self, loc: Loc, message: str) -> None:
        self.problems.append(Problem(self.display, self.line(loc), format_loc(loc), message))

    def fail(self, loc: Loc, message: str) -> NoReturn:
        """Record a problem that makes going on pointless, and raise with everything so far."""
        self.problem(loc, message)
        raise PolicyError(self.problems)

    def raise_if_any(self) -> None:
        if self.problems:
            raise PolicyError(self.problems)


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        name = str(err["loc"][-1])
        if name in _RENAMED:
            return f"unknown field (did you mean {_RENAMED[name]!r}?)"
        close = difflib.get_close_matches(name, _KNOWN_FIELDS, n=1)
        return "unknown field" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "missing":
        return "required field is missing"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _validation_loc(loc: tuple[Any, ...]) -> Loc:
    # Drop pydantic's internal step names (e.g. "function-after[...]") from the location.
    return tuple(p for p in loc if isinstance(p, int) or "[" not in str(p))


class _Loader:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.builtin_groups: dict[str, frozenset[str]] = {
            name.upper(): frozenset(members) for name, members in catalog.groups.items()
        }
        # Other spellings of a built-in group (DOJ_COUNTRIES_OF_CONCERN) -> its canonical name.
        self.aliases: dict[str, str] = {
            alias.upper(): name.upper()
            for name, info in catalog.group_info.items()
            for alias in info.aliases
        }
        self.cache: dict[Path, _Loaded] = {}
        self.stack: list[Path] = []

    # -- composition ---------------------------------------------------------------------

    def load(self, path: Path, display: str) -> Policy:
        root = self._load(path, display, None)
        return self._compose(root)

    def _compose(self, root: _Loaded) -> Policy:
        problems: list[Problem] = []
        rules: list[Rule] = []
        seen: dict[str, Rule] = {}
        groups = dict(self.builtin_groups)
        group_src: dict[str, str] = {}
        for f in root.files:
            for rule in f.rules:
                if rule.id in seen:
                    problems.append(
                        Problem(
                            *_split(rule.source),
                            "rules.id",
                            f"rule id {rule.id!r} is already used at {seen[rule.id].source}",
                        )
                    )
                    continue
                seen[rule.id] = rule
                rules.append(rule)
            for name, (countries, src) in f.local_groups.items():
                if name in group_src and groups[name] != countries:
                    problems.append(
                        Problem(
                            *_split(src),
                            f"groups.{name}",
                            f"group {name} is also defined, differently, at {group_src[name]}",
                        )
                    )
                groups.setdefault(name, countries)
                group_src.setdefault(name, src)
        classes = dict(DATA_CLASSES)
        for f in reversed(root.files):
            classes.update({k: _oneline(v) for k, v in f.doc.classes.items()})
        problems.extend(self._unknown_classes(root, classes))
        list_names = {n for f in root.files for n in f.doc.party_lists}
        problems.extend(
            Problem(
                *_split(r.source),
                "constraints.deny_listed",
                f"party list {name} is not defined under `party_lists:` in any composed file",
            )
            for r in rules
            for name in r.constraints.deny_listed
            if name not in list_names
        )
        rule_ids = {r.id for r in rules}
        exceptions: list[PolicyException] = []
        for f in root.files:
            for exc in f.exceptions:
                if exc.relaxes not in rule_ids:
                    close = difflib.get_close_matches(exc.relaxes, sorted(rule_ids), n=2)
                    hint = f"; did you mean {', '.join(close)}?" if close else ""
                    problems.append(
                        Problem(
                            *_split(exc.source),
                            "exceptions.relaxes",
                            f"exception {exc.id} relaxes {exc.relaxes!r}, which is not a rule "
                            f"of this policy{hint}",
                        )
                    )
                exceptions.append(exc)
        if not rules:
            problems.append(
                Problem(root.display, 1, "rules", "the policy has no rules (add rules or extends)")
            )
        if problems:
            raise PolicyError(problems)
        default_class = next(
            (f.doc.default_class for f in root.files if f.doc.default_class), UNCLASSIFIED
        )
        require = root.doc.require_classification
        if require is None:
            require = any(f.doc.require_classification for f in root.files)
        party_lists: dict[str, set[str]] = {}
        for f in root.files:
            for name, members in f.doc.party_lists.items():
                party_lists.setdefault(name, set()).update(m.strip().casefold() for m in members)
        return Policy(
            name=root.name,
            description=root.doc.description.strip(),
            citation=root.doc.citation.strip(),
            extends=tuple(root.doc.extends),
            sources=tuple(f.display for f in root.files),
            groups=groups,
            countries=frozenset(self.catalog.countries),
            classes=classes,
            party_lists={k: frozenset(v) for k, v in party_lists.items()},
            classifiers=tuple(c for f in root.files for c in f.classifiers),
            default_class=default_class,
            require_classification=require,
            unknown_subject=next(
                (f.doc.unknown_subject for f in root.files if f.doc.unknown_subject),
                "all-protected",
            ),
            placement=next((f.placement for f in root.files if f.placement), Placement()),
            rules=tuple(rules),
            exceptions=tuple(exceptions),
        )

    def _unknown_classes(self, root: _Loaded, classes: dict[str, str]) -> list[Problem]:
        """Every class a rule, classifier or default names must be in the vocabulary."""
        known = ", ".join(sorted(classes))

        def problem(where: str, field: str, name: str) -> Problem:
            close = difflib.get_close_matches(name, sorted(classes), n=2, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            return Problem(
                *_split(where),
                field,
                f"unknown data class {name!r}; {hint}declare it under `classes:` or use one "
                f"of {known}",
            )

        out: list[Problem] = []
        for f in root.files:
            for r in f.rules:
                out.extend(
                    problem(r.source, "scope.data_class", c)
                    for c in r.scope.data_class
                    if c not in classes
                )
            for c in f.classifiers:
                if c.data_class is not None and c.data_class not in classes:
                    out.append(problem(c.source, "class", c.data_class))
            if f.doc.default_class and f.doc.default_class not in classes:
                out.append(problem(f.default_class_at, "default_class", f.doc.default_class))
        return out

    def _load(self, path: Path, display: str, via: tuple[_File, Loc] | None) -> _Loaded:
        key = path.resolve()
        if key in self.stack:
            chain = [*(p.name for p in self.stack[self.stack.index(key) :]), key.name]
            msg = "extends cycle: " + " -> ".join(chain)
            if via is None:
                raise PolicyError(Problem(display, None, "", msg))
            via[0].fail(via[1], msg)
        if key in self.cache:
            return self.cache[key]
        src = self._parse(path, display, via)
        doc = self._validate(src)
        self.stack.append(key)
        try:
            extended = [
                self._load(
                    *self._extends_target(src, path, ref, ("extends", i)), (src, ("extends", i))
                )
                for i, ref in enumerate(doc.extends)
            ]
        finally:
            self.stack.pop()
        visible = dict(self.builtin_groups)
        for ext in extended:
            for f in ext.files:
                visible.update({n: g for n, (g, _) in f.local_groups.items()})
        local = self._resolve_groups(src, doc, visible)
        visible.update({n: g for n, (g, _) in local.items()})
        name = doc.name or path.stem
        rules = [self._rule(src, visible, name, i, r) for i, r in enumerate(doc.rules)]
        classifiers = [self._classifier(src, visible, i, c) for i, c in enumerate(doc.classifiers)]
        exceptions = [self._exception(src, i, e) for i, e in enumerate(doc.exceptions)]
        placement = self._placement(src, doc.placement)
        src.raise_if_any()
        loaded = _Loaded(
            path,
            display,
            name,
            doc,
            rules,
            classifiers,
            exceptions,
            placement,
            src.where(("default_class",)),
            local,
        )
        files = [loaded]
        for ext in extended:
            files.extend(f for f in ext.files if f not in files)
        loaded.files = files
        self.cache[key] = loaded
        return loaded

    def _extends_target(self, src: _File, base: Path, ref: str, loc: Loc) -> tuple[Path, str]:
        looks_like_file = ref.endswith((".yaml", ".yml")) or "/" in ref or "\\" in ref
        if ref.startswith(PRESET_PREFIX) or not looks_like_file:
            try:
                p = preset_path(ref.removeprefix(PRESET_PREFIX))
            except KeyError as exc:
                src.fail(loc, str(exc.args[0]))
            return p, preset_display(p)
        target = Path(os.path.normpath(base.parent / ref))
        return target, str(target)

    # -- parsing and validation -----------------------------------------------------------

    def _parse(self, path: Path, display: str, via: tuple[_File, Loc] | None) -> _File:
        def fail(line: int | None, msg: str) -> PolicyError:
            if via is not None:
                via[0].problem(via[1], f"{display}: {msg}")
                return PolicyError(via[0].problems)
            return PolicyError(Problem(display, line, "", msg))

        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise fail(None, "file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(None, f"cannot read: {exc}") from None
        try:
            tree = YAML(typ="rt").load(text)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            what = " ".join(str(x) for x in (exc.context, exc.problem) if x)
            raise PolicyError(Problem(display, line, "", f"not valid YAML: {what}")) from None
        if tree is None:
            raise PolicyError(Problem(display, 1, "", "the file is empty"))
        if not isinstance(tree, CommentedMap):
            raise PolicyError(Problem(display, 1, "", "expected a mapping (name:, rules:, ...)"))
        return _File(display, tree)

    def _validate(self, src: _File) -> PolicyDoc:
        try:
            return PolicyDoc.model_validate(plain(src.tree))
        except ValidationError as exc:
            for err in exc.errors():
                src.problem(_validation_loc(err["loc"]), _message(err))
            raise PolicyError(src.problems) from None

    # -- resolution -----------------------------------------------------------------------

    def _resolve_groups(
        self, src: _File, doc: PolicyDoc, visible: dict[str, frozenset[str]]
    ) -> dict[str, tuple[frozenset[str], str]]:
        local: dict[str, tuple[frozenset[str], str]] = {}
        raw = {name.upper(): (name, members) for name, members in doc.groups.items()}
        for name, members in doc.groups.items():
            loc: Loc = ("groups", name)
            if name.upper() in self.builtin_groups or name.upper() in self.aliases:
                src.problem(loc, f"group {name} would shadow the built-in group of that name")
            elif not GROUP_NAME_RE.match(name):
                src.problem(loc, f"group name {name!r} must be UPPER_CASE, 3+ characters")
            elif not members:
                src.problem(loc, "must not be empty")
            for i, m in enumerate(members):
                if not TERM_RE.match(m):
                    src.problem((*loc, i), f"{m!r} is not a country code or @GROUP")

        def expand(name: str, path: list[str]) -> frozenset[str]:
            if name in local:
                return local[name][0]
            original, members = raw[name]
            out: set[str] = set()
            for i, m in enumerate(members):
                ref = m.lstrip("@").upper()
                if ref in raw and ref not in visible:
                    if ref in path:
                        cycle = " -> ".join([*path[path.index(ref) :], ref])
                        src.problem(("groups", original, i), f"group cycle: {cycle}")
                        continue
                    out |= expand(ref, [*path, ref])
                else:
                    term = self._term(src, ("groups", original, i), m, visible)
                    if term is not None:
                        out |= term.countries
            result = frozenset(out)
            local[name] = (result, src.where(("groups", original)))
            return result

        for name in raw:
            if name not in local:
                expand(name, [name])
        return local

    def _term(
        self, src: _File, loc: Loc, spec: str, visible: dict[str, frozenset[str]]
    ) -> CountryTerm | None:
        name = spec.strip().lstrip("@")
        upper = name.upper()
        upper = self.aliases.get(upper, upper) if upper not in visible else upper
        if upper in visible:
            return CountryTerm(spec=spec, group=upper, countries=visible[upper])
        if not spec.startswith("@") and COUNTRY_RE.match(upper):
            from residency.catalog import CatalogError

            try:
                self.catalog.country(upper)
            except CatalogError as exc:
                src.problem(loc, str(exc))
                return None
            return CountryTerm(spec=spec, countries=frozenset({upper}))
        close = difflib.get_close_matches(upper, sorted(visible), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        kind = "group" if spec.startswith("@") or len(name) > 2 else "country code or group"
        src.problem(loc, f"unknown {kind} {spec!r}{hint}")
        return None

    def _terms(
        self, src: _File, loc: Loc, specs: Sequence[str] | None, visible: dict[str, frozenset[str]]
    ) -> tuple[CountryTerm, ...] | None:
        if specs is None:
            return None
        terms = [self._term(src, (*loc, i), s, visible) for i, s in enumerate(specs)]
        return tuple(t for t in terms if t is not None)

    def _providers(self, src: _File, loc: Loc, ids: Sequence[str] | None) -> tuple[str, ...] | None:
        if ids is None:
            return None
        known = sorted(self.catalog.providers)
        for i, pid in enumerate(ids):
            if pid not in self.catalog.providers:
                close = difflib.get_close_matches(pid, known, n=3)
                hint = (
                    f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
                )
                src.problem((*loc, i), f"unknown provider {pid!r}; {hint}")
        return tuple(ids)

    def _preference(self, src: _File, loc: Loc, prefer: Any) -> Preference:
        if prefer is None:
            return Preference()
        if prefer == "cheapest":
            return Preference(kind="cheapest")
        if isinstance(prefer, list):
            return Preference(kind="explicit", locations=tuple(prefer))
        code = (prefer["nearest"] if isinstance(prefer, dict) else prefer.split(":", 1)[1]).strip()
        code = code.upper()
        if not COUNTRY_RE.match(code):
            src.problem(loc, f"nearest needs a country code such as DE, got {code!r}")
            return Preference()
        if self._term(src, loc, code, {}) is None:
            return Preference()
        return Preference(
            kind="nearest", country=code, continent=self.catalog.country(code).continent
        )

    def _rule(
        self, src: _File, visible: dict[str, frozenset[str]], policy: str, index: int, doc: RuleDoc
    ) -> Rule:
        base: Loc = ("rules", index)
        m, c = doc.scope, doc.constraints
        mloc, cloc = (*base, "scope"), (*base, "constraints")
        scope = Scope(
            data_class=tuple(m.data_class or ()),
            subject=self._terms(src, (*mloc, "subject"), m.subject, visible) or (),
            over_subjects=m.over_subjects,
            tenant=tuple(m.tenant or ()),
            bucket=tuple(m.bucket or ()),
        )
        constraints = Constraints(
            allow_countries=self._terms(
                src, (*cloc, "allow_countries"), c.allow_countries, visible
            ),
            deny_countries=self._terms(src, (*cloc, "deny_countries"), c.deny_countries, visible)
            or (),
            deny_vendor_hq=self._terms(src, (*cloc, "deny_vendor_hq"), c.deny_vendor_hq, visible)
            or (),
            vendor_control_pct=c.vendor_control_pct,
            deny_listed=tuple(c.deny_listed or ()),
            allow_providers=self._providers(src, (*cloc, "allow_providers"), c.allow_providers),
            deny_providers=self._providers(src, (*cloc, "deny_providers"), c.deny_providers) or (),
            replicas=c.replicas,
            spread=c.spread,
            prefer=self._preference(src, (*cloc, "prefer"), c.prefer),
        )
        if constraints.allow_countries is not None and constraints.deny_countries:
            allowed = frozenset().union(*(t.countries for t in constraints.allow_countries))
            denied = frozenset().union(*(t.countries for t in constraints.deny_countries))
            if allowed and allowed <= denied:
                src.problem(cloc, "deny_countries removes every allowed country")
        return Rule(
            id=doc.id,
            description=_oneline(doc.description),
            citation=_oneline(doc.citation),
            source=src.where(base),
            policy=policy,
            scope=scope,
            constraints=constraints,
        )

    def _exception(self, src: _File, index: int, doc: ExceptionDoc) -> PolicyException:
        return PolicyException(
            id=doc.id,
            relaxes=doc.relaxes,
            mechanism=doc.mechanism,
            locations=tuple(doc.locations),
            evidence=_oneline(doc.evidence),
            expires=doc.expires,
            description=_oneline(doc.description),
            source=src.where(("exceptions", index)),
        )

    def _placement(self, src: _File, doc: PlacementDoc | None) -> Placement | None:
        if doc is None:
            return None
        return Placement(
            replicas=doc.replicas,
            spread=doc.spread,
            prefer=self._preference(src, ("placement", "prefer"), doc.prefer),
        )

    def _classifier(
        self, src: _File, visible: dict[str, frozenset[str]], index: int, doc: ClassifierDoc
    ) -> Classifier:
        subject = None
        if doc.subject is not None:
            term = self._term(src, ("classifiers", index, "subject"), doc.subject, visible)
            subject = None if term is None else (term.group or next(iter(term.countries)))
        return Classifier(
            prefix=doc.prefix,
            regex=doc.regex,
            bucket=tuple(doc.bucket or ()),
            data_class=doc.data_class,
            subject=subject,
            source=src.where(("classifiers", index)),
        )


def _oneline(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _split(where: str) -> tuple[str, int | None]:
    file, _, line = where.rpartition(":")
    return (file, int(line)) if line.isdigit() else (where, None)
