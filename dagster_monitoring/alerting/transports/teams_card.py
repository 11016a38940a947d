"""Adaptive Card 1.5 for one notification, built apart from the POST.

The card answers the on-call questions in order: what broke and how bad (coloured header),
since when / how often / who owns it (facts), the offending value and error (details),
what to do next, and one click to the run, the asset check, the dbt artifacts and the ticket.
Cards over the Teams size limit lose detail text first, never the header, facts or buttons.
Every text from an alert is shown as written: redacted, and with Markdown escaped (:func:`plain`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ..events import Severity
from ..failing_rows import FailingRows
from ..lifecycle import Transition
from ..notification import Notification, is_web_url
from ..presentation import MAX_FACT
from ..redact import redact
from ..text import truncate
from .teams_mentions import TeamsUser, mention_block, mention_entities, mentioned_users

CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.5"
DEFAULT_MAX_BYTES = 28_000  # Teams rejects payloads over ~28 KB with HTTP 413
MAX_ACTIONS = 5  # the Adaptive Cards renderer refuses more ("Maximum number of actions exceeded (5)")

# CRITICAL is a filled red header, ERROR a red title on a grey header, WARN yellow: a glance at
# a channel tells them apart.
_STYLE = {Severity.WARN: "warning", Severity.ERROR: "emphasis", Severity.CRITICAL: "attention"}
_COLOR = {Severity.WARN: "Warning", Severity.ERROR: "Attention", Severity.CRITICAL: "Attention"}
# Markdown that Teams would act on in a TextBlock or a fact: emphasis (``*``; underscores unless
# inside a word, where CommonMark keeps them literal, a zero-width space counting as part of the
# word), links (``[``, ``]``) and a backslash that would escape the next character. Escaped with a
# backslash (CommonMark), so "**x**" and "[x](url)" stay text.
_MARKDOWN = re.compile(r"[*\[\]]|\\(?=[!-/:-@\[-`{-~])|_+")
# A fact is a table cell, which a word cannot wrap in: a path, a hash or a long class name would
# push the card wider than a phone (390 px) and be cut off. Words of 25+ characters get zero-width
# spaces (invisible break opportunities) after separators, between camelCase parts and every 20
# letters. They would come along when such a fact is copied; the footer keeps the entity unbroken.
_LONG_WORD = re.compile(r"\S{25,}")
_WORD_BREAK = re.compile(r"(?<=[/\\_.:;,?&=+|@#-])(?=[^\s/\\_.:;,?&=+|@#-])|(?<=[a-z])(?=[A-Z])")
_LETTER_RUN = re.compile(r"[^\W_]{20}(?=[^\W_])")
ZWSP = "\u200b"
# Detail levels tried in order until the payload fits: (max chars of the error text, keep it?,
# members of a group listed by name); the rest of a long group is "+N more".
_DETAIL_LEVELS = ((1500, True, 20), (400, True, 10), (120, True, 5), (0, False, 3))
# Which of a member's links its line points to, in order of preference.
_MEMBER_LINKS = ("asset_check", "asset", "run", "failed_run", "fixed_by_run")


def _links(notification: Notification) -> list[dict[str, Any]]:
    """The buttons: the event's links and the ticket, then the signed Acknowledge / Silence links
    (kept whatever else is cut to stay within :data:`MAX_ACTIONS`)."""
    signed = [{"type": "Action.OpenUrl", "title": title, "url": url} for title, url in notification.actions if is_web_url(url)]
    actions: list[dict[str, Any]] = []
    for title, url in notification.links():  # http(s) only: no javascript:, data: or file: button
        actions.append({"type": "Action.OpenUrl", "title": title, "url": url})
    ticket = notification.ticket
    if ticket and is_web_url(ticket.get("url")):
        actions.insert(1 if actions else 0, {"type": "Action.OpenUrl", "title": f"Ticket {ticket['key']}", "url": ticket["url"]})
    return actions[: MAX_ACTIONS - len(signed)] + signed


def plain(text: str, *, in_table: bool = False) -> str:
    """``text`` for a TextBlock: secrets masked, then (``in_table``: a fact) long words made
    breakable, then Markdown escaped so Teams shows it literally."""
    text = redact(text)
    if in_table:
        text = breakable(text)
    return _MARKDOWN.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    found, text, start, end = match.group(0), match.string, match.start(), match.end()
    if found[0] == "_" and 0 < start and end < len(text) and _in_word(text[start - 1]) and _in_word(text[end]):
        return found  # snake_case, stg_loans_status__active: literal in CommonMark
    return "".join("\\" + c for c in found) if found[0] == "_" else "\\" + found


def _in_word(char: str) -> bool:
    return char.isalnum() or char == ZWSP


def breakable(text: str) -> str:
    """``text`` with break opportunities in its long words (see :data:`_LONG_WORD`)."""

    def split(word: re.Match[str]) -> str:
        return _LETTER_RUN.sub(lambda run: run.group(0) + ZWSP, _WORD_BREAK.sub(ZWSP, word.group(0)))

    return _LONG_WORD.sub(split, text)


def _facts(rows: list[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "FactSet", "facts": [{"title": plain(k, in_table=True), "value": plain(v, in_table=True)} for k, v in rows]}


def _table(rows: FailingRows) -> dict[str, Any]:
    """The offending rows as an Adaptive Card 1.5 Table: a header row, then one row per sample."""

    def cell(text: str | None, header: bool = False) -> dict[str, Any]:
        block: dict[str, Any] = {
            "type": "TextBlock",
            "text": "NULL" if text is None else plain(text, in_table=True),
            "wrap": True,
            "size": "Small",
        }
        if header:
            block["weight"] = "Bolder"
        elif text is None:
            block["isSubtle"] = True
        return {"type": "TableCell", "items": [block]}

    return {
        "type": "Table",
        "firstRowAsHeader": True,
        "showGridLines": True,
        "gridStyle": "default",
        "columns": [{"width": 1} for _ in rows.columns],
        "rows": [
            {"type": "TableRow", "cells": [cell(c, header=True) for c in rows.columns]},
            *({"type": "TableRow", "cells": [cell(v) for v in row]} for row in rows.rows),
        ],
    }


def _what_failed(notification: Notification, limit: int, include_text: bool) -> list[dict[str, Any]]:
    shown = notification.presentation
    items: list[dict[str, Any]] = []
    if shown.facts:
        items.append({"type": "TextBlock", "text": "What failed", "weight": "Bolder", "spacing": "Medium"})
        items.append(_facts([(k, truncate(v, max(limit, 120))) for k, v in shown.facts]))
    if shown.rows is not None and include_text:
        items.append({"type": "TextBlock", "text": plain(shown.text_label or "Failing rows"), "isSubtle": True, "spacing": "Small"})
        items.append(_table(shown.rows))
    elif shown.text and include_text:
        items.append({"type": "TextBlock", "text": plain(shown.text_label or "Details"), "isSubtle": True, "spacing": "Small"})
        items.append(
            {
                "type": "TextBlock",
                "text": plain(truncate(shown.text, limit)),
                "wrap": True,
                "fontType": "Monospace",
                "size": "Small",
                "spacing": "None",
            }
        )
    elif shown.text:
        items.append(
            {
                "type": "TextBlock",
                "text": "Error text trimmed to fit Teams' size limit; open the run for all of it.",
                "isSubtle": True,
                "wrap": True,
            }
        )
    return [{"type": "Container", "items": items}] if items else []


def _member_url(member: Notification) -> str | None:
    links = member.event.links
    for key in (*_MEMBER_LINKS, *links):
        url = links.get(key)
        if is_web_url(url):
            return url
    return None


def _member_block(member: Notification, badge: str) -> dict[str, Any]:
    """One line: the badge in bold, then the entity; the whole line opens the member's link (a
    ``selectAction``: text stays text, with no Markdown link in it)."""
    url = _member_url(member)
    entity = plain(truncate(member.event.entity, 120), in_table=True) + (" ↗" if url else "")
    block: dict[str, Any] = {
        "type": "ColumnSet",
        "spacing": "Small",
        "columns": [
            {
                "type": "Column",
                "width": "auto",
                "items": [{"type": "TextBlock", "text": plain(badge), "weight": "Bolder", "size": "Small", "wrap": True}],
            },
            {"type": "Column", "width": "stretch", "items": [{"type": "TextBlock", "text": entity, "size": "Small", "wrap": True}]},
        ],
    }
    if url:
        block["selectAction"] = {"type": "Action.OpenUrl", "url": url, "title": f"Open {truncate(member.event.entity, 80)}"}
    return block


def _members(notification: Notification, shown: int) -> list[dict[str, Any]]:
    """A group's compact member list (lead first) and its inhibited "Also affected" alerts, each
    line with severity and state, entity and its link; ``shown`` lines each, then "+N more"."""
    sections: list[dict[str, Any]] = []
    for title, members, state in (
        (f"{len(notification.group)} alerts in this message", notification.group if notification.members else (), True),
        (f"Also affected ({len(notification.also_affected)}, downstream in the same run)", notification.also_affected, False),
    ):
        if not members:
            continue
        items: list[dict[str, Any]] = [{"type": "TextBlock", "text": plain(title), "weight": "Bolder", "spacing": "Medium", "wrap": True}]
        for member in members[:shown]:
            if state:
                badge = (
                    "RECOVERED"
                    if member.transition is Transition.RECOVERED
                    else f"{member.severity.value.upper()} {member.status_label.lower()}"
                )
            else:
                badge = member.severity.value.upper()
            items.append(_member_block(member, badge))
        if len(members) > shown:
            items.append({"type": "TextBlock", "text": f"+{len(members) - shown} more", "isSubtle": True, "spacing": "Small", "wrap": True})
        sections.append({"type": "Container", "items": items})
    return sections


def build_card(
    notification: Notification,
    detail_limit: int = 1500,
    include_details: bool = True,
    members_shown: int = 20,
    mentions: Mapping[str, TeamsUser] | None = None,
) -> dict[str, Any]:
    """The AdaptiveCard object (``content`` of the message attachment). A group is its lead's card
    with "and N more" in the header and the member list under the facts. ``mentions`` (owner ->
    Teams user) adds an @mention of the failing alert's owners under the header."""
    recovered = notification.transition is Transition.RECOVERED
    severity = notification.severity
    style = "good" if recovered else _STYLE[severity]
    color = "Good" if recovered else _COLOR[severity]
    badge = "RECOVERED" if recovered else f"{severity.value.upper()} · {notification.status_label.upper()}"

    header = {
        "type": "Container",
        "style": style,
        "bleed": True,
        "items": [
            {"type": "TextBlock", "text": badge, "weight": "Bolder", "size": "Small", "color": color, "spacing": "None"},
            {
                "type": "TextBlock",
                "text": plain(notification.headline + notification.group_suffix),
                "weight": "Bolder",
                "size": "Large",
                "wrap": True,
                **({"color": "Attention"} if severity is Severity.ERROR and not recovered else {}),
            },
        ],
    }
    body: list[dict[str, Any]] = [header]
    users = mentioned_users(notification, mentions or {})
    if users:
        body.append(mention_block(users))
    if notification.transition is not Transition.NEW:
        body.append(
            {"type": "TextBlock", "text": plain(notification.transition_line), "wrap": True, "color": "Good" if recovered else "Default"}
        )
    body.append(_facts(notification.lifecycle_facts()))
    body.extend(_members(notification, members_shown))
    if not recovered:
        body.extend(_what_failed(notification, detail_limit, include_details))
    body.append(
        {
            "type": "TextBlock",
            "text": f"Next action: {plain(truncate(notification.next_action, max(detail_limit, MAX_FACT)))}",
            "wrap": True,
            "weight": "Bolder",
            "spacing": "Medium",
        }
    )
    body.append(
        {
            "type": "TextBlock",
            "text": plain(f"Fingerprint {notification.incident.fingerprint} · incident {notification.incident.incident_id}"),
            "isSubtle": True,
            "size": "Small",
            "wrap": True,
        }
    )

    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": CARD_SCHEMA,
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},  # Teams-only; the strict 1.5 schema does not know it (tests allow exactly this)
        "body": body,
    }
    if users:
        card["msteams"]["entities"] = mention_entities(users)
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


def build_message(
    notification: Notification, max_bytes: int = DEFAULT_MAX_BYTES, mentions: Mapping[str, TeamsUser] | None = None
) -> dict[str, Any]:
    """The smallest-trim message that fits ``max_bytes``."""
    message: dict[str, Any] = {}
    for limit, keep, shown in _DETAIL_LEVELS:
        message = wrap_message(build_card(notification, detail_limit=limit, include_details=keep, members_shown=shown, mentions=mentions))
        if payload_size(message) <= max_bytes:
            return message
    return message  # header, facts and links alone; only pathological titles get here
