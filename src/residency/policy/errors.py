"""Errors of the policy engine: each one says what to fix and where."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a policy file, located to the line and field that caused it."""

    file: str
    line: int | None  # 1-based; None when the file could not be read at all
    path: str  # dotted field path, e.g. "rules[2].constraints.deny_countries[0]"
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PolicyError(Exception):
    """A policy file (or preset) is invalid. `str()` is one `file:line: field: why` per problem."""

    def __init__(self, problems: list[Problem] | Problem) -> None:
        self.problems: tuple[Problem, ...] = (
            (problems,) if isinstance(problems, Problem) else tuple(problems)
        )
        super().__init__("\n".join(str(p) for p in self.problems))


class ClassificationError(ValueError):
    """A data class, subject or subject count supplied for an object is malformed."""


class ClassificationRequired(ClassificationError):
    """The policy requires every object to be classified and nothing classified this one."""
