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


class BucketPolicyError(PolicyError):
    """The policy a bucket adds to the operator's (`residency bucket policy`) cannot be loaded:
    the file was moved away or no longer validates. What it would add is unknown, so nothing
    in that bucket can be judged (the gateway refuses its writes; the CLI stops)."""

    def __init__(self, bucket: str | None, spec: str, cause: PolicyError) -> None:
        super().__init__(list(cause.problems))
        self.bucket = bucket
        self.spec = spec

    @property
    def message(self) -> str:
        """One line: the bucket, its policy and the first reason (and how many more)."""
        first = self._reason(self.problems[0]) if self.problems else "unknown reason"
        more = f" (and {len(self.problems) - 1} more problems)" if len(self.problems) > 1 else ""
        return (
            f"bucket {self.bucket}: its policy {self.spec} cannot be loaded: {first}{more}; fix "
            f"the file, or change the bucket's policy (residency bucket policy {self.bucket} "
            "preset:NAME|FILE|--clear)"
        )

    def _reason(self, problem: Problem) -> str:
        """A problem without the file name when it is the policy's own (already named)."""
        if problem.file != self.spec:
            return str(problem).replace("\n", " ")
        where = f"line {problem.line}: " if problem.line is not None else ""
        what = f"{problem.path}: {problem.message}" if problem.path else problem.message
        return f"{where}{what}".replace("\n", " ")


class ClassificationError(ValueError):
    """A data class, subject or subject count supplied for an object is malformed."""


class ClassificationRequired(ClassificationError):
    """The policy requires every object to be classified and nothing classified this one."""
