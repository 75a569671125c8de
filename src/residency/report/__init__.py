"""Compliance reports: where the data is, what is out of policy, what fixing it costs."""

from residency.report.collect import collect_report
from residency.report.model import Report
from residency.report.render import render_html

__all__ = ["Report", "collect_report", "render_html"]
