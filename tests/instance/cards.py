"""The Teams card of an instance alert, as the teams receiver would post it: schema-valid, with
the texts and buttons the on-call needs."""

from __future__ import annotations

import json
from typing import Any

from dagster_monitoring.alerting.notification import Notification
from dagster_monitoring.alerting.transports.teams_card import build_message

from ..test_card_schema import assert_valid_card


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def assert_card(alert: dict, *, texts: tuple[str, ...], buttons: dict[str, str]) -> None:
    """``alert``: a line of the file receiver (a notification)."""
    message = build_message(Notification.from_dict(alert))
    card = message["attachments"][0]["content"]
    assert_valid_card(card)
    text = "\n".join(_strings(card["body"]))
    for expected in texts:
        assert expected in text, f"{expected!r} not on the card:\n{text}"
    shown = {a["title"]: a["url"] for a in card.get("actions", []) if a.get("type") == "Action.OpenUrl"}
    assert shown == buttons, shown
    assert "hunter2" not in json.dumps(message)
