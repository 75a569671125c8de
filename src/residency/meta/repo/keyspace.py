"""The key space of a bucket: S3 key order, prefix ranges, delimiter roll-up."""

from __future__ import annotations

SEEK_BATCH = 32
"""Rows per query while a delimiter may roll keys up: small, because a common prefix ends the
batch early (the rest of it would be keys under that prefix) and the next query seeks past it."""


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with `prefix`.

    Keys compare by code point, which is the UTF-8 byte order S3 lists in. None when no such
    string exists (empty prefix, or one made only of U+10FFFF).
    """
    chars = list(prefix)
    while chars:
        nxt = ord(chars[-1]) + 1
        if 0xD800 <= nxt <= 0xDFFF:  # surrogates never occur in keys; skip over them
            nxt = 0xE000
        if nxt <= 0x10FFFF:
            chars[-1] = chr(nxt)
            return "".join(chars)
        chars.pop()
    return None


def common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    """The common prefix `key` rolls up into under `prefix` and `delimiter`, if any."""
    if not delimiter:
        return None
    i = key.find(delimiter, len(prefix))
    return None if i < 0 else key[: i + len(delimiter)]
