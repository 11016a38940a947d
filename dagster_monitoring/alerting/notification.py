"""What a receiver is asked to deliver: one transition of one incident.

A :class:`Notification` is self-contained (event + incident snapshot) so it can sit in the
outbox as JSON and be rendered later, after a restart, exactly as it would have been at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from .durations import format_duration
from .events import ORIGINAL_SEVERITY_TAG, AlertEvent, Severity, iso
from .lifecycle import IncidentState, Transition
from .presentation import MAX_HEADLINE, Presentation, present
from .text import truncate

# What a link's button or line says, by the event's ``links`` key (others: the key in words).
LINK_TITLES = {
    "run": "Open run",
    "fixed_by_run": "Run that fixed it",
    "failed_run": "Failing run",
    "asset_check": "Asset check",
    "asset": "Asset",
    "sensor": "Open sensor",
    "schedule": "Open schedule",
    "dbt_artifacts": "dbt artifacts",
    "compiled_sql": "Test SQL",
    "runbook": "Runbook",
    "logs": "Logs",
}


def is_web_url(url: str | None) -> bool:
    return bool(url) and str(url).lower().startswith(("https://", "http://"))


def link_title(key: str, titles: Mapping[str, str] = LINK_TITLES) -> str:
    return titles.get(key) or LINK_TITLES.get(key) or key.replace("_", " ").capitalize()


@dataclass(frozen=True)
class IncidentSnapshot:
    incident_id: str
    fingerprint: str
    first_failed_at: datetime
    last_failed_at: datetime | None
    failures: int
    last_success_at: datetime | None = None
    recovered_at: datetime | None = None
    flaps: int = 0
    tickets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # receiver -> {key, url}

    @property
    def broken_for(self) -> timedelta | None:
        if self.recovered_at is None:
            return None
        return self.recovered_at - self.first_failed_at

    @classmethod
    def of(cls, state: IncidentState) -> IncidentSnapshot:
        assert state.incident_id and state.first_failed_at
        return cls(
            incident_id=state.incident_id,
            fingerprint=state.fingerprint,
            first_failed_at=state.first_failed_at,
            last_failed_at=state.last_failed_at,
            failures=state.consecutive_failures,
            last_success_at=state.last_success_at,
            recovered_at=state.resolving_since if not state.is_open else None,
            flaps=state.flaps,
            tickets={k: dict(v) for k, v in state.tickets.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "fingerprint": self.fingerprint,
            "first_failed_at": iso(self.first_failed_at),
            "last_failed_at": iso(self.last_failed_at) if self.last_failed_at else None,
            "failures": self.failures,
            "last_success_at": iso(self.last_success_at) if self.last_success_at else None,
            "recovered_at": iso(self.recovered_at) if self.recovered_at else None,
            "flaps": self.flaps,
            "tickets": {k: dict(v) for k, v in self.tickets.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IncidentSnapshot:
        def dt(key: str) -> datetime | None:
            return datetime.fromisoformat(data[key]) if data.get(key) else None

        return cls(
            incident_id=data["incident_id"],
            fingerprint=data["fingerprint"],
            first_failed_at=dt("first_failed_at"),  # type: ignore[arg-type]
            last_failed_at=dt("last_failed_at"),
            failures=int(data["failures"]),
            last_success_at=dt("last_success_at"),
            recovered_at=dt("recovered_at"),
            flaps=int(data.get("flaps", 0)),
            tickets=dict(data.get("tickets") or {}),
        )


@dataclass(frozen=True)
class Notification:
    """One (incident, transition, receiver) delivery, or one message for a group of them.

    A group (see :mod:`.grouping`) is the most severe member's notification (the *lead*: its
    event, incident and transition make the headline, colour and buttons) carrying the other
    members in ``members``, each a whole notification with its own incident and transition. It is
    one outbox row, so it is delivered, retried and settled as one message. ``also_affected``
    holds the notifications that lineage inhibition held back because this one's entity is
    upstream of theirs (they are listed, not announced)."""

    key: str  # unique: incident_id:transition:receiver:seq (a group: group:<hash>:receiver) — the outbox dedup key
    receiver: str
    transition: Transition
    severity: Severity
    event: AlertEvent  # the latest failing event (for recoveries: the one that was failing)
    incident: IncidentSnapshot
    created_at: datetime
    members: tuple[Notification, ...] = ()  # the other members of a group, most severe first
    also_affected: tuple[Notification, ...] = ()  # inhibited downstream alerts folded into this one
    # (title, url) of signed Acknowledge / Silence links (see :mod:`.actions`); failing messages only
    actions: tuple[tuple[str, str], ...] = ()

    @property
    def group(self) -> tuple[Notification, ...]:
        """Every member of the message, the lead first (just this one when it is not a group)."""
        return (self, *self.members) if self.members else (self,)

    @property
    def group_suffix(self) -> str:
        """`` and N more`` for a group, else empty: appended to headlines and subjects."""
        return f" and {len(self.members)} more" if self.members else ""

    def with_member_tickets(self, tickets: Mapping[str, Mapping[str, Mapping[str, str]]]) -> Notification:
        """:meth:`with_tickets` for the lead and each member, from ``fingerprint -> {receiver: ticket}``."""
        lead = self.with_tickets(tickets.get(self.incident.fingerprint, {})) if self.incident.fingerprint in tickets else self
        if not self.members:
            return lead
        members = tuple(m.with_tickets(tickets.get(m.incident.fingerprint, {})) for m in self.members)
        return replace(lead, members=members)

    def with_tickets(self, tickets: Mapping[str, Mapping[str, str]]) -> Notification:
        """The same notification with the incident's current tickets (known at delivery time,
        possibly opened after this notification was queued).

        Only tickets of this notification's own incident are taken: a recovery of an old incident
        delivered late must not see (and close) the ticket of the incident that followed it."""
        own = self.incident.incident_id
        current = {k: dict(v) for k, v in tickets.items() if v.get("incident_id", own) == own}
        if not current:
            return self
        merged = {**{k: dict(v) for k, v in self.incident.tickets.items()}, **current}
        if merged == self.incident.tickets:
            return self
        return replace(self, incident=replace(self.incident, tickets=merged))

    @property
    def ticket(self) -> Mapping[str, str] | None:
        """A ticket opened for this incident by any receiver, for linking from cards and e-mails."""
        for ref in self.incident.tickets.values():
            if ref.get("key"):
                return ref
        return None

    def links(self, titles: Mapping[str, str] = LINK_TITLES) -> list[tuple[str, str]]:
        """(title, url) of the event's http(s) links, in order (a recovery: the run that fixed it
        first). Only http(s): a ``javascript:``, ``data:`` or ``file:`` link becomes no button and no
        href in any receiver."""
        return [(link_title(key, titles), url) for key, url in self.event.links.items() if is_web_url(url)]

    @property
    def status_label(self) -> str:
        return {
            Transition.NEW: "New",
            Transition.ONGOING: "Ongoing",
            Transition.REMINDER: "Ongoing (reminder)",
            Transition.ESCALATED: "Escalated",
            Transition.RECOVERED: "Recovered",
        }[self.transition]

    @cached_property
    def presentation(self) -> Presentation:
        """The kind's curated headline and facts (see :mod:`.presentation`)."""
        return present(self.event, self.severity)

    @property
    def headline(self) -> str:
        """What broke (or what recovered), in words: the card header. Trimmed like everything else."""
        return self.presentation.headline(self.severity, recovered=self.transition is Transition.RECOVERED)

    @property
    def title(self) -> str:
        """One line with severity and status, for plain-text receivers and ticket summaries."""
        if self.transition is Transition.RECOVERED:
            return self.headline + self.group_suffix
        return (
            truncate(f"{self.severity.value.upper()} {self.status_label.upper()}: {self.headline}", MAX_HEADLINE + 30) + self.group_suffix
        )

    @property
    def thread_subject(self) -> str:
        """The same for every transition of one incident (e-mail clients thread on it); a group's
        is its lead's with `` and N more``."""
        return self.presentation.subject + self.group_suffix

    def member_line(self) -> str:
        """One member of a group in a line: severity and state, entity, what happened."""
        state = "RECOVERED" if self.transition is Transition.RECOVERED else f"{self.severity.value.upper()} {self.status_label.lower()}"
        return f"{state} · {self.event.entity} · {self.headline}"

    @property
    def transition_line(self) -> str:
        """What this message is, in one sentence: new, reminder (how long, how many), escalation
        (from, to, why), recovery."""
        inc = self.incident
        since = format_duration(self.created_at - inc.first_failed_at)
        if self.transition is Transition.NEW:
            return f"New {self.severity.value.upper()} incident."
        if self.transition is Transition.REMINDER:
            return f"Reminder: still failing after {since}, {inc.failures} failure(s) in a row."
        if self.transition is Transition.ESCALATED:
            before = self.escalated_from
            reason = f"{inc.failures} failures in a row over {since}"
            return (
                f"Escalated from {before.value.upper()} to {self.severity.value.upper()}: {reason}."
                if before
                else (f"Escalated to {self.severity.value.upper()}: {reason}.")
            )
        if self.transition is Transition.RECOVERED:
            took = format_duration(inc.broken_for) if inc.broken_for is not None else since
            return f"Recovered after {took} and {inc.failures} failure(s)."
        return self.status_label

    @property
    def escalated_from(self) -> Severity | None:
        """The event's own severity, when the router raised it (an escalation)."""
        original = self.event.tags.get(ORIGINAL_SEVERITY_TAG) if self.event.tags else None
        try:
            return Severity.parse(original) if original else None
        except ValueError:
            return None

    def lifecycle_facts(self, *, relative: bool = True) -> list[tuple[str, str]]:
        """Since when, how often, who owns it, the ticket: what every human receiver shows next to
        the kind's own facts. ``relative=False``: absolute times only (tickets are read later)."""
        inc = self.incident
        now = self.created_at
        when = (lambda at: _when(at, now)) if relative else _utc
        if self.transition is Transition.RECOVERED and inc.recovered_at:
            rows = [
                ("Recovered at", _utc(inc.recovered_at)),
                ("Broken for", format_duration(inc.broken_for or timedelta(0))),
                ("Failing since", _utc(inc.first_failed_at)),
                ("Failures", str(inc.failures)),
            ]
        else:
            rows = [
                ("Failing since", when(inc.first_failed_at)),
                ("Failures", f"{inc.failures} in a row" + (f" ({inc.flaps} flaps)" if inc.flaps else "")),
                ("Last success", when(inc.last_success_at) if inc.last_success_at else "none recorded"),
            ]
        rows.append(("Owner", ", ".join(self.event.owners) if self.event.owners else "unassigned"))
        ticket = self.ticket
        if ticket:
            rows.append(("Ticket", ticket["key"] + (" (closed)" if self.transition is Transition.RECOVERED else "")))
        return rows

    def facts(self, now: datetime | None = None) -> list[tuple[str, str]]:
        """The shared fact list (label, value) every human-facing transport shows."""
        inc = self.incident
        ev = self.event
        rows: list[tuple[str, str]] = [
            ("Status", self.status_label),
            ("Severity", self.severity.value.upper()),
            ("Entity", ev.entity),
            ("Source", f"{ev.source} / {ev.kind}"),
            ("Failing since", _when(inc.first_failed_at, now or self.created_at)),
            ("Failures", str(inc.failures) + (f" ({inc.flaps} flaps)" if inc.flaps else "")),
            ("Last success", _when(inc.last_success_at, now or self.created_at) if inc.last_success_at else "none recorded"),
            ("Owner", ", ".join(ev.owners) if ev.owners else "unassigned"),
        ]
        if self.transition is Transition.RECOVERED and inc.recovered_at:
            rows = [r for r in rows if r[0] not in ("Last success", "Failing since")]
            rows[1:1] = [
                ("Recovered at", _utc(inc.recovered_at)),
                ("Broken for", format_duration(inc.broken_for or timedelta(0))),
                ("Failing since", _utc(inc.first_failed_at)),
            ]
        if ev.run_id:
            rows.append(("Run", ev.run_id))
        ticket = self.ticket
        if ticket:
            rows.append(("Ticket", ticket["key"]))
        return rows

    @property
    def next_action(self) -> str:
        if self.transition is Transition.RECOVERED:
            return "No action needed. Close any follow-up you opened."
        return self.event.next_action or "Open the run, read the error, fix the cause and re-run."

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key,
            "receiver": self.receiver,
            "transition": self.transition._value_,  # ``_value_``: the ``value`` property is slow per message
            "severity": self.severity._value_,
            "event": self.event.to_dict(),
            "incident": self.incident.to_dict(),
            "created_at": iso(self.created_at),
        }
        # Only when set, so an ungrouped notification is stored exactly as before grouping existed.
        if self.members:
            data["members"] = [m.to_dict() for m in self.members]
        if self.also_affected:
            data["also_affected"] = [m.to_dict() for m in self.also_affected]
        if self.actions:
            data["actions"] = [[title, url] for title, url in self.actions]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Notification:
        return cls(
            key=data["key"],
            receiver=data["receiver"],
            transition=Transition(data["transition"]),
            severity=Severity(data["severity"]),
            event=AlertEvent.from_dict(data["event"]),
            incident=IncidentSnapshot.from_dict(data["incident"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            members=tuple(cls.from_dict(m) for m in data.get("members") or ()),
            also_affected=tuple(cls.from_dict(m) for m in data.get("also_affected") or ()),
            actions=tuple((str(title), str(url)) for title, url in data.get("actions") or ()),
        )


def _utc(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def _when(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "unknown"
    return f"{_utc(at)} ({format_duration(now - at)} ago)"
