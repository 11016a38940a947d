"""Shortening text for humans: one rule (cut, end with an ellipsis) used by cards, tickets,
audit rows and the CLI, so every place that truncates does it the same way."""

from __future__ import annotations

import re

ELLIPSIS = "…"
# CSI sequences (colours, cursor moves) that tools such as dbt print into their error text
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, the last one an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + ELLIPSIS


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour codes: a card or an e-mail would show them as boxes."""
    return _ANSI_ESCAPE.sub("", text)
