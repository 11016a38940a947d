"""A few rows a failing check found, as every receiver may show them: bounded and redacted.

A source (dbt, :mod:`dagster_monitoring.checks.dbt_failing_rows`) puts a sample under the
event detail ``failing_rows``; the presenter shows it as a table (Teams, e-mail HTML) and as
aligned text (plain-text e-mail, tickets). What leaves the warehouse is bounded (rows, columns,
characters per cell, bytes in all) and redacted: secret-looking values through
:func:`~dagster_monitoring.alerting.redact.redact`, and every value of a column whose name says
it is sensitive (``password``, ``token``, ``ssn``...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .redact import redact
from .text import truncate

__all__ = ["MASK", "SENSITIVE_COLUMNS", "FailingRows", "bound_rows"]

# Column names whose values never leave the warehouse (matched anywhere in the name, any case).
SENSITIVE_COLUMNS = r"pass(word|wd)?|secret|token|api_?key|credential|ssn|social_security|iban|card_?number|cvv|\bpin\b"
MASK = "[redacted]"
MAX_ROWS = 5
MAX_COLUMNS = 6
MAX_CELL = 60  # characters: 6 cells of 60 fit a card at 390 px once wrapped
MAX_BYTES = 1500  # of the sample as JSON: a card stays far below Teams' 28 KB with it


@dataclass(frozen=True)
class FailingRows:
    """What a card shows: column names, a few rows of text cells, and how much was left out."""

    columns: list[str]
    rows: list[list[str | None]]
    total: int | None  # rows the test found (dbt's ``failures``), when known
    hidden_columns: int = 0
    source: str = "test query"  # or "stored failures"

    @property
    def caption(self) -> str:
        shown = len(self.rows)
        of = f" of {self.total:,}" if self.total is not None and self.total > shown else ""
        more = f", {self.hidden_columns} more column{'s' if self.hidden_columns != 1 else ''}" if self.hidden_columns else ""
        return f"Failing rows ({shown}{of}{more})"

    def as_text(self) -> str:
        """An aligned plain-text table (e-mail text part, tickets, a card's fallback)."""
        shown = [["NULL" if v is None else v for v in row] for row in self.rows]
        widths = [max(len(c), *(len(r[i]) for r in shown)) if shown else len(c) for i, c in enumerate(self.columns)]
        lines = [" | ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True)).rstrip()]
        lines.append("-+-".join("-" * w for w in widths))
        lines += [" | ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)).rstrip() for row in shown]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FailingRows | None:
        """The sample stored in an event's details, or None when it is not one (a user's own key)."""
        try:
            columns = [str(c) for c in data["columns"]]
            rows = [[None if v is None else str(v) for v in row] for row in data["rows"]]
        except (KeyError, TypeError):
            return None
        total = data.get("total")
        return cls(
            columns,
            rows,
            int(total) if isinstance(total, (int, float)) else None,
            int(data.get("hidden_columns") or 0),
            str(data.get("source") or "test query"),
        )


def _cell(value: Any, max_cell: int) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return truncate(redact(" ".join(text.split())), max_cell)


def bound_rows(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    total: int | None = None,
    source: str = "test query",
    max_rows: int = MAX_ROWS,
    max_columns: int = MAX_COLUMNS,
    max_cell: int = MAX_CELL,
    max_bytes: int = MAX_BYTES,
    sensitive: str = SENSITIVE_COLUMNS,
) -> FailingRows:
    """The rows as a card may show them: at most ``max_rows`` x ``max_columns`` cells of
    ``max_cell`` characters, sensitive columns masked, and fewer rows until the JSON fits ``max_bytes``."""
    secret = re.compile(sensitive, re.IGNORECASE)
    names = [truncate(str(c), max_cell) for c in columns]
    keep = names[:max_columns]
    masked = [bool(secret.search(c)) for c in keep]
    cells = [[MASK if masked[i] and row[i] is not None else _cell(row[i], max_cell) for i in range(len(keep))] for row in rows[:max_rows]]
    sample = FailingRows(keep, cells, total, len(names) - len(keep), source)
    while sample.rows and len(json.dumps(sample.to_json(), ensure_ascii=False).encode()) > max_bytes:
        sample = FailingRows(keep, sample.rows[:-1], total, sample.hidden_columns, source)
    return sample
