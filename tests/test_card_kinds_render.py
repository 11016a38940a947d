"""Every Teams card kind, and hostile variants of them, as sent and as rendered.

The cards are the ones ``build_message`` sends (trimmed to Teams' 28 KB when needed) for every
notification of the catalogue (tests/helpers/card_catalogue.py: dbt test, dlt schema drift, row
count, freshness, run failure, watchdog; escalated, reminder, recovered with its closed ticket, a
Jira ticket link) and for the adversarial variants (a ~50 KB description, unicode, Markdown and
HTML, a 2,000 character path, credentials).

For each payload: valid against the official Adaptive Card 1.5 schema with exactly the
``msteams`` full-width key allowed (``assert_valid_card`` of test_card_schema), at most 28,000
bytes, and no secret in it. For each card rendered by the npm ``adaptivecards`` renderer in
headless Chromium, at desktop width (800 px) and phone width (390 px), all cards of a width on one
page (one Chromium launch per width): the renderer reported no parse or validation problem; the
headline, the kind's facts, the owner and the next action are in the card's text; the buttons are
exactly the expected titles with their URLs (read from the parsed ``Action.OpenUrl`` objects); no
secret is in the text; no text turned into markup (no script, image, link, bold, event handler or
``javascript:``/``data:`` URL in the card); nothing sticks out of the card or clips its content,
and the page does not scroll sideways.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from dagster_monitoring.alerting import Notification, Transition, redact
from dagster_monitoring.alerting.presentation import (
    PRESENTERS,
    present_dbt_test,
    present_freshness,
    present_generic,
    present_row_count,
    present_run,
    present_schema_drift,
)
from dagster_monitoring.alerting.transports.teams_card import DEFAULT_MAX_BYTES, ZWSP, build_card, build_message, payload_size
from dagster_monitoring.card_preview import MOBILE_WIDTH, WIDTH, card_page

from .helpers.card_catalogue import ADVERSARIAL_EXPECT, MUST_SHOW, REGISTERED_WEBHOOK, SECRETS, adversarial, catalogue
from .helpers.card_render import ADAPTIVECARDS_JS, RenderedCard, RenderedPage, render_page, require_renderer
from .test_card_schema import assert_valid_card

WIDTHS = {"desktop": WIDTH, "phone": MOBILE_WIDTH}
PAGE_PADDING = 2 * 16  # body padding of card_preview.html
# Elements that only markup in an alert's text could have put into a card (the card itself has none).
LIVE_MARKUP = {
    "script",
    "img",
    "iframe",
    "object",
    "embed",
    "svg",
    "style",
    "link",
    "a",
    "strong",
    "em",
    "b",
    "i",
    "form",
    "input",
    "video",
    "audio",
}
PAGE_SCRIPTS = 3  # card_preview.html's own: the card JSON, the renderer, the page script


@dataclass(frozen=True)
class Sent:
    notification: Notification
    message: dict[str, Any]
    texts: list[str]  # what the rendered card must show

    @property
    def card(self) -> dict[str, Any]:
        return self.message["attachments"][0]["content"]


def build_all() -> dict[str, Sent]:
    """Every notification, the message sent for it and the texts its card must show; built with the
    configured webhook registered as a secret, as loading the config does."""
    redact.register_secret(REGISTERED_WEBHOOK)
    try:
        notifications = {**catalogue(), **adversarial()}
        return {name: Sent(n, build_message(n), expected_texts(name, n)) for name, n in notifications.items()}
    finally:
        redact.clear_registered_secrets()


NAMES = [*MUST_SHOW, *ADVERSARIAL_EXPECT]


@pytest.fixture(scope="module")
def sent() -> dict[str, Sent]:
    return build_all()


@pytest.fixture(scope="module")
def rendered(sent, tmp_path_factory) -> Callable[[str], RenderedPage]:
    """The page of all cards at one width, rendered once per width on first use."""
    pages: dict[str, RenderedPage] = {}

    def page(width: str) -> RenderedPage:
        if width not in pages:
            cards = [s.card for s in sent.values()]
            pages[width] = render_page(cards, tmp_path_factory.mktemp(f"cards_{width}"), "all_cards", WIDTHS[width])
        return pages[width]

    return page


def _norm(text: str) -> str:
    """Whitespace collapsed, zero-width spaces dropped (the card breaks long words in facts with them)."""
    return " ".join(text.replace(ZWSP, "").split())


def expected_texts(name: str, notification: Notification) -> list[str]:
    """Hand-written for the catalogue; for adversarial cards, what the notification itself says a
    human must read (badge, headline, facts with their labels, owner, next action: redacted, as the
    secrets registered now mask them) plus literals."""
    if name in MUST_SHOW:
        return list(MUST_SHOW[name].texts)
    recovered = notification.transition is Transition.RECOVERED
    texts = [
        "RECOVERED" if recovered else f"{notification.severity.value.upper()} · {notification.status_label.upper()}",
        notification.headline,
        *(f"{label} {value}" for label, value in notification.lifecycle_facts()),
        *(f"{label} {value}" for label, value in notification.presentation.facts),
        f"Next action: {redact.redact(notification.next_action)[:200]}",
    ]
    texts = [redact.redact(t) for t in texts]
    return [_norm(t) for t in texts] + list(ADVERSARIAL_EXPECT[name].texts)


def expected_buttons(name: str, notification: Notification) -> dict[str, str] | None:
    if name in MUST_SHOW:
        return MUST_SHOW[name].buttons
    return ADVERSARIAL_EXPECT[name].buttons or None


def absent_texts(name: str) -> tuple[str, ...]:
    return MUST_SHOW[name].absent if name in MUST_SHOW else ADVERSARIAL_EXPECT[name].absent


# -- the catalogue itself ----------------------------------------------------------------------------


def test_catalogue_has_every_card_kind_and_transition():
    notifications = catalogue()
    assert set(notifications) == set(MUST_SHOW)
    assert set(adversarial(notifications)) == set(ADVERSARIAL_EXPECT)
    presenters = {present_dbt_test, present_schema_drift, present_row_count, present_freshness, present_run, present_generic}
    used = {
        present_dbt_test if (n.event.source, n.event.kind) == ("dbt", "asset_check") else PRESENTERS.get(n.event.kind, present_generic)
        for n in notifications.values()
    }
    assert used == presenters
    assert {n.transition for n in notifications.values()} == set(Transition) - {Transition.ONGOING}
    assert notifications["escalated"].escalated_from is not None and notifications["escalated"].escalated_from.value == "warn"
    assert notifications["recovered"].ticket and notifications["jira_ticket"].ticket
    assert all(
        len(n.event.summary) >= 50_000
        for k, n in adversarial(notifications).items()
        if k in ("dbt_long_description", "generic_long_description")
    )


# -- the payloads ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_payload_is_schema_valid_within_28_kb_and_without_secrets(sent, name):
    message, card = sent[name].message, sent[name].card

    assert_valid_card(card)  # the official 1.5 schema; "msteams": {"width": "Full"} is the one allowed extra
    assert card["msteams"] == {"width": "Full"}
    assert payload_size(message) <= DEFAULT_MAX_BYTES == 28_000
    for dumped in (json.dumps(message), json.dumps(message, ensure_ascii=False)):
        for secret in SECRETS:
            assert secret not in dumped, f"{secret!r} leaked into the {name} payload"
    assert "javascript:" not in json.dumps([a["url"] for a in card.get("actions", [])])


def test_long_description_keeps_header_facts_and_buttons(sent):
    """The 50 KB cards fit by trimming text, never the header, the facts or the buttons."""
    for name in ("dbt_long_description", "generic_long_description", "run_long_error", "long_next_action"):
        card, full = sent[name].card, build_card(sent[name].notification)
        assert card["body"][0] == full["body"][0] and card.get("actions") == full.get("actions")


# -- the rendered cards ------------------------------------------------------------------------------


def _card(rendered: Callable[[str], RenderedPage], sent: dict[str, Sent], name: str, width: str) -> tuple[RenderedPage, RenderedCard]:
    page = rendered(width)
    return page, page.cards[list(sent).index(name)]


@pytest.mark.chromium
@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("name", NAMES)
def test_rendered_card_shows_the_facts_and_nothing_else(rendered, sent, name, width):
    notification = sent[name].notification
    page, card = _card(rendered, sent, name, width)
    text = _norm(card.text)

    assert card.result["parseEvents"] == [], "the renderer dropped or changed parts of the card"
    assert card.result["validation"] == []
    for expected in map(_norm, sent[name].texts):
        assert expected in text, f"{expected[:200]!r} not in the rendered {name} card: {text[:1500]}"
    for unwanted in absent_texts(name):
        assert unwanted not in text
    for secret in SECRETS:
        assert secret not in text

    buttons = expected_buttons(name, notification)
    parsed = {a["title"]: a for a in card.result["actions"]}
    if buttons is not None:
        assert [b["text"] for b in card.buttons] == list(buttons), "the buttons, in order"
        for title, url in buttons.items():
            action = parsed[title]
            assert action["type"] == "Action.OpenUrl" and action["rendered"] and action["buttonText"] == title
            assert action["url"] == url and card.button(title)["data-dm-url"] == url
    assert all(a["url"] and a["url"].startswith(("https://", "http://")) for a in parsed.values())


@pytest.mark.chromium
@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("name", NAMES)
def test_rendered_card_has_no_live_markup_and_fits_the_width(rendered, sent, name, width):
    page, card = _card(rendered, sent, name, width)

    for tag, attrs in card.elements:
        assert tag not in LIVE_MARKUP, f"<{tag} {attrs}> in the {name} card"
        for key, value in attrs.items():
            assert not key.startswith("on"), f"event handler {key}={value!r} on <{tag}> in the {name} card"
            assert not value.strip().lower().startswith(("javascript:", "data:", "vbscript:")), f"{key}={value!r} on <{tag}>"
    assert page.outside.count("script") == PAGE_SCRIPTS and "img" not in page.outside

    viewport = page.result["pageWidth"]  # the window's width, or the page's own under Chromium's 500 px
    assert viewport == WIDTHS[width]
    assert page.result["scrollWidth"] <= viewport, f"the page scrolls sideways at {viewport} px"
    assert card.result["width"] <= viewport - PAGE_PADDING
    overflow = card.result["overflow"]
    assert [o for o in overflow if o["outside"]] == [], f"sticks out of the {name} card at {viewport} px"
    # A row of buttons too wide for a phone shrinks them and cuts their titles with an ellipsis:
    # the renderer's (and Teams mobile's) behaviour, which a card cannot choose. The full title
    # stays the button's tooltip and accessible name. Nothing else may be cut.
    cut = [o for o in overflow if o["clipped"] and not (width == "phone" and o["inButton"] and o["ellipsis"])]
    assert cut == [], f"content clipped in the {name} card at {viewport} px"
    for label in (o["text"] for o in overflow if o["clipped"] and o["inButton"]):
        button = card.button(label)
        assert button["title"] == button["aria-label"] == label


@pytest.mark.chromium
def test_one_page_holds_every_card(rendered, sent):
    for width in WIDTHS:
        page = rendered(width)
        assert len(page.cards) == len(sent) == page.result["count"]
        assert len(page.result["cards"]) == len(sent)


@pytest.mark.chromium
def test_a_page_narrower_than_the_window_lays_out_as_that_window():
    """Chromium's window is at least 500 px, so the 390 px page sets its own width (card_page);
    that equals a 390 px window only while the renderer's CSS has no width-dependent rule."""
    require_renderer()
    css = (ADAPTIVECARDS_JS.parent / "adaptivecards.css").read_text(encoding="utf-8")
    assert not re.search(r"@media[^{]*width|\d+(\.\d+)?v[wh]\b", css)
    assert "html { width: 390px; }" in card_page([], width=MOBILE_WIDTH)
    assert "html { width:" not in card_page([])
