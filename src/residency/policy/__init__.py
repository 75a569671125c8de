"""Residency policy: where may an object live? Load YAML policies, classify, evaluate (pure)."""

from residency.policy.classify import Classification, classify
from residency.policy.errors import (
    ClassificationError,
    ClassificationRequired,
    PolicyError,
    Problem,
)
from residency.policy.evaluate import Decision, Exclusion, ObjectAttrs, evaluate, matching_rule
from residency.policy.loader import list_presets, load_policy
from residency.policy.model import (
    DATA_CLASSES,
    Classifier,
    Constraints,
    CountryTerm,
    Match,
    Policy,
    Preference,
    Rule,
)
from residency.policy.presets import preset_names

__all__ = [
    "DATA_CLASSES",
    "Classification",
    "ClassificationError",
    "ClassificationRequired",
    "Classifier",
    "Constraints",
    "CountryTerm",
    "Decision",
    "Exclusion",
    "Match",
    "ObjectAttrs",
    "Policy",
    "PolicyError",
    "Preference",
    "Problem",
    "Rule",
    "classify",
    "evaluate",
    "list_presets",
    "load_policy",
    "matching_rule",
    "preset_names",
]
