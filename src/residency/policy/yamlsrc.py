"""Reading YAML the way policy and case files need it: plain values, and the line of any field.

Both the policy loader and the case-table runner report problems as `file:line: field.path`,
so they share how a field path maps to a line and how ruamel's round-trip types become the
plain values strict pydantic validation expects.
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarbool import ScalarBoolean

Loc = tuple[str | int, ...]


def plain(node: Any) -> Any:
    """ruamel's round-trip types -> plain Python, so strict validation sees ordinary values."""
    if isinstance(node, dict):
        return {str(k) if isinstance(k, str) else k: plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, bool | ScalarBoolean):  # an anchored boolean is a ScalarBoolean (an int)
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def node_line(tree: Any, loc: Loc) -> int:
    """The 1-based line of the deepest part of `loc` that exists in `tree`."""
    node = tree
    line = 0
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0]
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0]
            node = node[part]
        else:
            break
    return int(line) + 1


def format_loc(loc: Loc) -> str:
    """`("rules", 2, "scope")` -> `rules[2].scope`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
