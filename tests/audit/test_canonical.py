"""The canonical encoding: stable bytes, RFC 8785 ordering, and refusal of what has no one form."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from residency.audit.canonical import (
    GENESIS_HASH,
    CanonicalEncodingError,
    canonical_json,
    chain_hash,
    entry_document,
    format_ts,
    parse_ts,
)

TS = datetime(2026, 11, 23, 9, 22, 7, 123456, tzinfo=UTC)


def _document() -> dict[str, object]:
    return entry_document(
        seq=1,
        ts=TS,
        kind="placement",
        actor="alice",
        tenant="acme",
        target="photos/cat.jpg",
        detail={"rule": "eu-personal", "chosen": ["eu-1", "eu-2"], "size": 12},
    )


def test_document_bytes_are_pinned() -> None:
    # The exact bytes every existing chain depends on: changing them is a breaking change.
    assert canonical_json(_document()) == (
        b'{"actor":"alice","detail":{"chosen":["eu-1","eu-2"],"rule":"eu-personal","size":12},'
        b'"kind":"placement","seq":1,"target":"photos/cat.jpg","tenant":"acme",'
        b'"ts":"2026-11-23T09:22:07.123456Z","v":1}'
    )


def test_hash_is_sha256_of_prev_hash_bytes_and_document() -> None:
    doc = _document()
    independent = hashlib.sha256(
        bytes(32) + json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert chain_hash(GENESIS_HASH, doc) == independent
    prev = "ab" * 32
    assert (
        chain_hash(prev, doc)
        == hashlib.sha256(bytes.fromhex(prev) + canonical_json(doc)).hexdigest()
    )
    assert chain_hash(prev, doc) != chain_hash(GENESIS_HASH, doc)


def test_keys_sort_by_utf16_code_units_as_rfc8785_says() -> None:
    # RFC 8785 section 3.2.3: the sorted order of these property names.
    keys = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    encoded = canonical_json({k: 0 for k in keys}).decode()
    order = [k for k, _ in json.loads(encoded, object_pairs_hook=list)]
    assert order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_strings_are_utf8_not_escaped() -> None:
    assert canonical_json({"k": 'é\u2028\n"\\'}) == '{"k":"é\u2028\\n\\"\\\\"}'.encode()


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ({"cost": 0.1}, "floats"),
        ({"nan": float("nan")}, "floats"),
        ({"big": 2**53}, "outside"),
        ({1: "x"}, "not a string"),
        ({"when": TS}, "datetime is not JSON"),
        ({"bad": "\ud800"}, "not valid Unicode"),
    ],
)
def test_values_without_one_canonical_form_are_refused(value: object, complaint: str) -> None:
    with pytest.raises(CanonicalEncodingError, match=complaint):
        canonical_json(value)


def test_integers_at_the_safe_limit_are_fine() -> None:
    assert canonical_json([2**53 - 1, -(2**53 - 1), True, None]) == (
        b"[9007199254740991,-9007199254740991,true,null]"
    )


def test_timestamps_have_one_spelling() -> None:
    assert format_ts(TS) == "2026-11-23T09:22:07.123456Z"
    assert format_ts(TS.replace(microsecond=0)) == "2026-11-23T09:22:07.000000Z"
    cet = TS.astimezone(timezone(timedelta(hours=1)))
    assert format_ts(cet) == format_ts(TS)
    assert format_ts(TS.replace(tzinfo=None)) == format_ts(TS)  # naive means UTC
    assert parse_ts(format_ts(TS)) == TS


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_json_values)
def test_fast_path_matches_the_explicit_encoder(value: object) -> None:
    """The C-encoder path and the explicit RFC 8785 encoder agree byte for byte."""
    from residency.audit.canonical import _encode

    out: list[str] = []
    try:
        _encode(value, out, "value")
        expected: bytes | None = "".join(out).encode("utf-8")
    except UnicodeEncodeError:
        expected = None
    if expected is None:
        with pytest.raises(CanonicalEncodingError):
            canonical_json(value)
    else:
        assert canonical_json(value) == expected
