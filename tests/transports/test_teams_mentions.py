"""Teams @mentions of owners: the Teams receiver's ``mentions:`` map turns a failing alert's owners
into ``<at>Name</at>`` plus ``msteams.entities`` (Teams' documented mention shape), over a real
local Workflows endpoint; recoveries mention no one; a bad map fails at load naming the field."""

from __future__ import annotations

import pytest

from dagster_monitoring.alerting import Status
from dagster_monitoring.alerting.sample import sample_notifications
from dagster_monitoring.alerting.transports.teams_card import build_message
from dagster_monitoring.alerting.transports.teams_mentions import TeamsUser
from dagster_monitoring.config import ConfigError, config_from_dict

from ..helpers.card_render import render_page
from ..helpers.factories import make_event, make_router
from ..test_card_schema import assert_valid_card
from .test_teams import RUN_URL, FakeTeamsWorkflow, card_of

ANA = {"id": "ana.lima@lender.example", "name": "Ana Lima"}
OPS = {"id": "4c1f2e9a-7b3d-4e5f-8a6b-1c2d3e4f5a6b", "name": "Data Platform On-call"}
MENTIONS = {"team:data-eng": ANA, "team:platform": OPS, "bo@lender.example": ANA}


def _router(tmp_path, teams: FakeTeamsWorkflow, clock):
    config = {
        "receivers": [{"type": "teams", "name": "teams", "webhook_url": teams.webhook_url, "mentions": MENTIONS}],
        "routes": [{"receivers": ["teams"]}],
        "policy": {"repeat_interval": "4h", "flap_window": "0s"},
        "state": {"path": str(tmp_path / "state.db")},
    }
    return make_router(config, clock)


def _mentions(card: dict) -> list[tuple[str, str]]:
    return [(e["mentioned"]["id"], e["text"]) for e in card.get("msteams", {}).get("entities", [])]


def test_a_failing_alert_mentions_its_mapped_owners_once_each_and_the_recovery_none(tmp_path, clock):
    with FakeTeamsWorkflow() as teams:
        router = _router(tmp_path, teams, clock)
        owners = ("team:data-eng", "bo@lender.example", "team:unmapped")  # two owners are Ana: one mention
        router.process([make_event("loans_daily", Status.FAILING, clock.now, run_id="r1", links={"run": RUN_URL}, owners=owners)])
        clock.advance(minutes=5)
        router.process([make_event("loans_daily", Status.PASSING, clock.now, run_id="r2", owners=owners)])
        failure, recovery = (card_of(r) for r in teams.accepted)
    assert teams.violations == []
    assert _mentions(failure) == [("ana.lima@lender.example", "<at>Ana Lima</at>")]
    assert {"type": "TextBlock", "text": "For <at>Ana Lima</at>", "wrap": True, "spacing": "Small"} in failure["body"]
    assert_valid_card(failure)
    assert _mentions(recovery) == [] and "entities" not in recovery["msteams"]
    assert not any("<at>" in str(block) for block in recovery["body"])
    assert_valid_card(recovery)


def test_a_group_mentions_the_owners_of_its_failing_members():
    grouped = sample_notifications()["grouped"]
    users = {o: TeamsUser(**u) for o, u in MENTIONS.items()}
    members = [m.event.owners for m in grouped.group]
    card = card_of_message(build_message(grouped, mentions=users))
    expected = [users[o].id for owners in members for o in owners if o in users]
    assert [i for i, _ in _mentions(card)] == list(dict.fromkeys(expected))
    assert_valid_card(card)
    assert card_of_message(build_message(grouped))["msteams"] == {"width": "Full"}  # no map, no mention


def card_of_message(message: dict) -> dict:
    return message["attachments"][0]["content"]


def test_the_mention_renders_as_plain_text_in_the_adaptive_cards_renderer(tmp_path):
    notification = sample_notifications()["watchdog"]
    card = card_of_message(build_message(notification, mentions={"team:platform": TeamsUser(**OPS)}))
    [rendered] = render_page([card], tmp_path, "mention").cards
    assert "Data Platform On-call" in rendered.text  # Teams turns <at>…</at> into the mention; the renderer shows the name
    assert not any(tag == "script" for tag, _ in rendered.elements)


@pytest.mark.parametrize(
    ("user", "field"),
    [
        ({"id": "not a upn", "name": "Ana"}, "receivers[0].mentions.team:data-eng.id"),
        ({"id": "ana@lender.example", "name": "<b>Ana</b>"}, "receivers[0].mentions.team:data-eng.name"),
        ({"id": "ana@lender.example"}, "receivers[0].mentions.team:data-eng.name"),
    ],
)
def test_a_bad_mention_map_fails_at_load_naming_the_field(user, field):
    data = {
        "receivers": [
            {"type": "teams", "name": "teams", "webhook_url": "https://example.invalid/hook", "mentions": {"team:data-eng": user}}
        ],
        "routes": [{"receivers": ["teams"]}],
    }
    with pytest.raises(ConfigError) as raised:
        config_from_dict(data)
    assert field in str(raised.value)
