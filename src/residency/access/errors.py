"""Errors of the access layer: each message is one readable line (or a few, one per problem)."""

from __future__ import annotations


class AccessError(Exception):
    """Base of every error this layer raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PolicyFileError(AccessError):
    """Cedar policy files that do not parse or do not validate against the residency schema.

    `problems` holds one `file:line: policy id: message` string per problem, in file order.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


class BulkRulesError(AccessError):
    """A bulk-threshold file (28 CFR 202.205 categories) is missing or malformed."""


class RequestError(AccessError):
    """An authorization request names something that cannot be expressed (bad context...)."""
