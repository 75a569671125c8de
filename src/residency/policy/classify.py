"""Decide an object's data class and subject jurisdiction before the policy is evaluated.

Each field is taken from the first source that gives it: explicit request values (headers or
tags) > bucket defaults > the policy's classifiers (first matching classifier that sets the
field) > `default_class` (for the class; the subject then stays unknown).

Values are checked against the policy here, so an unknown class or subject is a clear error
at the edge (400 at the gateway, "unclassifiable" in adopt) and never reaches the evaluator.
"""

from __future__ import annotations

from dataclasses import dataclass

from residency.policy.errors import ClassificationError, ClassificationRequired
from residency.policy.evaluate import check_class, check_subject
from residency.policy.model import DATA_CLASS_RE, Policy

CLASS_HEADER = "x-amz-meta-residency-class"
SUBJECT_HEADER = "x-amz-meta-residency-subject"
COUNT_HEADER = "x-amz-meta-residency-subjects"
MAX_SUBJECT_CHARS = 512  # the version row's subject column
MAX_SUBJECTS = 10_000_000_000  # more than everyone alive: also keeps counts inside 2**53


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
        (normalize_class(policy, explicit_class, CLASS_HEADER), "header"),
        (normalize_class(policy, bucket_class, "bucket default class"), "bucket"),
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


def normalize_class(policy: Policy, value: str | None, what: str) -> str | None:
    """`Personal.Health` -> `personal.health`; must be in the policy's class vocabulary."""
    if value is None or not value.strip():
        return None
    v = value.strip().lower()
    if not DATA_CLASS_RE.match(v):
        raise ClassificationError(
            f"{what}: {value!r} is not a data class (dotted lowercase, e.g. personal.health)"
        )
    problem = check_class(policy, v)
    if problem is not None:
        raise ClassificationError(f"{what}: {problem}")
    return v


def normalize_subject(policy: Policy, value: str | None, what: str) -> str | None:
    """`us` -> `US`, `@eea` -> `EEA`, `de, us` -> `DE,US`: ISO codes or groups the policy knows."""
    if value is None or not value.strip():
        return None
    parts = sorted({p.strip().lstrip("@").upper() for p in value.split(",") if p.strip()})
    if not parts:
        return None
    joined = ",".join(parts)
    if len(joined) > MAX_SUBJECT_CHARS:
        raise ClassificationError(
            f"{what}: {len(parts)} subjects do not fit in {MAX_SUBJECT_CHARS} characters; "
            "name a group (e.g. EU) instead of its members"
        )
    problem = check_subject(policy, joined)
    if problem is not None:
        raise ClassificationError(f"{what}: {problem}")
    return joined


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
    if n > MAX_SUBJECTS:
        raise ClassificationError(
            f"{COUNT_HEADER}: {value!r} is more data subjects than there are people "
            f"(at most {MAX_SUBJECTS:,})"
        )
    return n


def _first(*options: tuple[str | None, str]) -> tuple[str | None, str]:
    for value, source in options:
        if value is not None:
            return value, source
    return None, ""
