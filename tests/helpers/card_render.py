"""Rendering Teams cards for real in tests: the preview page (dagster_monitoring/card_preview.html)
in headless Chromium, and what its dumped DOM shows, card by card.

Needs Debian ``chromium`` and ``npm ci --prefix tests/render`` (scripts/install_system_deps.sh).
Without them the tests skip on a workstation and fail in CI (``CI`` set).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from dagster_monitoring.card_preview import LOCAL_RENDERER, WIDTH, card_page, dump_dom, find_chromium, page_result

REPO = Path(__file__).resolve().parents[2]
ADAPTIVECARDS_JS = LOCAL_RENDERER / "dist" / "adaptivecards.min.js"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_renderer() -> str:
    """The Chromium executable; skip (workstation) or fail (CI) when a tool is missing."""
    exe = find_chromium()
    missing = []
    if not exe:
        missing.append("Debian chromium")
    if not ADAPTIVECARDS_JS.is_file():
        missing.append(f"{ADAPTIVECARDS_JS.relative_to(REPO)} (npm ci --prefix tests/render)")
    if missing:
        message = f"card rendering needs {' and '.join(missing)}; run scripts/install_system_deps.sh"
        if _in_ci():
            pytest.fail(message)
        pytest.skip(message)
    assert exe is not None
    return exe


@dataclass
class RenderedCard:
    """One div.dm-card of the dumped DOM, and what the page measured about it (``result``)."""

    texts: list[str] = field(default_factory=list)
    buttons: list[dict[str, str]] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)  # inline styles of .ac-container elements, document order
    elements: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # every element: tag, attributes
    result: dict[str, Any] = field(default_factory=dict)  # parseEvents, validation, actions, width, overflow

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.texts).split())

    def button(self, label: str) -> dict[str, str]:
        matches = [b for b in self.buttons if b["text"] == label]
        assert len(matches) == 1, f"expected one {label!r} button, got {self.buttons}"
        return matches[0]

    def header_rgb(self) -> tuple[int, int, int]:
        """Background of the first container inside the card root (the coloured header)."""
        match = re.search(r"background-color:\s*rgb\((\d+),\s*(\d+),\s*(\d+)\)", self.containers[1])
        assert match, self.containers[:2]
        r, g, b = (int(x) for x in match.groups())
        return r, g, b


class RenderedPage(HTMLParser):
    """What --dump-dom shows: every div.dm-card (text, buttons, elements), the page's result JSON,
    and the tags of every element outside the cards."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.cards: list[RenderedCard] = []
        self.outside: list[str] = []  # tags outside the cards (the page's own scripts, ...)
        self.result_json = ""
        self.rendered_flag: str | None = None
        self._card: RenderedCard | None = None
        self._depth = 0  # >0 while inside a div.dm-card
        self._button: dict[str, str] | None = None
        self._in_result = False
        self.feed(dom)
        self.close()
        self.result: dict[str, Any] = json.loads(self.result_json) if self.result_json else {}
        for card, measured in zip(self.cards, self.result.get("cards", []), strict=False):
            card.result = measured

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.rendered_flag = a.get("data-dm-rendered")
        if tag == "pre" and a.get("id") == "dm-result":
            self._in_result = True
        if self._card is None:
            if tag == "div" and "dm-card" in a.get("class", "").split():
                self._card = RenderedCard()
                self.cards.append(self._card)
                self._depth = 1
            else:
                self.outside.append(tag)
            return
        self._card.elements.append((tag, a))
        if tag not in VOID:
            self._depth += 1
            if tag == "button":
                self._button = {**a, "text": ""}
            if "ac-container" in a.get("class", "").split():
                self._card.containers.append(a.get("style", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._in_result = False
        if self._card is not None and tag not in VOID:
            self._depth -= 1
            if tag == "button" and self._button is not None:
                self._button["text"] = self._button["text"].strip()
                self._card.buttons.append(self._button)
                self._button = None
            if self._depth == 0:
                self._card = None

    def handle_data(self, data: str) -> None:
        if self._in_result:
            self.result_json += data
        elif self._card is not None:
            self._card.texts.append(data)
            if self._button is not None:
                self._button["text"] += data


def render_page(cards: Sequence[dict[str, Any]], tmp_path: Path, name: str, width: int = WIDTH) -> RenderedPage:
    """All ``cards`` on one preview page, rendered by one Chromium in a window ``width`` px wide."""
    exe = require_renderer()
    page = tmp_path / f"{name}.html"
    page.write_text(card_page(list(cards), width=width), encoding="utf-8")
    dom = dump_dom(exe, page, width)
    rendered = RenderedPage(dom)
    assert rendered.result, f"the page wrote no result; DOM starts: {dom[:500]}"
    assert rendered.result == page_result(dom)
    assert rendered.rendered_flag == "true" and rendered.result["ok"], rendered.result["errors"]
    assert len(rendered.cards) == rendered.result["count"] == len(cards)
    return rendered
