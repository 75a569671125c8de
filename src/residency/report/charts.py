"""Horizontal bar charts as plain geometry; the template draws them as inline SVG.

No JavaScript and no fonts to fetch: the report must open offline, print, and survive being
forwarded as an e-mail attachment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from residency.migrate.units import format_bytes

PALETTE = ("#1f5f99", "#2f8f5b", "#c9822b", "#8a4fb0", "#c0433f", "#3a9ca6", "#7a6a3a")
ROW = 26
LABEL_W = 220
BAR_W = 420
VALUE_W = 110
TOP_ROWS = 12


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value_text: str
    y: int
    width: float
    colour: str


@dataclass(frozen=True, slots=True)
class BarChart:
    title: str
    bars: tuple[Bar, ...]
    width: int
    height: int
    label_w: int = LABEL_W
    bar_w: int = BAR_W
    row: int = ROW


def bar_chart(title: str, rows: Sequence[tuple[str, int]], *, limit: int = TOP_ROWS) -> BarChart:
    """Bars for (label, bytes) rows, largest first; beyond `limit` rows they are summed."""
    ordered = sorted(rows, key=lambda r: (-r[1], r[0]))
    if len(ordered) > limit:
        rest = sum(v for _, v in ordered[limit - 1 :])
        ordered = [*ordered[: limit - 1], (f"{len(ordered) - limit + 1} more", rest)]
    peak = max((v for _, v in ordered), default=0)
    bars = tuple(
        Bar(
            label=label,
            value_text=format_bytes(value),
            y=i * ROW,
            width=(value / peak * BAR_W) if peak else 0.0,
            colour=PALETTE[i % len(PALETTE)],
        )
        for i, (label, value) in enumerate(ordered)
    )
    return BarChart(title, bars, LABEL_W + BAR_W + VALUE_W, max(len(bars), 1) * ROW + 4)
