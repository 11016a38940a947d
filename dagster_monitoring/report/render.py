"""The report as one self-contained HTML page (Jinja2, inline CSS and SVG, nothing fetched) and
as plain text (the digest's text part).

The heatmap is a table of coloured cells rather than an image, so it survives mail clients that
drop SVG; the p95 trends are small inline SVG polylines with their figures written next to them.
Every value from the trail is escaped by Jinja2's autoescape.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from ..alerting.redact import redact
from ..alerting.text import truncate
from .data import SEVERITIES, JobTrend, ReportData

_HEAT = ("#dcfce7", "#fde68a", "#fdba74", "#f87171", "#b91c1c")  # 0, 1, 2-3, 4-7, 8+
_NO_OUTCOME = "#f1f5f9"


def heat_colour(failures: int | None) -> str:
    if failures is None:
        return _NO_OUTCOME
    if not failures:
        return _HEAT[0]
    return _HEAT[1] if failures == 1 else _HEAT[2] if failures <= 3 else _HEAT[3] if failures <= 7 else _HEAT[4]


def sparkline(points: tuple[tuple[date, float], ...], width: int = 140, height: int = 28) -> Markup:
    """An inline SVG polyline of the p95 per day (min..max scaled to the box), last point marked."""
    if not points:
        return Markup("")
    values = [v for _, v in points]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = (width - 4) / max(1, len(values) - 1)
    xy = [(2 + i * step, height - 2 - (v - low) / span * (height - 4)) for i, v in enumerate(values)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    last_x, last_y = xy[-1]
    return Markup(
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="p95 from {low:.0f}s to {high:.0f}s">'
        f'<polyline fill="none" stroke="#2563eb" stroke-width="1.5" points="{path}"/>'
        f'<circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="2.5" fill="#dc2626"/></svg>'
    )


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return "" if value is None else str(value)


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f} s" if value < 600 else f"{value / 60:.0f} min"


def _text(value: Any, limit: int = 300) -> str:
    return "" if value is None else truncate(redact(str(value)), limit)


def _ratio(trend: JobTrend) -> str:
    return f"×{trend.ratio:.2f}" if trend.ratio is not None else ""


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("dagster_monitoring.report", "templates"),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(when=_when, seconds=_seconds, text=_text, heat=heat_colour, spark=sparkline, ratio=_ratio)
    env.globals["SEVERITIES"] = SEVERITIES
    return env


def render_html(data: ReportData, title: str = "Dagster on-call report") -> str:
    return environment().get_template("report.html.j2").render(r=data, title=title)


def render_text(data: ReportData, title: str = "Dagster on-call report") -> str:
    env = environment()
    env.autoescape = False  # plain text: nothing to escape
    return env.get_template("report.txt.j2").render(r=data, title=title)


def write_report(data: ReportData, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(data), encoding="utf-8")
    return out
