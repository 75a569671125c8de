"""Classification: headers > bucket defaults > classifiers > default_class; unknowns refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_helpers import WORLD, write

from residency.policy import (
    ClassificationError,
    ClassificationRequired,
    ObjectAttrs,
    Policy,
    classify,
    evaluate,
    load_policy,
)
from residency.policy.classify import MAX_SUBJECTS

POLICY = """\
name: classified
extends: [preset:default]
default_class: unclassified
classes:
  personal.hr: staff records
groups:
  STAFF_COUNTRIES: [DE, FR, GB]
classifiers:
  - prefix: patients/
    class: personal.health
    subject: US
  - regex: '^users/(de|fr)/'
    class: personal
    subject: '@eu'
  - prefix: logs/
    bucket: [audit-*]
    class: government
  - prefix: patients/
    class: public
  - prefix: staff/
    class: personal.hr
    subject: STAFF_COUNTRIES
  - prefix: shared/
    subject: DE
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return load_policy(write(tmp_path_factory.mktemp("classify"), "p.yaml", POLICY))


def test_classifiers_by_prefix_and_regex(policy: Policy) -> None:
    c = classify(policy, key="patients/123.json")
    assert (c.data_class, c.subject, c.subject_count) == ("personal.health", "US", None)
    assert c.source.startswith("classifier prefix 'patients/' at ")
    assert c.source.endswith("p.yaml:9")
    c = classify(policy, key="users/fr/42")
    assert (c.data_class, c.subject) == ("personal", "EU")
    assert c.source.startswith("classifier regex")


def test_classifiers_may_use_declared_classes_and_groups(policy: Policy) -> None:
    c = classify(policy, key="staff/anna.pdf")
    assert (c.data_class, c.subject) == ("personal.hr", "STAFF_COUNTRIES")
    d = evaluate(policy, ObjectAttrs(c.data_class, c.subject), WORLD)
    assert d.rule_ids == ("gdpr-eea-or-adequate",)  # `personal` covers personal.hr


def test_a_classifier_that_sets_only_the_subject_leaves_the_class_to_the_default(
    policy: Policy,
) -> None:
    c = classify(policy, key="shared/x")
    assert (c.data_class, c.subject, c.source) == ("unclassified", "DE", "default")


def test_classifier_bucket_filter(policy: Policy) -> None:
    assert classify(policy, key="logs/x", bucket="audit-2026").data_class == "government"
    assert classify(policy, key="logs/x", bucket="web").data_class == "unclassified"
    assert classify(policy, key="logs/x").data_class == "unclassified"


def test_headers_beat_bucket_defaults_beat_classifiers(policy: Policy) -> None:
    c = classify(
        policy,
        key="patients/1",
        explicit_class="Personal.Financial",
        explicit_subject="ca",
        explicit_count="20000",
        bucket_class="public",
        bucket_subject="DE",
    )
    assert (c.data_class, c.subject, c.subject_count, c.source) == (
        "personal.financial",
        "CA",
        20000,
        "header",
    )
    c = classify(policy, key="patients/1", bucket_class="public", bucket_subject="DE")
    assert (c.data_class, c.subject, c.source) == ("public", "DE", "bucket")
    # Each field is resolved on its own: class from the header, subject from the classifier.
    c = classify(policy, key="patients/1", explicit_class="genomic")
    assert (c.data_class, c.subject, c.source) == ("genomic", "US", "header")
    # Blank values count as not given.
    c = classify(policy, key="patients/1", explicit_class="  ", explicit_subject="")
    assert (c.data_class, c.subject) == ("personal.health", "US")


def test_default_class_and_unknown_subject(policy: Policy) -> None:
    c = classify(policy, key="misc/readme.txt")
    assert (c.data_class, c.subject, c.source) == ("unclassified", None, "default")


