"""Money and time as a compliance officer reads them (bytes: `migrate.units.format_bytes`)."""

from __future__ import annotations

from datetime import datetime

from residency.audit.canonical import parse_ts


def usd(amount: float) -> str:
    if 0 < amount < 0.01:
        return "< $0.01"
    return f"${amount:,.2f}"


def when(ts: str) -> str:
    """'2026-11-23T10:37:55.242795Z' -> '2026-11-23 10:37:55 UTC'; the JSON keeps it exact."""
    try:
        moment: datetime = parse_ts(ts)
    except ValueError:
        return ts
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
