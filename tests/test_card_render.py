"""The Teams cards rendered for real: npm ``adaptivecards`` (pinned in tests/render) in headless Chromium.

For a failure card and a recovery card built from ``sample_notification``, the preview page
(dagster_monitoring/card_preview.html, the one ``dagster-monitoring demo`` writes) parses and renders the card; ``--dump-dom`` gives the rendered DOM. The
assertions read the rendered elements (text, the action buttons and the URL the parsed
``Action.OpenUrl`` object carries) and the parse/validation messages of the renderer. Each run
also screenshots them (to docs/img/card_failure.png and card_recovered.png with DM_SAVE_SCREENSHOTS=1).

Needs Debian ``chromium`` and ``npm ci --prefix tests/render`` (scripts/install_system_deps.sh).
Without them the tests skip on a workstation and fail in CI (``CI`` set). Every card kind, at
desktop and phone width: tests/test_card_kinds_render.py.
"""

from __future__ import annotations

import os
import struct
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from dagster_monitoring.alerting import Transition
from dagster_monitoring.alerting.sample import sample_notification
from dagster_monitoring.alerting.transports.teams_card import build_card
from dagster_monitoring.card_preview import WIDTH, screenshot

from .helpers.card_render import RenderedCard, render_page, require_renderer

REPO = Path(__file__).resolve().parents[1]
DOCS_IMG = REPO / "docs" / "img"
NOW = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)  # fixed, so the screenshots only change when the card does

pytestmark = pytest.mark.chromium


def render(card: dict[str, Any], tmp_path: Path, name: str) -> RenderedCard:
    """Render in Chromium and screenshot it, sized to the card. The PNG goes to docs/img/ (the
    README's picture) when DM_SAVE_SCREENSHOTS=1, else to tmp_path, so test runs leave the tree clean."""
    page = render_page([card], tmp_path, f"card_{name}")
    [rendered] = page.cards

    height = int(page.result.get("height") or 1000)
    out = DOCS_IMG if os.environ.get("DM_SAVE_SCREENSHOTS") == "1" else tmp_path
    png = screenshot(require_renderer(), tmp_path / f"card_{name}.html", out / f"card_{name}.png", height)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (WIDTH, height)
    return rendered


def assert_rendered_cleanly(rendered: RenderedCard) -> None:
    result = rendered.result
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
        rendered,
        notification.event.links,
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
    assert_open_url_buttons(rendered, notification.event.links, {"fixed_by_run": "Run that fixed it", "failed_run": "Failing run"})
    r, g, b = rendered.header_rgb()
    assert g > r and g > b, "the recovered header should be green (good style)"
