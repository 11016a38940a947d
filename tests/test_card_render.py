"""The Teams cards rendered for real: npm ``adaptivecards`` (pinned in tests/render) in headless Chromium.

For a failure card and a recovery card built from ``sample_notification``, the preview page
(dagster_monitoring/card_preview.html, the one ``dagster-monitoring demo`` writes) parses and renders the card; ``--dump-dom`` gives the rendered DOM. The
assertions read the rendered elements (text, the action buttons and the URL the parsed
``Action.OpenUrl`` object carries) and the parse/validation messages of the renderer. Each run
also screenshots them (to docs/img/card_failure.png and card_recovered.png with DM_SAVE_SCREENSHOTS=1).

Needs Debian ``chromium`` and ``npm ci --prefix tests/render`` (scripts/install_system_deps.sh).
Without them the tests skip on a workstation and fail in CI (``CI`` set).
"""

from __future__ import annotations

import json
import os
import re
import struct
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from dagster_monitoring.alerting import Transition
from dagster_monitoring.alerting.sample import sample_notification
from dagster_monitoring.alerting.transports.teams_card import build_card
from dagster_monitoring.card_preview import LOCAL_RENDERER, WIDTH, card_page, chromium, find_chromium, page_result, screenshot

REPO = Path(__file__).resolve().parents[1]
ADAPTIVECARDS_JS = LOCAL_RENDERER / "dist" / "adaptivecards.min.js"
DOCS_IMG = REPO / "docs" / "img"
NOW = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)  # fixed, so the screenshots only change when the card does

pytestmark = pytest.mark.chromium


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


class RenderedCard(HTMLParser):
    """What --dump-dom shows: text and buttons under the first div.dm-card, and the page's result JSON."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.buttons: list[dict[str, str]] = []
        self.containers: list[str] = []  # inline styles of .ac-container elements, document order
        self.result_json = ""
        self.rendered_flag: str | None = None
        self._card_depth = 0  # >0 while inside the first div.dm-card
        self._button: dict[str, str] | None = None
        self._in_result = False
        self.feed(dom)
        self.close()
        self.result: dict[str, Any] = json.loads(self.result_json) if self.result_json else {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.rendered_flag = a.get("data-dm-rendered")
        if tag == "pre" and a.get("id") == "dm-result":
            self._in_result = True
        if self._card_depth == 0 and tag == "div" and "dm-card" in a.get("class", "").split():
            self._card_depth = 1
            return
        if self._card_depth and tag not in self.VOID:
            self._card_depth += 1
            if tag == "button":
                self._button = {**a, "text": ""}
            if "ac-container" in a.get("class", "").split():
                self.containers.append(a.get("style", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._in_result = False
        if self._card_depth and tag not in self.VOID:
            self._card_depth -= 1
            if tag == "button" and self._button is not None:
                self._button["text"] = self._button["text"].strip()
                self.buttons.append(self._button)
                self._button = None

    def handle_data(self, data: str) -> None:
        if self._in_result:
            self.result_json += data
        elif self._card_depth:
            self.texts.append(data)
            if self._button is not None:
                self._button["text"] += data

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


def render(card: dict[str, Any], tmp_path: Path, name: str) -> RenderedCard:
    """Render in Chromium and screenshot it, sized to the card. The PNG goes to docs/img/ (the
    README's picture) when DM_SAVE_SCREENSHOTS=1, else to tmp_path, so test runs leave the tree clean."""
    exe = require_renderer()
    page = tmp_path / f"card_{name}.html"
    page.write_text(card_page(card), encoding="utf-8")
    dom = chromium(exe, f"--window-size={WIDTH},1000", "--dump-dom", page.as_uri()).stdout
    rendered = RenderedCard(dom)
    assert rendered.result, f"the page wrote no result; DOM starts: {dom[:500]}"
    assert rendered.result == page_result(dom)

    height = int(rendered.result.get("height") or 1000)
    out = DOCS_IMG if os.environ.get("DM_SAVE_SCREENSHOTS") == "1" else tmp_path
    png = screenshot(exe, page, out / f"card_{name}.png", height)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (WIDTH, height)
    return rendered


def assert_rendered_cleanly(rendered: RenderedCard) -> None:
    result = rendered.result
    assert rendered.rendered_flag == "true" and result["ok"], result["errors"]
    assert result["parseEvents"] == [], "the renderer dropped or changed parts of the card"
    assert result["validation"] == []


def assert_open_url_buttons(rendered: RenderedCard, links: dict[str, str], titles: dict[str, str]) -> None:
    """Every link is a rendered button whose URL comes from the parsed Action.OpenUrl object."""
    parsed = {a["title"]: a for a in rendered.result["actions"]}
    for key, title in titles.items():
        action = parsed[title]
        assert action["type"] == "Action.OpenUrl" and action["rendered"] and action["buttonText"] == title
        assert action["url"] == links[key]
        assert rendered.button(title)["data-dm-url"] == links[key]


# -- tests ---------------------------------------------------------------------------------------


def test_failure_card_renders_entity_severity_and_run_button(tmp_path):
    notification = sample_notification("teams", Transition.NEW, now=NOW)

    rendered = render(build_card(notification), tmp_path, "failure")

    assert_rendered_cleanly(rendered)
    text = rendered.text
    assert notification.event.entity in text
    assert "CRITICAL · NEW" in text
    assert notification.headline in text and notification.headline.startswith("Critical dbt test failed: ")
    assert "Failing since 2026-11-25 00:46 UTC (2h 14m ago)" in text  # the fact row: title cell, then value cell
    assert "Offending value 3 rows with amount IS NULL" in text  # the kind's curated facts, plain labels
    assert_open_url_buttons(
        rendered, notification.event.links,
        {"run": "Open run", "asset_check": "Asset check", "dbt_artifacts": "dbt artifacts"},
    )
    r, g, b = rendered.header_rgb()
    assert r > g and r > b, "the failure header should be red-ish (attention style)"


def test_recovered_card_renders_green_with_broken_for(tmp_path):
    notification = sample_notification("teams", Transition.RECOVERED, now=NOW)

    rendered = render(build_card(notification), tmp_path, "recovered")

    assert_rendered_cleanly(rendered)
    text = rendered.text
    assert text.startswith("RECOVERED Recovered: dbt test ")
    assert "Recovered after 2h 14m" in text
    assert "Broken for 2h 14m" in text
    assert "What failed" not in text  # no failure wording in a recovery
    assert "Details" not in text
    assert_open_url_buttons(rendered, notification.event.links, {"run": "Open run"})
    r, g, b = rendered.header_rgb()
    assert g > r and g > b, "the recovered header should be green (good style)"
