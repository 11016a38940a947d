"""Teams @mentions of an alert's owners: ``<at>Name</at>`` in a TextBlock plus one
``msteams.entities`` mention per person, the shape Teams documents for Adaptive Cards.

Owners are names like ``team:data-eng`` or ``ana@lender.example``; Teams needs a user (UPN or
Microsoft Entra object id). The Teams receiver's ``mentions:`` map says who is who. A failing
alert (new, reminder, escalated) mentions them, so Teams notifies them; a recovery does not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..lifecycle import Transition
from ..notification import Notification

_UPN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_OBJECT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# The name is repeated verbatim inside <at>...</at> and must equal the entity's text, so it may not
# hold what Teams' Markdown or the mention markup would interpret.
_NAME = re.compile(r"^[^<>*\[\]\\_`]{1,80}$")


class TeamsUser(BaseModel):
    """Who an owner is in Teams."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="the user's UPN (ana@lender.example) or Microsoft Entra object id (a GUID)")
    name: str = Field(description="the display name shown in the mention, e.g. Ana Lima")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        value = value.strip()
        if not (_UPN.match(value) or _OBJECT_ID.match(value)):
            raise ValueError("give the user's UPN (name@domain) or Entra object id (a GUID)")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not _NAME.match(value):
            raise ValueError("1 to 80 characters, without < > * [ ] \\ _ or `")
        return value

    @property
    def tag(self) -> str:
        return f"<at>{self.name}</at>"


MENTIONED_TRANSITIONS = frozenset({Transition.NEW, Transition.REMINDER, Transition.ESCALATED})


def _owners(notification: Notification) -> Iterable[str]:
    """Owners of the message's failing members (the lead first): a recovered member mentions no one."""
    for member in notification.group:
        if member.transition in MENTIONED_TRANSITIONS:
            yield from member.event.owners


def mentioned_users(notification: Notification, mentions: Mapping[str, TeamsUser]) -> list[TeamsUser]:
    """The configured users among the owners of the alert (and of a group's members), once each,
    in owner order; none for a recovery."""
    if not mentions or notification.transition not in MENTIONED_TRANSITIONS:
        return []
    by_owner = {owner.strip().lower(): user for owner, user in mentions.items()}
    users: dict[str, TeamsUser] = {}
    for owner in _owners(notification):
        user = by_owner.get(owner.strip().lower())
        if user is not None:
            users.setdefault(user.id.lower(), user)
    return list(users.values())


def mention_block(users: list[TeamsUser]) -> dict[str, Any]:
    return {"type": "TextBlock", "text": "For " + ", ".join(u.tag for u in users), "wrap": True, "spacing": "Small"}


def mention_entities(users: list[TeamsUser]) -> list[dict[str, Any]]:
    return [{"type": "mention", "text": u.tag, "mentioned": {"id": u.id, "name": u.name}} for u in users]