def test_required_classification(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, "p.yaml", POLICY + "require_classification: true\n"))
    assert classify(p, key="patients/1").data_class == "personal.health"
    with pytest.raises(ClassificationRequired, match="x-amz-meta-residency-class") as info:
        classify(p, key="misc/readme.txt", explicit_subject="US")
    assert "'misc/readme.txt'" in str(info.value)
    assert "x-amz-meta-residency-subject" in str(info.value)
    assert isinstance(info.value, ClassificationError)
    assert classify(p, key="misc/readme.txt", bucket_class="public").data_class == "public"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("us", "US"),
        ("@eea", "EEA"),
        ("eu", "EU"),
        ("us,de", "DE,US"),
        (" DE , us ,", "DE,US"),
        ("US,DE,US", "DE,US"),
        ("US,@EU", "EU,US"),
    ],
)
def test_subjects_are_normalised_sorted_and_comma_joined(
    policy: Policy, value: str, expected: str
) -> None:
    assert classify(policy, key="k", explicit_subject=value).subject == expected
    assert classify(policy, key="k", bucket_subject=value).subject == expected


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        (
            {"explicit_class": "financial"},
            [
                "x-amz-meta-residency-class: data class 'financial' is not known",
                "did you mean personal.financial?",
                "send one of biometric, genomic, geolocation, government, personal, "
                "personal.financial, personal.health, personal.hr, personal.identifiers, "
                "public, unclassified",
            ],
        ),
        ({"explicit_class": "health"}, ["did you mean personal.health?"]),
        ({"explicit_class": "Personal.Helth"}, ["'personal.helth'", "personal.health"]),
        ({"bucket_class": "hr"}, ["bucket default class", "personal.hr"]),
        ({"explicit_class": "personal health"}, ["is not a data class"]),
        ({"bucket_class": "9lives"}, ["bucket default class", "is not a data class"]),
        ({"explicit_subject": "UK"}, ["x-amz-meta-residency-subject", "did you mean GB?"]),
        ({"explicit_subject": "el"}, ["did you mean GR?"]),
        ({"explicit_subject": "US,UK"}, ["'UK'", "did you mean GB?"]),
        ({"explicit_subject": "XX"}, ["'XX' is not an ISO 3166-1 alpha-2 country code"]),
        ({"bucket_subject": "XX"}, ["bucket default subject"]),
        ({"explicit_subject": "United States"}, ["is not an ISO 3166-1 alpha-2 country code"]),
        ({"explicit_subject": "@NOWHERE"}, ["or a group the policy knows"]),
        ({"explicit_subject": "@EEAA"}, ["did you mean EEA"]),
        ({"explicit_count": "many"}, ["not a whole number"]),
        ({"explicit_count": "1.5"}, ["not a whole number"]),
        ({"explicit_count": -1}, ["must not be negative"]),
        ({"explicit_count": MAX_SUBJECTS + 1}, ["more data subjects than there are people"]),
        ({"explicit_count": "10000000001"}, ["at most 10,000,000,000"]),
    ],
)
def test_unknown_or_malformed_values_are_refused_saying_what_to_send(
    policy: Policy, kwargs: dict[str, object], fragments: list[str]
) -> None:
    with pytest.raises(ClassificationError) as info:
        classify(policy, key="k", **kwargs)  # type: ignore[arg-type]
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_counts_up_to_the_limit_are_kept(policy: Policy) -> None:
    assert MAX_SUBJECTS == 10_000_000_000
    for value, expected in [("0", 0), (" 20000 ", 20000), (MAX_SUBJECTS, MAX_SUBJECTS), ("", None)]:
        assert classify(policy, key="k", explicit_count=value).subject_count == expected  # type: ignore[arg-type]


def test_declared_classes_are_known_only_to_the_policy_that_declares_them() -> None:
    default = load_policy("preset:default")
    with pytest.raises(ClassificationError, match=r"'personal\.hr' is not known to policy default"):
        classify(default, key="k", explicit_class="personal.hr")
