"""Residency policy: where may an object live? Load YAML policies, classify, evaluate (pure)."""

from residency.policy.classify import Classification, classify
from residency.policy.errors import (
    ClassificationError,
    ClassificationRequired,
    PolicyError,
    Problem,
)
from residency.policy.evaluate import (
    AppliedRule,
    Decision,
    Exclusion,
    ObjectAttrs,
    applicable_rules,
    evaluate,
)
from residency.policy.loader import list_presets, load_policy
from residency.policy.model import (
    DATA_CLASSES,
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
from residency.policy.presets import preset_names

__all__ = [
    "DATA_CLASSES",
    "AppliedRule",
    "Classification",
    "ClassificationError",
    "ClassificationRequired",
    "Classifier",
    "Constraints",
    "CountryTerm",
    "Decision",
    "Exclusion",
    "ObjectAttrs",
    "Placement",
    "Policy",
    "PolicyError",
    "PolicyException",
    "Preference",
    "Problem",
    "Rule",
    "Scope",
    "applicable_rules",
    "classify",
    "evaluate",
    "list_presets",
    "load_policy",
    "preset_names",
]
