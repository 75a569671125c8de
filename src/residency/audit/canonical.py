"""The canonical, stable byte encoding of an audit entry and the hash chain over it.

An entry's hash is ``sha256(bytes.fromhex(prev_hash) || C(entry))`` in lowercase hex, where the
first entry's ``prev_hash`` is 64 zeros (`GENESIS_HASH`) and ``C`` is RFC 8785 (JSON
Canonicalization Scheme) of this object::

    {"v": 1, "seq": 7, "ts": "2026-11-23T09:22:07.123456Z", "kind": "placement",
     "actor": "...", "tenant": "..." | null, "target": "...", "detail": {...} | null}

that is: UTF-8, no insignificant whitespace, object keys sorted by their UTF-16 code units,
strings escaped as JSON requires and nothing more. ``ts`` is RFC 3339 in UTC with exactly six
fraction digits and a ``Z``. Numbers in ``detail`` must be integers within ±(2**53 - 1): floats
have no single textual form across languages (RFC 8785 needs ECMAScript's), so they are refused
rather than hashed in a form another verifier might not reproduce; send amounts as strings.

With that restriction any RFC 8785 implementation reproduces these bytes, so an auditor can
verify an export (`residency audit export`) with their own tools. Changing anything here
breaks every existing chain: bump ``v`` and keep the old encoder instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

ENCODING_VERSION = 1
GENESIS_HASH = "0" * 64
MAX_SAFE_INTEGER = 2**53 - 1


class CanonicalEncodingError(ValueError):
    """A value cannot be encoded canonically (a float, a non-string key, a huge integer, ...)."""


def as_utc(ts: datetime) -> datetime:
    """`ts` as an aware UTC datetime; naive values are UTC already (as SQLite returns them)."""
    if ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


def format_ts(ts: datetime) -> str:
    """RFC 3339, UTC, microseconds, ``Z``: one spelling per instant."""
    return as_utc(ts).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> datetime:
    """Inverse of `format_ts` (accepts any ISO 8601 offset; naive means UTC)."""
    return as_utc(datetime.fromisoformat(text))


def read_ts(raw: object) -> datetime:
    """A timestamp as the database driver hands it over, unprocessed: a datetime (PostgreSQL)
    or ISO text (SQLite). Anything else is a ValueError, so tampered rows are reported, not
    crashed on."""
    if isinstance(raw, datetime):
        return as_utc(raw)
    if isinstance(raw, str):
        return parse_ts(raw)
    raise ValueError(f"timestamp {raw!r} is not a time")


def _encode(value: Any, out: list[str], path: str) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise CanonicalEncodingError(
                f"{path}: integer {value} is outside ±(2**53 - 1); send it as a string"
            )
        out.append(str(int(value)))
    elif isinstance(value, float):
        raise CanonicalEncodingError(
            f"{path}: floats have no canonical form; send {value!r} as a string or an integer"
        )
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise CanonicalEncodingError(f"{path}: object key {key!r} is not a string")
        out.append("{")
        for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be"))):
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _encode(value[key], out, f"{path}.{key}")
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out, f"{path}[{i}]")
        out.append("]")
    else:
        raise CanonicalEncodingError(
            f"{path}: {type(value).__name__} is not JSON; use str, int, bool, None, list or dict"
        )


def _plain(value: Any) -> bool:
    """True when the C encoder's output is already RFC 8785: dicts with ASCII keys (code-point
    and UTF-16 order agree), lists, strings, bools, None and safe integers, nothing else."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if item is None or kind is str or kind is bool:
            continue
        if kind is int:
            if abs(item) > MAX_SAFE_INTEGER:
                return False
        elif kind is dict:
            for key in item:
                if type(key) is not str or not key.isascii():
                    return False
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        else:
            return False
    return True


def canonical_json(value: Any, *, path: str = "value") -> bytes:
    """RFC 8785 bytes of `value` (JSON without floats).

    Audit entries are hashed on every write, so the common case goes through the C encoder;
    anything `_plain` does not vouch for takes the explicit encoder, which also names the
    offending path in its error.
    """
    if _plain(value):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    else:
        out: list[str] = []
        _encode(value, out, path)
        text = "".join(out)
    # Lone surrogates have no UTF-8 form: refuse them rather than hash a replacement.
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonicalEncodingError(f"{path}: not valid Unicode text ({exc.reason})") from None


def entry_document(
    *,
    seq: int,
    ts: datetime,
    kind: str,
    actor: str,
    tenant: str | None,
    target: str,
    detail: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The object whose canonical bytes an entry's hash commits to."""
    return {
        "v": ENCODING_VERSION,
        "seq": seq,
        "ts": format_ts(ts),
        "kind": kind,
        "actor": actor,
        "tenant": tenant,
        "target": target,
        "detail": detail,
    }


def chain_hash(prev_hash: str, document: Mapping[str, Any]) -> str:
    """``sha256(prev_hash || canonical(document))`` as lowercase hex."""
    digest = hashlib.sha256(bytes.fromhex(prev_hash))
    digest.update(canonical_json(document, path="entry"))
    return digest.hexdigest()


def is_hash(text: object) -> bool:
    """True for 64 lowercase hex digits, the only spelling a stored hash may have."""
    return isinstance(text, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text)
