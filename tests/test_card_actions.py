"""The signed Acknowledge / Silence links on cards and e-mails: the card stays valid Adaptive Card
1.5 (official schema), keeps both links whatever else is cut to five buttons, and renders them as
OpenUrl buttons; recoveries get none."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from dagster_monitoring.alerting import Severity, Transition
from dagster_monitoring.alerting.actions import ActionLinks, ActionsConfig, verify_token
from dagster_monitoring.alerting.sample import sample_notification
from dagster_monitoring.alerting.transports.email import EmailConfig, build_email
from dagster_monitoring.alerting.transports.teams_card import DEFAULT_MAX_BYTES, MAX_ACTIONS, build_card, build_message, payload_size

from .test_card_render import NOW, assert_open_url_buttons, assert_rendered_cleanly, render
from .test_card_schema import LINKS, TICKETS, _huge, assert_valid_card, make_notification

LINKS_CONFIG = ActionsConfig(base_url="https://alerts.example.com/", signing_key="k3y-for-the-links-9f8e7d6c5b4a39281706")


def with_actions(notification):
    return replace(notification, actions=ActionLinks(LINKS_CONFIG).for_notification(notification, notification.created_at))


@pytest.mark.parametrize("transition", [Transition.NEW, Transition.REMINDER, Transition.ESCALATED])
@pytest.mark.parametrize("ticket", [False, True])
def test_failing_cards_with_links_validate_and_keep_both_within_five_buttons(transition, ticket):
    notification = with_actions(make_notification(Severity.CRITICAL, transition, links=LINKS, tickets=TICKETS if ticket else None))
    card = build_card(notification)
    assert_valid_card(card)
    titles = [a["title"] for a in card["actions"]]
    assert len(titles) == MAX_ACTIONS and titles[-2:] == ["Acknowledge", "Silence 4 h"]
    assert titles[0] == "Open run" and (("Ticket DATA-1" in titles) is ticket)
    assert all(a["type"] == "Action.OpenUrl" and a["url"].startswith("https://alerts.example.com/actions/") for a in card["actions"][-2:])


def test_recoveries_get_no_links():
    notification = make_notification(Severity.ERROR, Transition.RECOVERED, links=LINKS)
    assert with_actions(notification).actions == ()


def test_a_trimmed_card_keeps_the_links():
    notification = with_actions(_huge(make_notification(Severity.ERROR, Transition.NEW, links=LINKS)))
    message = build_message(notification)
    assert payload_size(message) <= DEFAULT_MAX_BYTES
    card = message["attachments"][0]["content"]
    assert_valid_card(card)
    assert [a["title"] for a in card["actions"]][-2:] == ["Acknowledge", "Silence 4 h"]


def test_the_email_lists_the_links():
    notification = with_actions(make_notification(Severity.ERROR, Transition.NEW, links={"run": LINKS["run"]}))
    config = EmailConfig(
        type="email", name="mail", host="localhost", port=25, security="none", **{"from": "a@example.com"}, to=("b@example.com",)
    )
    message = build_email(config, notification)
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for title, url in notification.actions:
        assert f"{title}: {url}" in text and url in html


def test_links_expire_after_link_ttl():
    config = ActionsConfig(base_url="https://a.example.com", signing_key="x" * 32, link_ttl="2d", silence_duration="90m")

    notification = make_notification(Severity.WARN, Transition.NEW)
    (ack_title, ack), (silence_title, _) = ActionLinks(config).for_notification(notification, NOW)
    assert (ack_title, silence_title) == ("Acknowledge", "Silence 1 h 30 min")
    assert verify_token("x" * 32, ack.rsplit("/", 1)[1], NOW).expires_at == NOW + timedelta(days=2)


@pytest.mark.chromium
def test_the_card_renders_both_links_as_buttons(tmp_path):
    notification = with_actions(sample_notification("teams", Transition.NEW, now=NOW))
    rendered = render(build_card(notification), tmp_path, "actions")
    assert_rendered_cleanly(rendered)
    links = dict(notification.actions)
    assert_open_url_buttons(rendered, links, {"Acknowledge": "Acknowledge", "Silence 4 h": "Silence 4 h"})
