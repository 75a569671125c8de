"""Classification precedence: headers > bucket defaults > classifiers > default_class."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_helpers import write

from residency.policy import (
    ClassificationError,
    ClassificationRequired,
    Policy,
    classify,
    load_policy,
)

POLICY = """\
name: classified
default_class: unclassified
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
rules:
  - id: any
"""


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return load_policy(write(tmp_path, "p.yaml", POLICY))


def test_classifiers_by_prefix_and_regex(policy: Policy) -> None:
    c = classify(policy, key="patients/123.json")
    assert (c.data_class, c.subject, c.subject_count) == ("personal.health", "US", None)
    assert c.source.startswith("classifier prefix 'patients/' at ")
    c = classify(policy, key="users/fr/42")
    assert (c.data_class, c.subject) == ("personal", "EU")
    assert c.source.startswith("classifier regex")


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


def test_default_class_and_unknown_subject(policy: Policy) -> None:
    c = classify(policy, key="misc/readme.txt")
    assert (c.data_class, c.subject, c.source) == ("unclassified", None, "default")


def test_required_classification(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, "p.yaml", POLICY + "require_classification: true\n"))
    assert classify(p, key="patients/1").data_class == "personal.health"
    with pytest.raises(ClassificationRequired, match="x-amz-meta-residency-class"):
        classify(p, key="misc/readme.txt", explicit_subject="US")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"explicit_class": "personal health"}, "is not a data class"),
        ({"bucket_class": "9lives"}, "bucket default class"),
        ({"explicit_subject": "United States"}, "not an ISO country code"),
        ({"explicit_subject": "@NOWHERE"}, "or a known group"),
        ({"explicit_count": "many"}, "not a whole number"),
        ({"explicit_count": -1}, "must not be negative"),
    ],
)
def test_malformed_values_are_rejected(
    policy: Policy, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ClassificationError, match=message):
        classify(policy, key="k", **kwargs)  # type: ignore[arg-type]
