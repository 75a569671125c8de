"""Loading: each mistake names file:line and field; composition follows the documented order."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_helpers import write

from residency.policy import PolicyError, load_policy

GOOD_RULE = """\
rules:
  - id: r1
    constraints:
      allow_countries: [DE]
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
        "rules:\n  - id: r1\n    match: {data_class: personal, subjects: US}\n",
        3,
        "rules[0].match.subjects",
        "unknown field",
        id="typo-in-match",
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
        "rules:\n  - id: r1\n    match:\n      subject: [NOWHERE]\n",
        4,
        "rules[0].match.subject[0]",
        "unknown group 'NOWHERE'",
        id="unknown-subject-group",
    ),
    pytest.param(
        "extends: [preset:default, preset:eu-gpdr]\n" + GOOD_RULE,
        1,
        "extends[1]",
        "unknown preset 'eu-gpdr'; did you mean eu-gdpr?",
        id="unknown-preset",
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
        "rules:\n  - id: r1\n    match:\n      data_class: [personal, 'Personal.*']\n",
        4,
        "rules[0].match.data_class",
        "'Personal.*' is not a data-class glob",
        id="bad-glob",
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
        "classifiers:\n  - prefix: a/\n    class: Personal\n" + GOOD_RULE,
        3,
        "classifiers[0].class",
        "is not a data class",
        id="bad-classifier-class",
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
        "rules:\n  - id: r1\n    match: {bucket: a}\n  - id: r1\n",
        4,
        "rules.id",
        "rule id 'r1' is already used at",
        id="duplicate-rule-id",
    ),
    pytest.param(
        "extends: [preset:eu-gdpr]\nrules:\n  - id: everything\n",
        3,
        "rules.match",
        "rule everything matches everything, so the rules after it can never apply "
        "(gdpr-eea-or-adequate); give it a match or move it last",
        id="catch-all-shadows-later-rules",
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
        "name: x\nname: y\n" + GOOD_RULE,
        2,
        "",
        "not valid YAML",
        id="duplicate-key",
    ),
    pytest.param(
        "rules:\n  - id: r1\n    match: {data_class: [personal\n",
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
    base = write(tmp_path, "base.yaml", "rules:\n  - id: b\n    match: {bucket: 'x y'}\n")
    top = write(tmp_path, "top.yaml", "extends: [base.yaml]\n" + GOOD_RULE)
    with pytest.raises(PolicyError) as info:
        load_policy(top)
    assert str(info.value).startswith(f"{base}:3: rules[0].match.bucket: 'x y' is not")


def test_missing_file_and_unknown_root_preset() -> None:
    with pytest.raises(PolicyError, match=r"^nope\.yaml: file not found$"):
        load_policy("nope.yaml")
    with pytest.raises(PolicyError, match=r"^preset:defualt: unknown preset 'defualt'; did you"):
        load_policy("preset:defualt")


def test_composition_order_groups_and_inheritance(tmp_path: Path) -> None:
    # top extends [mid, preset:ru-242fz]; mid extends [leaf]; leaf is reached again via top.
    write(
        tmp_path,
        "leaf.yaml",
        "default_class: personal\ngroups:\n  NORDICS: [DK, FI, IS, NO, SE]\n"
        "classifiers:\n  - prefix: leaf/\n    class: public\n"
        "rules:\n  - id: leaf-rule\n    match: {bucket: b1}\n"
        "    constraints: {allow_countries: ['@NORDICS']}\n",
    )
    (tmp_path / "sub").mkdir()
    write(
        tmp_path,
        "sub/mid.yaml",
        "extends: [../leaf.yaml]\nrequire_classification: true\n"
        "rules:\n  - id: mid-rule\n    match: {tenant: t1}\n"
        "    constraints: {allow_countries: [NORDICS, DE]}\n",
    )
    top = write(
        tmp_path,
        "top.yaml",
        "name: top\nextends: [sub/mid.yaml, preset:ru-242fz, leaf.yaml]\n"
        "classifiers:\n  - regex: '^top/'\n    subject: '@nordics'\n"
        "rules:\n  - id: top-rule\n    match: {subject: [NORDICS]}\n"
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
    assert p.rules[0].source == f"{top}:7"
    assert p.rules[1].source.endswith("mid.yaml:4")
    assert p.groups["NORDICS"] == frozenset({"DK", "FI", "IS", "NO", "SE"})
    assert p.rules[0].match.subject[0].group == "NORDICS"
    assert p.rules[1].constraints.allow_countries is not None
    assert p.rules[1].constraints.allow_countries[1].countries == frozenset({"DE"})
    assert p.default_class == "personal"  # inherited from leaf
    assert p.require_classification is True  # inherited from mid (stricter wins)
    assert [c.prefix or c.regex for c in p.classifiers] == ["^top/", "leaf/"]
    assert p.classifiers[0].subject == "NORDICS"
    assert "EEA" in p.groups
    assert "COUNTRIES_OF_CONCERN" in p.groups


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
    p = load_policy(root / "examples" / "tiktok-2022.yaml")
    assert [r.id for r in p.rules][:3] == ["us-users-in-us", "eea-users-in-eea", "public-anywhere"]


def test_anchored_values_are_plain_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        "require_classification: &strict true\n"
        "rules:\n  - id: r\n    match: {bucket: x}\n    constraints: &c {replicas: 2}\n"
        "  - id: s\n    constraints: *c\n",
    )
    p = load_policy(path)
    assert p.require_classification is True
    assert [r.constraints.replicas for r in p.rules] == [2, 2]
