"""Shortening text for humans: one rule (cut, end with an ellipsis) used by cards, tickets,
audit rows and the CLI, so every place that truncates does it the same way."""

from __future__ import annotations

ELLIPSIS = "…"


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, the last one an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + ELLIPSIS
