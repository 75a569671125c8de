"""The report as one self-contained HTML page (inline CSS and SVG; no scripts, no network).

Jinja2 with autoescaping on everything: object keys, actors and audit details are user input.
"""

from __future__ import annotations

from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from residency.migrate.units import format_bytes
from residency.report.charts import bar_chart
from residency.report.model import Report
from residency.report.units import usd, when

__all__ = ["render_html"]

KIND_LABELS = {
    "refusal": "Refused writes",
    "access_denied": "Access denials",
    "threshold_hit": "Bulk-data thresholds hit",
}


@cache
def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("residency.report", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["bytes"] = format_bytes
    env.filters["usd"] = usd
    env.filters["when"] = when
    return env


def render_html(report: Report) -> str:
    charts = [
        bar_chart(
            "Bytes held per country",
            [
                (
                    u.label if u.key == u.label else f"{u.label} ({u.key})",
                    u.bytes,
                )
                for u in report.by_country
            ],
        ),
        bar_chart(
            "Bytes held per provider",
            [(u.label, u.bytes) for u in report.by_provider],
        ),
    ]
    return (
        _env()
        .get_template("report.html.j2")
        .render(r=report, charts=charts, kind_labels=KIND_LABELS)
    )
