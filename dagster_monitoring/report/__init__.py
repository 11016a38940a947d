"""The on-call report (one self-contained HTML page) and the digest that mails it on a schedule."""

from .data import ReportData, ReportFilters, fetch_report
from .render import render_html, render_text, write_report

__all__ = ["ReportData", "ReportFilters", "fetch_report", "render_html", "render_text", "write_report"]
