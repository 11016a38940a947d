"""The per-fingerprint state machine: new → ongoing → (resolving →) recovered.

``observe`` is pure: it takes the stored :class:`IncidentState` and an event and returns the
next state plus what happened (:class:`Phase` change). Who gets told what is decided by the
router from that; this module only remembers.

A PASSING event does not close an incident at once when ``flap_window`` > 0: the incident
moves to RESOLVING and is announced as recovered only after the window passes without a new
failure (checked on the next event or on ``AlertRouter.tick``). A failure inside the window
continues the same incident, so a flapping job is one incident, not fifty.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from .events import AlertEvent, Severity, short_hash

# Set on the last failing event of an incident rebuilt after its state DB was lost (see
# ``AlertRouter.restore_incidents``): that event carries only what the audit trail kept.
RESTORED_TAG = "dagster-monitoring/restored_from"


class Phase(str, enum.Enum):
    OK = "ok"
    FAILING = "failing"
    RESOLVING = "resolving"


class Transition(str, enum.Enum):
    """What a receiver is told. ``ongoing`` is recorded but suppressed."""

    NEW = "new"
    ONGOING = "ongoing"
    REMINDER = "reminder"
    ESCALATED = "escalated"
    RECOVERED = "recovered"


class Observation(str, enum.Enum):
    """What an event did to the incident."""

    OPENED = "opened"  # first failure of a new incident
    CONTINUED = "continued"  # another failure of an open incident
    REFAILED = "refailed"  # failure while resolving: flap damped, same incident
    RESOLVING = "resolving"  # success; waiting out the flap window
    RECOVERED = "recovered"  # incident closed; announce once
    HEALTHY = "healthy"  # success with no incident open
    STALE = "stale"  # not newer than what we already saw (late or replayed); ignored


@dataclass(frozen=True)
class ReceiverMark:
    """What one receiver has heard about the current incident. Frozen: copies of a state share them."""

    notified_at: datetime
    severity: Severity
    transition: Transition = Transition.NEW


def _dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


@dataclass
class IncidentState:
    """Alert memory for one fingerprint; survives restarts via the state store."""

    fingerprint: str
    phase: Phase = Phase.OK
    incident_id: str | None = None
    first_failed_at: datetime | None = None
    last_failed_at: datetime | None = None
    last_success_at: datetime | None = None
    resolving_since: datetime | None = None
    last_seen_at: datetime | None = None
    consecutive_failures: int = 0
    flaps: int = 0
    severity: Severity | None = None
    last_event: AlertEvent | None = None  # the last failing event, for recovery cards
    receivers: dict[str, ReceiverMark] = field(default_factory=dict)
    tickets: dict[str, dict[str, str]] = field(default_factory=dict)  # receiver -> {key, url}
    # links of the passing event that ended the failure ("run": the run that fixed it), for the recovery
    fixed_by: dict[str, str] | None = None

    @property
    def is_open(self) -> bool:
        return self.phase is not Phase.OK

    def copy(self) -> IncidentState:
        """A copy whose receivers and tickets can change without touching this one
        (``dataclasses.replace`` costs several times more, and this runs per event).
        Events and receiver marks are frozen, so they are shared."""
        return IncidentState(
            self.fingerprint,
            self.phase,
            self.incident_id,
            self.first_failed_at,
            self.last_failed_at,
            self.last_success_at,
            self.resolving_since,
            self.last_seen_at,
            self.consecutive_failures,
            self.flaps,
            self.severity,
            self.last_event,
            dict(self.receivers),
            {receiver: dict(ticket) for receiver, ticket in self.tickets.items()} if self.tickets else {},
            self.fixed_by,
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IncidentState:
        """The first stored format (one JSON object per state, the event as ``AlertEvent.to_dict``),
        still found in state DBs written by earlier versions."""
        kwargs = dict(data)
        for key in ("first_failed_at", "last_failed_at", "last_success_at", "resolving_since", "last_seen_at"):
            kwargs[key] = _dt(kwargs.get(key))
        kwargs["phase"] = Phase(kwargs.get("phase", "ok"))
        kwargs["severity"] = Severity(kwargs["severity"]) if kwargs.get("severity") else None
        kwargs["last_event"] = AlertEvent.from_dict(kwargs["last_event"]) if kwargs.get("last_event") else None
        kwargs["receivers"] = {
            name: ReceiverMark(_dt(m["notified_at"]), Severity(m["severity"]), Transition(m.get("transition", "new")))  # type: ignore[arg-type]
            for name, m in (kwargs.get("receivers") or {}).items()
        }
        kwargs["tickets"] = dict(kwargs.get("tickets") or {})
        kwargs["fixed_by"] = dict(kwargs["fixed_by"]) if kwargs.get("fixed_by") else None
        return cls(**kwargs)


def incident_id_for(fingerprint: str, first_failed_at: datetime) -> str:
    """Deterministic, so a replayed event stream yields the same incident (and the same idempotency keys)."""
    return f"{short_hash(fingerprint, 10)}-{int(first_failed_at.timestamp())}"


def observe(state: IncidentState, event: AlertEvent, flap_window: timedelta) -> tuple[IncidentState, Observation]:
    """Apply one event to the state. Pure: returns a new state."""
    at = event.occurred_at
    if state.last_seen_at is not None and at <= state.last_seen_at:
        return state, Observation.STALE  # older than what we saw, or the same event replayed
    new = state.copy()
    new.last_seen_at = at

    if event.is_failing:
        new.last_failed_at = at
        new.last_event = event
        if state.phase is Phase.OK:
            new.phase = Phase.FAILING
            new.incident_id = incident_id_for(event.fingerprint, at)
            new.first_failed_at = at
            new.consecutive_failures = 1
            new.flaps = 0
            new.severity = event.severity
            new.receivers = {}
            new.tickets = {}
            new.fixed_by = None
            return new, Observation.OPENED
        new.consecutive_failures += 1
        if state.phase is Phase.RESOLVING:
            new.phase = Phase.FAILING
            new.resolving_since = None
            new.flaps += 1
            new.fixed_by = None
            return new, Observation.REFAILED
        return new, Observation.CONTINUED

    # passing
    new.last_success_at = at
    if state.phase is Phase.OK:
        return new, Observation.HEALTHY
    last = new.last_event
    if last is not None and not last.owners and RESTORED_TAG in last.tags:
        # rebuilt from a trail that kept no owners: its recovery names the passing event's
        new.last_event = replace(last, owners=event.owners)
    if state.phase is Phase.FAILING:
        new.resolving_since = at
        new.fixed_by = fixed_by_links(event)
        if flap_window <= timedelta(0):
            return close(new), Observation.RECOVERED
        new.phase = Phase.RESOLVING
        return new, Observation.RESOLVING
    # already resolving: a further success; recovered once the window has passed
    assert state.resolving_since is not None
    if at - state.resolving_since >= flap_window:
        return close(new), Observation.RECOVERED
    return new, Observation.RESOLVING


def fixed_by_links(event: AlertEvent) -> dict[str, str]:
    """What a recovery links as "the run that fixed it": the passing event's own links."""
    links = {k: v for k, v in event.links.items() if v}
    if event.run_id:
        links["run_id"] = event.run_id
    return links


def recovery_links(failing: Mapping[str, str], fixed_by: Mapping[str, str] | None) -> dict[str, str]:
    """A recovery's links: the run that fixed it first, then the run that failed, then the rest
    (asset check, runbook) of the failing event's links."""
    fixed = dict(fixed_by or {})
    links: dict[str, str] = {}
    if fixed.get("run") and fixed.get("run") != failing.get("run"):
        links["fixed_by_run"] = fixed["run"]
    if failing.get("run"):
        links["failed_run"] = failing["run"]
    links.update({k: v for k, v in failing.items() if k != "run" and v})
    return links


def recovery_due(state: IncidentState, now: datetime, flap_window: timedelta) -> bool:
    return state.phase is Phase.RESOLVING and state.resolving_since is not None and now - state.resolving_since >= flap_window


def close(state: IncidentState) -> IncidentState:
    """Mark the incident recovered. Keeps the incident fields so the recovery can be rendered;
    the next failure opens a fresh incident (``observe`` resets them)."""
    closed = state.copy()
    closed.phase = Phase.OK
    return closed
