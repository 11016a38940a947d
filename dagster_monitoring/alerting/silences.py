"""Silences and acknowledgements kept in the state DB (made by the CLI and by signed card links).

A **silence** is Alertmanager's: a list of equality matchers, ANDed, with an author, a comment
and a window (``starts_at`` .. ``ends_at``); ``expired_at`` is set when someone ends it early.
While active it suppresses new, reminder and escalation notifications of matching incidents;
their state and every decision are still recorded (``silenced_by`` names the silence).

An **acknowledgement** belongs to one incident (fingerprint + incident id): it stops that
incident's reminders until it recovers. It is stored in the same table (``kind = "ack"``), so one
query per router call reads both; the router ends it (``expired_at``) when the incident recovers
or a new incident of that fingerprint opens, and a new failure then notifies again.

Silences made in the config file (``silences:``) keep working beside these.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .events import AlertEvent

SILENCE, ACK = "silence", "ack"

# Matcher keys: an event field compared for equality; ``owner`` matches when the event names
# that owner among its owners; ``tags.NAME`` compares one tag.
MATCHER_KEYS = ("fingerprint", "entity", "kind", "source", "owner")
_TAG_PREFIX = "tags."
MAX_MATCHER_VALUE = 255


class SilenceError(ValueError):
    """A silence that cannot be made; the message names the bad argument."""


def parse_matcher(text: str) -> tuple[str, str]:
    """``key=value`` (the CLI's ``--match``) as a (key, value) pair; errors name the matcher."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value:
        raise SilenceError(f"--match {text!r}: expected key=value, e.g. entity=loans_daily")
    return check_matcher(key, value, where=f"--match {text!r}")


def check_matcher(key: str, value: str, *, where: str = "matcher") -> tuple[str, str]:
    if key not in MATCHER_KEYS and not (key.startswith(_TAG_PREFIX) and len(key) > len(_TAG_PREFIX)):
        raise SilenceError(f"{where}: unknown key {key!r}; expected one of {', '.join(MATCHER_KEYS)} or tags.NAME")
    if len(value) > MAX_MATCHER_VALUE:
        raise SilenceError(f"{where}: value longer than {MAX_MATCHER_VALUE} characters")
    return key, value


def _check_matchers(matchers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    found = tuple(check_matcher(k, v) for k, v in matchers)
    if not found:
        raise SilenceError("a silence needs at least one matcher (--match key=value); it would silence everything")
    return found


@dataclass(frozen=True)
class StoredSilence:
    """One row of ``dm_alert_silences``: a silence, or an acknowledgement (``kind == "ack"``).

    It quacks like :class:`~.policy.Silence` where :class:`~.policy.MatchCache` looks (``entity``,
    ``fingerprint``, ``tags``, ``owners``, ``expires_at``, ``matches``), so config silences and
    stored ones are matched the same way, once per distinct event key."""

    id: str
    kind: str
    matchers: tuple[tuple[str, str], ...]
    author: str
    comment: str
    starts_at: datetime
    ends_at: datetime | None  # None: an acknowledgement (ends when its incident recovers)
    created_at: datetime
    expired_at: datetime | None = None
    incident_id: str | None = None  # acknowledgements: the incident it belongs to

    @property
    def tags(self) -> dict[str, str]:
        return {k[len(_TAG_PREFIX) :]: v for k, v in self.matchers if k.startswith(_TAG_PREFIX)}

    @property
    def owners(self) -> tuple[str, ...]:
        return tuple(v for k, v in self.matchers if k == "owner")

    @property
    def entity(self) -> str | None:
        return next((v for k, v in self.matchers if k == "entity"), None)

    @property
    def fingerprint(self) -> str | None:
        return next((v for k, v in self.matchers if k == "fingerprint"), None)

    @property
    def expires_at(self) -> datetime:
        """When it stops applying (an acknowledgement: never by time)."""
        return self.ends_at if self.ends_at is not None else datetime.max.replace(tzinfo=self.starts_at.tzinfo)

    def matches(self, event: AlertEvent) -> bool:
        for key, value in self.matchers:
            if key == "owner":
                if value not in event.owners:
                    return False
            elif key.startswith(_TAG_PREFIX):
                if event.tags.get(key[len(_TAG_PREFIX) :]) != value:
                    return False
            elif getattr(event, key) != value:
                return False
        return True

    def active_at(self, now: datetime) -> bool:
        return self.expired_at is None and self.starts_at <= now and (self.ends_at is None or now < self.ends_at)

    @property
    def label(self) -> str:
        """What a decision's ``silenced_by`` says: which silence, by whom, why."""
        what = f"acknowledged by {self.author}" if self.kind == ACK else f"silence {self.id} by {self.author}"
        return f"{what}: {self.comment}" if self.comment else what

    def state_at(self, now: datetime) -> str:
        if self.expired_at is not None:
            return "expired"
        if self.ends_at is not None and now >= self.ends_at:
            return "ended"
        if now < self.starts_at:
            return "pending"
        return "active"

    def describe_matchers(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.matchers)


def new_silence(
    id: str,
    matchers: Iterable[tuple[str, str]],
    *,
    author: str,
    comment: str,
    now: datetime,
    ends_at: datetime,
    starts_at: datetime | None = None,
) -> StoredSilence:
    """A silence to store; checks what the CLI and the links cannot check alone."""
    found = _check_matchers(matchers)
    if not author.strip():
        raise SilenceError("--author: say who silences it (an e-mail or a name)")
    starts = starts_at or now
    if ends_at.tzinfo is None:
        raise SilenceError("--until: give a timezone, e.g. 2026-12-01T18:00:00Z")
    if ends_at <= max(starts, now):
        raise SilenceError(f"--until / --duration: the silence would end at {ends_at.isoformat()}, which is not in the future")
    return StoredSilence(id, SILENCE, found, author.strip(), comment.strip(), starts, ends_at, now)


def new_ack(id: str, fingerprint: str, incident_id: str, *, author: str, comment: str, now: datetime) -> StoredSilence:
    return StoredSilence(id, ACK, (("fingerprint", fingerprint),), author, comment, now, None, now, None, incident_id)


@dataclass(frozen=True)
class ActiveSilences:
    """The stored silences and acknowledgements in force for one router call (read in one query)."""

    silences: tuple[StoredSilence, ...] = ()
    acks: dict[str, StoredSilence] | None = None  # fingerprint -> its (latest) acknowledgement

    @classmethod
    def of(cls, rows: Sequence[StoredSilence], now: datetime) -> ActiveSilences:
        silences = tuple(r for r in rows if r.kind == SILENCE and r.active_at(now))
        acks = {r.fingerprint: r for r in sorted((r for r in rows if r.kind == ACK), key=_created) if r.fingerprint}
        return cls(silences, acks or None)


def _created(row: StoredSilence) -> datetime:
    return row.created_at


def matchers_json(matchers: Sequence[tuple[str, str]]) -> list[list[str]]:
    return [[k, v] for k, v in matchers]


def matchers_from_json(data: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in data)
