"""Adaptive Card 1.5 for one notification, built apart from the POST.

The card answers the on-call questions in order: what broke and how bad (coloured header),
since when / how often / who owns it (facts), the offending value and error (details),
what to do next, and one click to the run, the asset check, the dbt artifacts and the ticket.
Cards over the Teams size limit lose detail text first, never the header, facts or buttons.
"""

from __future__ import annotations

import json
from typing import Any

from ..durations import format_duration
from ..events import Severity
from ..lifecycle import Transition
from ..notification import Notification
from ..redact import redact
from ..text import truncate

CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.5"
DEFAULT_MAX_BYTES = 28_000  # Teams rejects payloads over ~28 KB with HTTP 413
MAX_ACTIONS = 6

_STYLE = {Severity.WARN: "warning", Severity.ERROR: "attention", Severity.CRITICAL: "attention"}
_COLOR = {Severity.WARN: "Warning", Severity.ERROR: "Attention", Severity.CRITICAL: "Attention"}
_LINK_TITLES = {
    "run": "Open run",
    "asset_check": "Asset check",
    "asset": "Asset",
    "dbt_artifacts": "dbt artifacts",
    "runbook": "Runbook",
    "logs": "Logs",
}
# Detail levels tried in order until the payload fits: (max chars per detail value, keep details?)
_DETAIL_LEVELS = ((1500, True), (400, True), (120, True), (0, False))


def _links(notification: Notification) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    for key, url in notification.event.links.items():
        if url:
            actions.append({"type": "Action.OpenUrl", "title": _LINK_TITLES.get(key, key.replace("_", " ").title()), "url": url})
    ticket = notification.ticket
    if ticket and ticket.get("url"):
        actions.insert(1 if actions else 0, {"type": "Action.OpenUrl", "title": f"Ticket {ticket['key']}", "url": ticket["url"]})
    return actions[:MAX_ACTIONS]


def _details_block(notification: Notification, limit: int) -> list[dict[str, Any]]:
    details = notification.event.details
    if not details:
        return []
    facts, long_texts = [], []
    for key, value in details.items():
        text = redact(value if isinstance(value, str) else json.dumps(value, default=str))
        if len(text) > 80 or "\n" in text:
            long_texts.append((key, truncate(text, limit)))
        else:
            facts.append({"title": key.replace("_", " ").capitalize(), "value": truncate(text, limit)})
    items: list[dict[str, Any]] = [{"type": "TextBlock", "text": "Details", "weight": "Bolder", "spacing": "Medium"}]
    if facts:
        items.append({"type": "FactSet", "facts": facts})
    for key, text in long_texts:
        items.append({"type": "TextBlock", "text": key.replace("_", " ").capitalize(), "isSubtle": True, "spacing": "Small"})
        items.append({"type": "TextBlock", "text": text, "wrap": True, "fontType": "Monospace", "size": "Small", "spacing": "None"})
    return [{"type": "Container", "items": items}]


def build_card(notification: Notification, detail_limit: int = 1500, include_details: bool = True) -> dict[str, Any]:
    """The AdaptiveCard object (``content`` of the message attachment)."""
    recovered = notification.transition is Transition.RECOVERED
    severity = notification.severity
    style = "good" if recovered else _STYLE[severity]
    color = "Good" if recovered else _COLOR[severity]
    badge = "RECOVERED" if recovered else f"{severity.value.upper()} · {notification.status_label.upper()}"
    ev = notification.event

    header = {
        "type": "Container",
        "style": style,
        "bleed": True,
        "items": [
            {"type": "TextBlock", "text": badge, "weight": "Bolder", "size": "Small", "color": color, "spacing": "None"},
            {"type": "TextBlock", "text": redact(notification.headline), "weight": "Bolder", "size": "Large", "wrap": True},
        ],
    }
    body: list[dict[str, Any]] = [header]
    if recovered and notification.incident.broken_for is not None:
        body.append(
            {
                "type": "TextBlock",
                "text": f"Back to healthy after {format_duration(notification.incident.broken_for)} broken.",
                "wrap": True,
                "color": "Good",
            }
        )
    body.append({"type": "FactSet", "facts": [{"title": k, "value": redact(v)} for k, v in notification.facts()]})
    if include_details and not recovered:
        body.extend(_details_block(notification, detail_limit))
    elif not include_details and ev.details:
        body.append(
            {
                "type": "TextBlock",
                "text": "Details trimmed to fit Teams' size limit; open the run for the full error.",
                "isSubtle": True,
                "wrap": True,
            }
        )
    body.append(
        {
            "type": "TextBlock",
            "text": f"Next action: {redact(notification.next_action)}",
            "wrap": True,
            "weight": "Bolder",
            "spacing": "Medium",
        }
    )
    body.append(
        {
            "type": "TextBlock",
            "text": f"Fingerprint {notification.incident.fingerprint} · incident {notification.incident.incident_id}",
            "isSubtle": True,
            "size": "Small",
            "wrap": True,
        }
    )

    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": CARD_SCHEMA,
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    }
    actions = _links(notification)
    if actions:
        card["actions"] = actions
    return card


def wrap_message(card: dict[str, Any]) -> dict[str, Any]:
    """The Workflows webhook envelope."""
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}],
    }


def payload_size(payload: dict[str, Any]) -> int:
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def build_message(notification: Notification, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """The smallest-trim message that fits ``max_bytes``."""
    message: dict[str, Any] = {}
    for limit, keep in _DETAIL_LEVELS:
        message = wrap_message(build_card(notification, detail_limit=limit, include_details=keep))
        if payload_size(message) <= max_bytes:
            return message
    return message  # header, facts and links alone; only pathological titles get here
