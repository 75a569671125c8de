"""Loading: each mistake names file:line and field; composition, classes, exceptions, placement."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from policy_helpers import WORLD, write

from residency.policy import DATA_CLASSES, ObjectAttrs, PolicyError, evaluate, load_policy
from residency.policy.model import MECHANISMS

GOOD_RULE = """\
rules:
  - id: r1
    constraints:
      allow_countries: [DE]
"""

EXCEPTION = """\
extends: [preset:eu-gdpr]
exceptions:
  - id: e1
    relaxes: gdpr-eea-or-adequate
    mechanism: gdpr-art46-sccs
    locations: [aws-us-east-1]
    evidence: DPA-1
    expires: 2027-01-01
"""

# (yaml, line, field path, message fragment)
BAD = [
    pytest.param(
        "name: x\nrulez: []\n" + GOOD_RULE,
        2,
        "rulez",
        "unknown field (did you mean 'rules'?)",
        id="unknown-top-level-field",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    constraints:\n      deny_country: [CN]\n",
        4,
        "rules[0].constraints.deny_country",
        "did you mean 'deny_countries'?",
        id="typo-in-constraint",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    match: {data_class: personal}\n",
        3,
        "rules[0].match",
        "unknown field",
        id="match-is-gone",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    scope: {data_class: personal, subjects: US}\n",
        3,
        "rules[0].scope.subjects",
        "unknown field (did you mean 'subject'?)",
        id="typo-in-scope",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    scope:\n      data_class: [personal, 'personal.*']\n",
        4,
        "rules[0].scope.data_class",
        "'personal.*' is not a data class name (dotted lowercase; it covers its sub-classes)",
        id="class-globs-are-gone",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    scope:\n      data_class: [Personal]\n",
        4,
        "rules[0].scope.data_class",
        "'Personal' is not a data class name",
        id="class-not-lowercase",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    scope:\n      over_subjects: -1\n",
        4,
        "rules[0].scope.over_subjects",
        "must not be negative, got -1",
        id="negative-threshold",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    scope:\n      over_subjects: many\n",
        4,
        "rules[0].scope.over_subjects",
        "valid integer",
        id="threshold-not-a-number",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    constraints:\n      deny_countries: [CN, XX]\n",
        4,
        "rules[0].constraints.deny_countries[1]",
        "unknown country",
        id="bad-country-code",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    constraints:\n      allow_countries:\n        - DE\n"
        "        - '@EEAA'\n",
        6,
        "rules[0].constraints.allow_countries[1]",
        "unknown group '@EEAA'; did you mean EEA",
        id="unknown-group",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    scope:\n      subject: [NOWHERE]\n",
        4,
        "rules[0].scope.subject[0]",
        "unknown group 'NOWHERE'",
        id="unknown-subject-group",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    scope:\n      subject: [US, UK]\n",
        4,
        "rules[0].scope.subject[1]",
        "unknown country code 'UK'",
        id="subject-not-iso",
    ),
    pytest.param(
        "extends: [preset:default, preset:eu-gpdr]\n" + GOOD_RULE,
        1,
        "extends[1]",
        "unknown preset 'eu-gpdr'; did you mean eu-gdpr?",
        id="unknown-preset",
    ),
    pytest.param(
        "extends: [preset:catch-all]\n" + GOOD_RULE,
        1,
        "extends[0]",
        "unknown preset 'catch-all'",
        id="catch-all-is-gone",
    ),
    pytest.param(
        "extends:\n  - nosuch-preset\n" + GOOD_RULE,
        2,
        "extends[0]",
        "unknown preset",
        id="unknown-bare-preset",
    ),
    pytest.param(
        "extends: [./missing.yaml]\n" + GOOD_RULE,
        1,
        "extends[0]",
        "file not found",
        id="missing-extended-file",
    ),
    pytest.param(
        "classifiers:\n  - regex: '^(unclosed'\n    class: personal\n" + GOOD_RULE,
        2,
        "classifiers[0].regex",
        "not a valid regular expression",
        id="bad-regex",
    ),
    pytest.param(
        "classifiers:\n  - prefix: a/\n    regex: b\n    class: personal\n" + GOOD_RULE,
        2,
        "classifiers[0]",
        "exactly one of prefix or regex",
        id="prefix-and-regex",
    ),
    pytest.param(
        "classifiers:\n  - prefix: a/\n" + GOOD_RULE,
        2,
        "classifiers[0]",
        "give class, subject or both",
        id="classifier-sets-nothing",
    ),
    pytest.param(
        "classifiers:\n  - prefix: a/\n    class: Personal\n" + GOOD_RULE,
        3,
        "classifiers[0].class",
        "is not a data class",
        id="bad-classifier-class",
    ),
    pytest.param(
        "classifiers:\n  - prefix: a/\n    subject: UK\n" + GOOD_RULE,
        3,
        "classifiers[0].subject",
        "unknown country code 'UK'",
        id="bad-classifier-subject",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    constraints:\n      replicas: 0\n",
        4,
        "rules[0].constraints.replicas",
        "must be at least 1",
        id="replicas-zero",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    constraints:\n      replicas: two\n",
        4,
        "rules[0].constraints.replicas",
        "valid integer",
        id="replicas-not-a-number",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    constraints:\n      spread: zone\n",
        4,
        "rules[0].constraints.spread",
        "'location', 'region', 'provider' or 'country'",
        id="bad-spread",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    constraints:\n      vendor_control_pct: 0\n",
        4,
        "rules[0].constraints.vendor_control_pct",
        "must be a percentage from 1 to 100, got 0",
        id="control-threshold-out-of-range",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    constraints:\n      deny_listed: [NOPE_LIST]\n",
        2,
        "constraints.deny_listed",
        "party list NOPE_LIST is not defined under `party_lists:` in any composed file",
        id="undefined-party-list",
    ),
    pytest.param(
        "party_lists:\n  covered: [x]\n" + GOOD_RULE,
        1,
        "party_lists",
        "'covered' is not a party-list name",
        id="party-list-name",
    ),
    pytest.param("name: x\nrules: []\n", 1, "rules", "no rules", id="empty-rules"),
    pytest.param("name: x\n", 1, "rules", "no rules", id="no-rules"),
    pytest.param(
        "rules:\n  - id: r1\n    constraints:\n      allow_countries: []\n",
        4,
        "rules[0].constraints.allow_countries",
        "must not be empty",
        id="empty-allow-list",
    ),
    pytest.param(
        "rules:\n  - id: r1\n  - id: r2\n    constraints:\n      allow_providers: [alibabacloud]\n",
        5,
        "rules[1].constraints.allow_providers[0]",
        "unknown provider 'alibabacloud'",
        id="unknown-provider",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    constraints:\n      prefer: fastest\n",
        4,
        "rules[0].constraints.prefer",
        "'fastest' is not a preference",
        id="bad-prefer",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    constraints:\n      prefer: 'nearest:Germany'\n",
        4,
        "rules[0].constraints.prefer",
        "nearest needs a country code",
        id="bad-nearest",
    ),
    pytest.param(
        "rules:\n  - id: Rule One\n", 2, "rules[0].id", "is not a rule id", id="bad-rule-id"
    ),
    pytest.param(
        "rules:\n  - id: r1\n    scope: {bucket: a}\n  - id: r1\n",
        4,
        "rules.id",
        "rule id 'r1' is already used at",
        id="duplicate-rule-id",
    ),
    pytest.param(
        "rules:\n  - constraints: {replicas: 1}\n",
        2,
        "rules[0].id",
        "required field is missing",
        id="missing-rule-id",
    ),
    pytest.param(
        "groups:\n  EU: [DE]\n" + GOOD_RULE,
        2,
        "groups.EU",
        "shadow the built-in group",
        id="group-shadows-builtin",
    ),
    pytest.param(
        "groups:\n  AA: [DE]\n" + GOOD_RULE,
        2,
        "groups.AA",
        "UPPER_CASE, 3+ characters",
        id="group-name-like-a-country",
    ),
    pytest.param(
        "groups:\n  ONE: ['@TWO']\n  TWO: [DE, '@ONE']\n" + GOOD_RULE,
        3,
        "groups.TWO[1]",
        "group cycle: ONE -> TWO -> ONE",
        id="group-cycle",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    constraints:\n      allow_countries: [CN]\n"
        "      deny_countries: ['@COUNTRIES_OF_CONCERN']\n",
        3,
        "rules[0].constraints",
        "deny_countries removes every allowed country",
        id="contradiction",
    ),
    pytest.param(
        "require_classification: 'yes'\n" + GOOD_RULE,
        1,
        "require_classification",
        "valid boolean",
        id="not-a-boolean",
    ),
    pytest.param(
        "unknown_subject: maybe\n" + GOOD_RULE,
        1,
        "unknown_subject",
        "'all-protected' or 'refuse'",
        id="bad-unknown-subject",
    ),
    pytest.param(
        "classes:\n  Personal.HR: staff files\n" + GOOD_RULE,
        1,
        "classes",
        "'Personal.HR' is not a data class",
        id="bad-declared-class",
    ),
    pytest.param(
        "placement: {replicas: 0}\n" + GOOD_RULE,
        1,
        "placement.replicas",
        "must be at least 1, got 0",
        id="placement-replicas",
    ),
    pytest.param(
        "placement:\n  replica: 2\n" + GOOD_RULE,
        2,
        "placement.replica",
        "unknown field (did you mean 'replicas'?)",
        id="placement-typo",
    ),
    pytest.param(
        "placement:\n  prefer: fastest\n" + GOOD_RULE,
        2,
        "placement.prefer",
        "'fastest' is not a preference",
        id="placement-prefer",
    ),
    pytest.param(
        EXCEPTION.replace("relaxes: gdpr-eea-or-adequate", "relaxes: gdpr-eea-or-adequat"),
        3,
        "exceptions.relaxes",
        "exception e1 relaxes 'gdpr-eea-or-adequat', which is not a rule of this policy; "
        "did you mean gdpr-eea-or-adequate?",
        id="exception-unknown-rule",
    ),
    pytest.param(
        EXCEPTION.replace("mechanism: gdpr-art46-sccs", "mechanism: sccs"),
        5,
        "exceptions[0].mechanism",
        "'sccs' is not a transfer mechanism the engine knows; use one of",
        id="exception-unknown-mechanism",
    ),
    pytest.param(
        EXCEPTION.replace("    evidence: DPA-1\n", ""),
        3,
        "exceptions[0].evidence",
        "required field is missing",
        id="exception-without-evidence",
    ),
    pytest.param(
        EXCEPTION.replace("evidence: DPA-1", "evidence: '  '"),
        7,
        "exceptions[0].evidence",
        "must say where the evidence is",
        id="exception-blank-evidence",
    ),
    pytest.param(
        EXCEPTION.replace("    expires: 2027-01-01\n", ""),
        3,
        "exceptions[0].expires",
        "required field is missing",
        id="exception-without-expiry",
    ),
    pytest.param(
        EXCEPTION.replace("expires: 2027-01-01", "expires: next year"),
        8,
        "exceptions[0].expires",
        "valid date",
        id="exception-bad-expiry",
    ),
    pytest.param(
        EXCEPTION.replace("locations: [aws-us-east-1]", "locations: []"),
        6,
        "exceptions[0].locations",
        "must not be empty",
        id="exception-no-locations",
    ),
    pytest.param(
        EXCEPTION + "    until: 2027-01-01\n",
        9,
        "exceptions[0].until",
        "unknown field",
        id="exception-unknown-field",
    ),
    pytest.param(
        "name: x\nname: y\n" + GOOD_RULE,
        2,
        "",
        "not valid YAML",
        id="duplicate-key",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    scope: {data_class: [personal\n",
        4,
        "",
        "not valid YAML",
        id="yaml-syntax",
    ),
    pytest.param("- just\n- a list\n", 1, "", "expected a mapping", id="not-a-mapping"),
    pytest.param("", 1, "", "the file is empty", id="empty-file"),
]


@pytest.mark.parametrize(("text", "line", "field", "message"), BAD)
def test_every_error_names_file_line_and_field(
    tmp_path: Path, text: str, line: int, field: str, message: str
) -> None:
    path = write(tmp_path, "p.yaml", text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    first = info.value.problems[0]
    assert (first.file, first.line, first.path) == (str(path), line, field), str(info.value)
    assert message in first.message, str(info.value)
    prefix = f"{path}:{line}: {field}: " if field else f"{path}:{line}: "
    assert str(info.value).startswith(prefix)


def test_a_policy_cannot_redefine_a_rule_of_a_law_it_extends(tmp_path: Path) -> None:
    # Otherwise a looser rule of the same id could replace the law's.
    path = write(
        tmp_path,
        "p.yaml",
        "extends: [preset:eu-gdpr]\nrules:\n  - id: gdpr-eea-or-adequate\n"
        "    scope: {bucket: [nothing]}\n",
    )
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    (problem,) = info.value.problems
    assert problem.path == "rules.id"
    where = {f"{problem.file}:{problem.line}", problem.message.rsplit(" ", 1)[-1]}
    assert f"{path}:3" in where
    assert any(w.startswith("residency/policy/presets/eu-gdpr.yaml:") for w in where)
    assert "rule id 'gdpr-eea-or-adequate' is already used at" in problem.message


def test_the_old_match_key_suggests_scope(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "rules:\n  - id: r1\n    match: {data_class: personal}\n")
    with pytest.raises(PolicyError, match=r"unknown field \(did you mean 'scope'\?\)"):
        load_policy(path)


# -- the closed class vocabulary ------------------------------------------------------------


# (yaml, line, message fragments): a class nothing declared is an error where it is used.
UNKNOWN_CLASSES = [
    pytest.param(
        "rules:\n  - id: r1\n    scope:\n      data_class: [personal, helth]\n",
        2,
        ["unknown data class 'helth'", "did you mean personal.health?"],
        id="in-a-scope",
    ),
    pytest.param(
        "rules:\n  - id: r1\n  - id: r2\n    scope: {data_class: financial}\n",
        3,
        ["unknown data class 'financial'", "personal.financial"],
        id="in-a-second-rule",
    ),
    pytest.param(
        "classifiers:\n  - prefix: hr/\n    class: personal.hr\n" + GOOD_RULE,
        2,
        ["unknown data class 'personal.hr'", "declare it under `classes:`"],
        id="in-a-classifier",
    ),
    pytest.param(
        "default_class: financial\n" + GOOD_RULE,
        1,
        ["unknown data class 'financial'", "personal.financial"],
        id="as-default-class",
    ),
]


@pytest.mark.parametrize(("text", "line", "fragments"), UNKNOWN_CLASSES)
def test_an_unknown_class_is_a_load_error_naming_the_known_ones(
    tmp_path: Path, text: str, line: int, fragments: list[str]
) -> None:
    path = write(tmp_path, "p.yaml", text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    first = info.value.problems[0]
    assert (first.file, first.line) == (str(path), line), str(info.value)
    assert str(info.value).startswith(f"{path}:{line}: ")
    for fragment in fragments:
        assert fragment in first.message, str(info.value)
    assert "use one of " + ", ".join(sorted(DATA_CLASSES)) in first.message


def test_an_unknown_default_class_points_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "name: x\ndefault_class: financial\n" + GOOD_RULE)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.problems[0].line == 2


def test_declared_classes_join_the_vocabulary_from_any_composed_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        "base.yaml",
        "classes:\n  personal.hr: staff records\n"
        "classifiers:\n  - prefix: payroll/\n    class: personal.hr.payroll\n"
        "rules:\n  - id: hr-in-de\n    scope: {data_class: [personal.hr]}\n"
        "    constraints: {allow_countries: [DE]}\n",
    )
    top = write(
        tmp_path,
        "top.yaml",
        "extends: [base.yaml, preset:eu-gdpr]\n"
        "classes:\n  personal.hr.payroll: >\n    salaries\n    and bank details\n"
        "default_class: personal.hr\n",
    )
    p = load_policy(top)
    assert set(p.classes) == {*DATA_CLASSES, "personal.hr", "personal.hr.payroll"}
    assert p.classes["personal.hr.payroll"] == "salaries and bank details"
    assert p.default_class == "personal.hr"
    # `personal` (GDPR) covers the declared sub-classes; `personal.hr` covers payroll.
    d = evaluate(p, ObjectAttrs("personal.hr.payroll", "FR"), WORLD)
    assert d.rule_ids == ("hr-in-de", "gdpr-eea-or-adequate")
    assert {f.country for f in WORLD if f.name in d.allowed} == {"DE"}
    # A class the base file alone does not know is still an error there.
    with pytest.raises(PolicyError, match=r"unknown data class 'personal\.hr\.payroll'"):
        load_policy(tmp_path / "base.yaml")


def test_a_rule_without_scope_covers_every_object(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, "p.yaml", "extends: [preset:eu-gdpr]\n" + GOOD_RULE))
    assert [r.id for r in p.rules] == ["r1", "gdpr-eea-or-adequate"]
    for obj in (ObjectAttrs("public"), ObjectAttrs("personal", "DE"), ObjectAttrs("personal")):
        d = evaluate(p, obj, WORLD)
        assert "r1" in d.rule_ids
        assert {f.country for f in WORLD if f.name in d.allowed} == {"DE"}


# -- exceptions, placement, party lists, unknown subjects -----------------------------------


def test_an_exception_loads_with_its_source(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        EXCEPTION.replace(
            "    evidence", "    description: >\n      SCCs with AWS,\n      module 2\n    evidence"
        ),
    )
    p = load_policy(path)
    (exc,) = p.exceptions
    assert exc.id == "e1"
    assert exc.relaxes == "gdpr-eea-or-adequate"
    assert exc.mechanism == "gdpr-art46-sccs"
    assert exc.mechanism in MECHANISMS
    assert exc.locations == ("aws-us-east-1",)
    assert exc.evidence == "DPA-1"
    assert exc.expires == dt.date(2027, 1, 1)
    assert exc.description == "SCCs with AWS, module 2"
    assert exc.source == f"{path}:3"
    assert exc.active(dt.date(2027, 1, 1))
    assert not exc.active(dt.date(2027, 1, 2))
    assert "Art. 46" in exc.cite()


def test_an_exception_may_relax_a_rule_of_any_composed_file(tmp_path: Path) -> None:
    write(tmp_path, "mid.yaml", "extends: [preset:default]\n" + GOOD_RULE)
    top = write(
        tmp_path,
        "top.yaml",
        "extends: [mid.yaml]\nexceptions:\n"
        "  - {id: cisa, relaxes: doj-bulk-sensitive, mechanism: doj-202-401-cisa,\n"
        "     locations: [alibaba-ap-southeast-1], evidence: CISA-2026-4, expires: 2030-01-01}\n",
    )
    assert [e.id for e in load_policy(top).exceptions] == ["cisa"]


def test_placement_is_the_baseline_and_rules_can_only_ask_for_more(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        "placement: {replicas: 2, spread: provider, prefer: cheapest}\n"
        "rules:\n  - id: three-countries\n    scope: {data_class: personal}\n"
        "    constraints: {replicas: 3, spread: country}\n"
        "  - id: one-copy\n    scope: {data_class: genomic}\n"
        "    constraints: {replicas: 1, prefer: 'nearest:DE'}\n",
    )
    p = load_policy(path)
    assert (p.placement.replicas, p.placement.spread, p.placement.prefer.kind) == (
        2,
        "provider",
        "cheapest",
    )
    public = evaluate(p, ObjectAttrs("public"), WORLD)
    assert public.unrestricted
    assert public.replicas == 2
    assert public.spreads == ("provider",)
    assert public.ok
    assert len({f.provider for f in WORLD if f.name in public.chosen}) == 2
    personal = evaluate(p, ObjectAttrs("personal"), WORLD)
    assert personal.replicas == 3
    assert personal.spreads == ("provider", "country")
    chosen = [f for f in WORLD if f.name in personal.chosen]
    assert len({f.provider for f in chosen}) == 3
    assert len({f.country for f in chosen}) == 3
    genomic = evaluate(p, ObjectAttrs("genomic"), WORLD)
    assert genomic.replicas == 2  # the baseline still holds: a rule cannot ask for fewer
    assert genomic.allowed[0] in {f.name for f in WORLD if f.country == "DE"}  # rule's prefer


def test_placement_is_inherited_from_the_first_file_that_sets_it(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, "p.yaml", "extends: [preset:default]\n" + GOOD_RULE))
    assert p.placement.prefer.kind == "cheapest"
    q = load_policy(
        write(tmp_path, "q.yaml", "extends: [preset:default]\nplacement: {replicas: 2}\n")
    )
    assert (q.placement.replicas, q.placement.prefer.kind) == (2, "order")


def test_party_lists_merge_across_files(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        "extends: [preset:us-doj-bulk-data]\n"
        "party_lists:\n  DOJ_COVERED_PERSONS: ['  Example Covered Cloud Ltd. ']\n"
        "  OWN_BLOCKLIST: [Hetzner]\n"
        "rules:\n  - id: own\n    constraints: {deny_listed: [OWN_BLOCKLIST]}\n",
    )
    p = load_policy(path)
    assert p.party_lists == {
        "DOJ_COVERED_PERSONS": frozenset({"example covered cloud ltd."}),
        "OWN_BLOCKLIST": frozenset({"hetzner"}),
    }
    d = evaluate(p, ObjectAttrs("public"), WORLD)
    assert "hetzner-fsn1" not in d.allowed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("extends: [preset:default]\n", "all-protected"),
        ("extends: [preset:default]\nunknown_subject: refuse\n", "refuse"),
        ("extends: [base.yaml]\n", "refuse"),
    ],
)
def test_unknown_subject_setting(tmp_path: Path, text: str, expected: str) -> None:
    write(tmp_path, "base.yaml", "unknown_subject: refuse\nextends: [preset:eu-gdpr]\n")
    p = load_policy(write(tmp_path, "p.yaml", text))
    assert p.unknown_subject == expected
    d = evaluate(p, ObjectAttrs("personal"), WORLD)
    if expected == "refuse":
        assert d.refusal == "unknown-subject"
        assert "x-amz-meta-residency-subject" in d.message
        assert "gdpr-eea-or-adequate" in d.message
        assert evaluate(p, ObjectAttrs("public"), WORLD).ok  # no subject rule covers it
    else:
        assert d.refusal == "no-location"


# -- composition --------------------------------------------------------------------------


def test_all_problems_in_a_file_are_reported_together(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        "rules:\n  - id: r1\n    constraints:\n      deny_countries: [XX, '@NOPE']\n"
        "      deny_providers: [nosuch]\n",
    )
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    paths = [p.path for p in info.value.problems]
    assert paths == [
        "rules[0].constraints.deny_countries[0]",
        "rules[0].constraints.deny_countries[1]",
        "rules[0].constraints.deny_providers[0]",
    ]
    assert len(str(info.value).splitlines()) == 3


def test_extends_cycle_is_detected_and_located(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "extends: [b.yaml]\n" + GOOD_RULE)
    write(tmp_path, "b.yaml", "rules: []\nextends:\n  - ./a.yaml\n")
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path / "a.yaml")
    first = info.value.problems[0]
    assert first.file.endswith("b.yaml")
    assert first.line == 3
    assert first.path == "extends[0]"
    assert first.message == "extends cycle: a.yaml -> b.yaml -> a.yaml"


def test_self_extension_is_a_cycle(tmp_path: Path) -> None:
    path = write(tmp_path, "a.yaml", "extends: [a.yaml]\n" + GOOD_RULE)
    with pytest.raises(PolicyError, match=r"a\.yaml:1: extends\[0\]: extends cycle"):
        load_policy(path)


def test_errors_in_an_extended_file_point_into_that_file(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yaml", "rules:\n  - id: b\n    scope: {bucket: 'x y'}\n")
    top = write(tmp_path, "top.yaml", "extends: [base.yaml]\n" + GOOD_RULE)
    with pytest.raises(PolicyError) as info:
        load_policy(top)
    assert str(info.value).startswith(f"{base}:3: rules[0].scope.bucket: 'x y' is not")


def test_missing_file_and_unknown_root_preset() -> None:
    with pytest.raises(PolicyError, match=r"^nope\.yaml: file not found$"):
        load_policy("nope.yaml")
    with pytest.raises(PolicyError, match=r"^preset:defualt: unknown preset 'defualt'; did you"):
        load_policy("preset:defualt")


def test_composition_order_groups_and_inheritance(tmp_path: Path) -> None:
    # top extends [mid, preset:ru-242fz, leaf]; mid extends [leaf]; leaf is reached twice.
    write(
        tmp_path,
        "leaf.yaml",
        "default_class: personal\ngroups:\n  NORDICS: [DK, FI, IS, NO, SE]\n"
        "classifiers:\n  - prefix: leaf/\n    class: public\n"
        "rules:\n  - id: leaf-rule\n    scope: {bucket: b1}\n"
        "    constraints: {allow_countries: ['@NORDICS']}\n",
    )
    (tmp_path / "sub").mkdir()
    write(
        tmp_path,
        "sub/mid.yaml",
        "extends: [../leaf.yaml]\nrequire_classification: true\n"
        "rules:\n  - id: mid-rule\n    scope: {tenant: t1}\n"
        "    constraints: {allow_countries: [NORDICS, DE]}\n",
    )
    top = write(
        tmp_path,
        "top.yaml",
        "name: top\nextends: [sub/mid.yaml, preset:ru-242fz, leaf.yaml]\n"
        "classifiers:\n  - regex: '^top/'\n    subject: '@nordics'\n"
        "rules:\n  - id: top-rule\n    scope: {subject: [NORDICS]}\n"
        "    constraints: {deny_countries: [NO]}\n",
    )
    p = load_policy(top)
    assert p.name == "top"
    assert [r.id for r in p.rules] == [
        "top-rule",
        "mid-rule",
        "leaf-rule",
        "ru-personal-data-in-russia",
    ]
    assert [r.policy for r in p.rules] == ["top", "mid", "leaf", "ru-242fz"]
    assert p.sources[0] == str(top)
    assert p.rules[0].source == f"{top}:7"
    assert p.rules[1].source.endswith("mid.yaml:4")
    assert p.groups["NORDICS"] == frozenset({"DK", "FI", "IS", "NO", "SE"})
    assert p.rules[0].scope.subject[0].group == "NORDICS"
    assert p.rules[1].constraints.allow_countries is not None
    assert p.rules[1].constraints.allow_countries[1].countries == frozenset({"DE"})
    assert p.default_class == "personal"  # inherited from leaf
    assert p.require_classification is True  # inherited from mid (stricter wins)
    assert [c.prefix or c.regex for c in p.classifiers] == ["^top/", "leaf/"]
    assert p.classifiers[0].subject == "NORDICS"
    assert "EEA" in p.groups
    assert "COUNTRIES_OF_CONCERN" in p.groups


def test_the_order_of_extends_does_not_change_the_verdict(tmp_path: Path) -> None:
    a = load_policy(write(tmp_path, "a.yaml", "extends: [eu-gdpr, cn-pipl, us-doj-bulk-data]\n"))
    b = load_policy(write(tmp_path, "b.yaml", "extends: [us-doj-bulk-data, cn-pipl, eu-gdpr]\n"))
    for obj in (
        ObjectAttrs("personal", "DE,CN"),
        ObjectAttrs("personal.health", "US"),
        ObjectAttrs("unclassified"),
        ObjectAttrs("personal.health", "US,DE", 20000),
    ):
        da, db = evaluate(a, obj, WORLD), evaluate(b, obj, WORLD)
        assert set(da.allowed) == set(db.allowed), obj
        assert set(da.rule_ids) == set(db.rule_ids), obj
        assert da.ok == db.ok, obj


def test_group_alias_resolves_to_the_canonical_group(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        "rules:\n  - id: r\n    constraints: {deny_vendor_hq: ['@doj_countries_of_concern']}\n",
    )
    term = load_policy(path).rules[0].constraints.deny_vendor_hq[0]
    assert term.group == "COUNTRIES_OF_CONCERN"
    assert "CN" in term.countries
    assert "VE" in term.countries


def test_norway_is_a_country_not_false(tmp_path: Path) -> None:
    # ruamel reads YAML 1.2, where a bare NO is the string "NO", not a boolean.
    path = write(
        tmp_path, "p.yaml", "rules:\n  - id: r\n    constraints: {allow_countries: [NO]}\n"
    )
    term = load_policy(path).rules[0].constraints.allow_countries
    assert term is not None
    assert term[0].countries == frozenset({"NO"})


def test_examples_load() -> None:
    root = Path(__file__).resolve().parents[2]
    texas = load_policy(root / "examples" / "tiktok-2022.yaml")
    assert [r.id for r in texas.rules][:3] == [
        "project-texas",
        "project-clover",
        "doj-government-related",
    ]
    assert texas.groups["US_SOIL"] >= {"US", "PR"}
    usds = load_policy(root / "examples" / "tiktok-usds-2026.yaml")
    assert next(r.id for r in usds.rules) == "us-users-oracle-us-only"
    assert usds.rules[0].constraints.allow_providers == ("oci",)


def test_anchored_values_are_plain_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        "require_classification: &strict true\n"
        "rules:\n  - id: r\n    scope: {bucket: x}\n    constraints: &c {replicas: 2}\n"
        "  - id: s\n    constraints: *c\n",
    )
    p = load_policy(path)
    assert p.require_classification is True
    assert [r.constraints.replicas for r in p.rules] == [2, 2]
