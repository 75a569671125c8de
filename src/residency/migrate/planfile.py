"""The plan file: a header line, one JSON line per action, a summary line (JSON Lines).

Streaming both ways: the planner writes actions as it finds them and the executor reads them
one at a time, so a plan for millions of objects never sits in memory. The summary comes last
and doubles as an end marker: a plan cut short (planner killed, disk full) is refused.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from residency.catalog.facts import LocationFacts
    from residency.policy import Policy

__all__ = [
    "PLAN_FORMAT",
    "PlanAction",
    "PlanError",
    "PlanHeader",
    "StalePlan",
    "Unplaceable",
    "catalog_digest",
    "iter_plan",
    "policy_digest",
    "read_plan_header",
    "shard_id",
    "shard_of",
    "split_plan",
]

PLAN_FORMAT = "residency-plan/1"


class PlanError(Exception):
    """The plan file is missing, malformed or incomplete; the message says which line."""


class StalePlan(PlanError):
    """The plan was made under another policy or catalog than the one in force now."""


_PROVENANCE = frozenset({"source", "sources"})
"""fields that say which file a policy or rule was read from: the same rules read from another
path (relative or absolute) are the same policy"""


def _canonical(value: Any) -> Any:
    """Plain JSON data whose text is the same in every process: sets sorted (their iteration
    order follows string hashing, which is randomised per process), mappings keyed in order,
    provenance left out."""
    if isinstance(value, dict):
        return {
            str(k): _canonical(v)
            for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))
            if k not in _PROVENANCE
        }
    if isinstance(value, set | frozenset):
        items = [_canonical(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True, default=str))
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def policy_digest(policy: Policy) -> str:
    """SHA-256 of the policy as the evaluator sees it: any change to a rule changes it."""
    doc = _canonical(policy.model_dump(mode="python"))
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _data_files(root: Traversable) -> Iterator[tuple[str, bytes]]:
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            for name, data in _data_files(entry):
                yield f"{entry.name}/{name}", data
        elif entry.is_file():
            yield entry.name, entry.read_bytes()


def catalog_digest(facts: Sequence[LocationFacts]) -> str:
    """SHA-256 of the catalog's data files and of the configured locations' facts.

    Both decide where an object may go: a region that moved country, a vendor with a new
    headquarters or a location pointed at another region makes an older plan wrong.
    """
    h = hashlib.sha256()
    for name, data in _data_files(files("residency.catalog").joinpath("data")):
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    for f in sorted(facts, key=lambda f: f.name):
        h.update(json.dumps(_canonical(asdict(f)), sort_keys=True, default=str).encode())
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class PlanHeader:
    id: str
    created: str
    policy: str
    bucket: str | None
    bandwidth: int
    summary: dict[str, Any] = field(default_factory=dict)
    policy_sha256: str | None = None
    """`policy_digest` of the policy the plan was made under (None: a plan from before)"""
    catalog_sha256: str | None = None
    """`catalog_digest` of the catalog and locations the plan was made under"""

    def to_line(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "id": self.id,
            "created": self.created,
            "policy": self.policy,
            "policy_sha256": self.policy_sha256,
            "catalog_sha256": self.catalog_sha256,
            "bucket": self.bucket,
            "bandwidth": self.bandwidth,
        }

    def check_current(self, policy: Policy, facts: Sequence[LocationFacts]) -> None:
        """`StalePlan` unless the plan was made under this policy and these catalog facts."""
        if self.policy_sha256 is None or self.catalog_sha256 is None:
            raise StalePlan(
                f"plan {self.id[:12]} does not record the policy and catalog it was made under "
                "(an older plan); make a new plan with `residency plan` (or run with --replan)"
            )
        changed = []
        if self.policy_sha256 != policy_digest(policy):
            changed.append(f"the policy (planned under {self.policy}, now {policy.name})")
        if self.catalog_sha256 != catalog_digest(facts):
            changed.append("the catalog or the locations")
        if changed:
            raise StalePlan(
                f"plan {self.id[:12]} was made under another policy or catalog: "
                f"{' and '.join(changed)} changed since; make a new plan with `residency plan` "
                "(or run with --replan)"
            )


@dataclass(frozen=True, slots=True)
class PlanAction:
    """Copy one object version from `src` to each of `copy_to`, then drop `delete_from`.

    Any version with bytes, current or not: `version_id` is the internal id the engine loads it
    by; `noncurrent` is S3's version id when it was not the current version at planning (for
    people reading the plan)."""

    bucket: str
    key: str
    version_id: str
    size: int
    segments: int
    src: str | None
    copy_to: tuple[str, ...]
    delete_from: tuple[str, ...]
    rule: str | None = None
    noncurrent: str | None = None

    def to_line(self) -> dict[str, Any]:
        line: dict[str, Any] = {
            "op": "move",
            "bucket": self.bucket,
            "key": self.key,
            "version": self.version_id,
        }
        if self.noncurrent is not None:
            line["noncurrent"] = self.noncurrent
        return line | {
            "size": self.size,
            "segments": self.segments,
            "src": self.src,
            "copy": list(self.copy_to),
            "delete": list(self.delete_from),
            "rule": self.rule,
        }


@dataclass(frozen=True, slots=True)
class Unplaceable:
    """An object version no configured location may hold under the policy: nothing is done
    to it (`noncurrent`: S3's version id when it is not the current version)."""

    bucket: str
    key: str
    version_id: str
    size: int
    placements: tuple[str, ...]
    reason: str
    noncurrent: str | None = None

    def to_line(self) -> dict[str, Any]:
        line: dict[str, Any] = {
            "op": "unplaceable",
            "bucket": self.bucket,
            "key": self.key,
            "version": self.version_id,
        }
        if self.noncurrent is not None:
            line["noncurrent"] = self.noncurrent
        return line | {
            "size": self.size,
            "placements": list(self.placements),
            "reason": self.reason,
        }


def write_line(out: IO[str], record: dict[str, Any]) -> None:
    out.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
    out.write("\n")


def _parse(path: Path, lineno: int, text: str) -> dict[str, Any]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise PlanError(f"{path}:{lineno}: expected a JSON object")
    return record


def _open(path: Path) -> IO[str]:
    try:
        return path.open(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(f"{path}: file not found") from None
    except OSError as exc:
        raise PlanError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_plan_header(path: Path) -> PlanHeader:
    """The header with the summary from the last line; `PlanError` if either is missing."""
    with _open(path) as f:
        first = f.readline()
        if not first.strip():
            raise PlanError(f"{path}: empty file, not a residency plan")
        head = _parse(path, 1, first)
        if head.get("format") != PLAN_FORMAT:
            raise PlanError(
                f"{path}:1: not a residency plan (format {head.get('format')!r}, "
                f"expected {PLAN_FORMAT!r}); create one with `residency plan -o FILE`"
            )
        last = first
        lineno = 1
        for line in f:
            lineno += 1
            if line.strip():
                last = line
    tail = _parse(path, lineno, last)
    if "summary" not in tail:
        raise PlanError(f"{path}: the plan is incomplete (no summary line); plan again")
    try:
        return PlanHeader(
            id=str(head["id"]),
            created=str(head["created"]),
            policy=str(head["policy"]),
            bucket=head.get("bucket"),
            bandwidth=int(head.get("bandwidth") or 0),
            summary=dict(tail["summary"]),
            policy_sha256=_opt_str(head.get("policy_sha256")),
            catalog_sha256=_opt_str(head.get("catalog_sha256")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"{path}:1: malformed plan header ({exc})") from None


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def iter_plan(path: Path) -> Iterator[PlanAction]:
    """Every `move` action in file order; `PlanError` names the first malformed line."""
    with _open(path) as f:
        f.readline()
        for lineno, line in enumerate(f, start=2):
            if not line.strip():
                continue
            record = _parse(path, lineno, line)
            if record.get("op") != "move":
                continue
            try:
                yield PlanAction(
                    bucket=str(record["bucket"]),
                    key=str(record["key"]),
                    version_id=str(record["version"]),
                    size=int(record["size"]),
                    segments=int(record.get("segments", 1)),
                    src=record.get("src"),
                    copy_to=tuple(str(x) for x in record.get("copy", [])),
                    delete_from=tuple(str(x) for x in record.get("delete", [])),
                    rule=record.get("rule"),
                    noncurrent=_opt_str(record.get("noncurrent")),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise PlanError(f"{path}:{lineno}: malformed action ({exc})") from None


def shard_of(bucket: str, key: str, shards: int) -> int:
    """The shard an object's actions belong to: stable across runs and machines, and the same
    for every version of a key, so two shards never work on one object."""
    return zlib.crc32(f"{bucket}/{key}".encode()) % shards


def shard_id(plan_id: str, index: int, shards: int) -> str:
    """The run id of one shard: readable, and within the journal's 64-character run ids."""
    base = plan_id if len(plan_id) <= 40 else hashlib.sha256(plan_id.encode()).hexdigest()[:40]
    return f"{base}-s{index}of{shards}"


def split_plan(path: Path, shards: int, directory: Path) -> list[Path]:
    """Write the plan at `path` as `shards` plans in `directory` (streaming, one pass), each a
    complete plan of its own whose id is `shard_id(...)`; returns their paths in shard order."""
    if not 1 <= shards <= 4096:
        raise ValueError("the number of shards must be between 1 and 4096")
    header = read_plan_header(path)
    paths = [directory / f"shard-{i}-of-{shards}.jsonl" for i in range(shards)]
    counts = [0] * shards
    files = [p.open("w", encoding="utf-8") for p in paths]
    try:
        for i, out in enumerate(files):
            line = header.to_line()
            line["id"] = shard_id(header.id, i, shards)
            write_line(out, line)
        for action in iter_plan(path):
            i = shard_of(action.bucket, action.key, shards)
            write_line(files[i], action.to_line())
            counts[i] += 1
        for i, out in enumerate(files):
            summary = {"shard_of": header.id, "shard": i, "shards": shards, "actions": counts[i]}
            write_line(out, {"summary": summary})
    finally:
        for out in files:
            out.close()
    return paths
