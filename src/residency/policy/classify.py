"""Decide an object's data class and subject jurisdiction before the policy is evaluated.

Each field is taken from the first source that gives it: explicit request values (headers or
tags) > bucket defaults > the policy's classifiers (first matching classifier that sets the
field) > `default_class` (for the class; the subject then stays unknown).
"""

from __future__ import annotations

from dataclasses import dataclass

from residency.policy.errors import ClassificationError, ClassificationRequired
from residency.policy.model import COUNTRY_RE, DATA_CLASS_RE, Policy

CLASS_HEADER = "x-amz-meta-residency-class"
SUBJECT_HEADER = "x-amz-meta-residency-subject"
COUNT_HEADER = "x-amz-meta-residency-subjects"


@dataclass(frozen=True, slots=True)
class Classification:
    data_class: str
    subject: str | None
    subject_count: int | None
    source: str  # where the data class came from: header, bucket, classifier ..., default


def classify(
    policy: Policy,
    *,
    key: str,
    explicit_class: str | None = None,
    explicit_subject: str | None = None,
    explicit_count: int | str | None = None,
    bucket_class: str | None = None,
    bucket_subject: str | None = None,
    bucket: str | None = None,
) -> Classification:
    """Classify one object; `ClassificationError` for malformed values, `...Required` if unset."""
    data_class, source = _first(
        (normalize_class(explicit_class, CLASS_HEADER), "header"),
        (normalize_class(bucket_class, "bucket default class"), "bucket"),
    )
    subject, _ = _first(
        (normalize_subject(policy, explicit_subject, SUBJECT_HEADER), "header"),
        (normalize_subject(policy, bucket_subject, "bucket default subject"), "bucket"),
    )
    for c in policy.classifiers:
        if (data_class is None or subject is None) and c.matches(key, bucket):
            if data_class is None and c.data_class is not None:
                data_class, source = c.data_class, c.describe()
            if subject is None and c.subject is not None:
                subject = c.subject
    if data_class is None:
        if policy.require_classification:
            raise ClassificationRequired(
                f"policy {policy.name} requires every object to be classified and nothing "
                f"classified {key!r}: send the {CLASS_HEADER} header (e.g. personal.health) "
                f"with {SUBJECT_HEADER} (e.g. US), or set a default class on the bucket"
            )
        data_class, source = policy.default_class, "default"
    return Classification(data_class, subject, normalize_count(explicit_count), source)


def normalize_class(value: str | None, what: str) -> str | None:
    if value is None or not value.strip():
        return None
    v = value.strip().lower()
    if not DATA_CLASS_RE.match(v):
        raise ClassificationError(
            f"{what}: {value!r} is not a data class (dotted lowercase, e.g. personal.health)"
        )
    return v


def normalize_subject(policy: Policy, value: str | None, what: str) -> str | None:
    """`us` -> `US`, `@eea` -> `EEA`; must be a 2-letter code or a group the policy knows."""
    if value is None or not value.strip():
        return None
    v = value.strip().lstrip("@").upper()
    if v in policy.groups or COUNTRY_RE.match(v):
        return v
    raise ClassificationError(
        f"{what}: {value!r} is not an ISO country code (e.g. US) or a known group (e.g. EEA)"
    )


def normalize_count(value: int | str | None) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        n = int(value)
    except ValueError:
        raise ClassificationError(
            f"{COUNT_HEADER}: {value!r} is not a whole number of data subjects"
        ) from None
    if n < 0:
        raise ClassificationError(f"{COUNT_HEADER}: {value!r} must not be negative")
    return n


def _first(*options: tuple[str | None, str]) -> tuple[str | None, str]:
    for value, source in options:
        if value is not None:
            return value, source
    return None, ""
