"""Policy as data: routes, escalation, silences and timing.

Every function here is pure (event and state in, answer out) so the rules can be tested with
tables and explained in a config file; the router only strings them together.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .durations import Duration
from .events import AlertEvent, Severity

if TYPE_CHECKING:
    from .lifecycle import IncidentState
    from .silences import StoredSilence


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Matcher(_Strict):
    """Conditions an event must meet; every field that is set must match (AND)."""

    min_severity: Severity = Field(default=Severity.WARN, description="events at least this severe")
    sources: tuple[str, ...] = Field(default=(), description="any of these sources (dagster, dbt, dlt, ...); empty: all")
    kinds: tuple[str, ...] = Field(
        default=(), description="any of these kinds (run, asset_check, freshness, schema_drift, heartbeat, ...); empty: all"
    )
    tags: dict[str, str] = Field(default_factory=dict, description="all of these tags, exact values")
    owners: tuple[str, ...] = Field(default=(), description="any of these owners (team:x, e-mail)")
    entity: str | None = Field(default=None, description="glob on the entity, e.g. 'loans/*'")
    fingerprint: str | None = Field(default=None, description="glob on source:kind:entity")

    @field_validator("min_severity", mode="before")
    @classmethod
    def _severity(cls, value: object) -> Severity:
        return Severity.parse(value)  # type: ignore[arg-type]

    def matches(self, event: AlertEvent) -> bool:
        if event.severity < self.min_severity:
            return False
        if self.sources and event.source not in self.sources:
            return False
        if self.kinds and event.kind not in self.kinds:
            return False
        if any(event.tags.get(k) != v for k, v in self.tags.items()):
            return False
        if self.owners and not set(self.owners) & set(event.owners):
            return False
        if self.entity is not None and not fnmatch.fnmatchcase(event.entity, self.entity):
            return False
        if self.fingerprint is not None and not fnmatch.fnmatchcase(event.fingerprint, self.fingerprint):
            return False
        return True


class Route(Matcher):
    """An ordered routing rule. First match wins unless ``continue: true``.

    ``min_failures`` lets a quiet receiver (a ticket queue, a wider channel) hear about an
    incident only once it has failed that many times in a row (seed 000: low severity tickets
    only after repeats). The receiver is told ``new`` the first time the route matches.
    """

    receivers: tuple[str, ...] = Field(description="receiver names to notify")
    min_failures: int = Field(default=1, ge=1, description="notify only from this many consecutive failures on (quiet receivers)")
    continue_: bool = Field(default=False, alias="continue", description="keep matching the next routes after this one")

    @field_validator("receivers")
    @classmethod
    def _non_empty(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("a route must name at least one receiver")
        return value


class EscalationRule(_Strict):
    """Raise an ongoing incident's severity (never lower it).

    Give exactly one trigger: ``after_failures`` (consecutive failures), ``after_failing_for``
    (time since the last success, or since the first failure when no success is known) or
    ``tags`` (e.g. an asset criticality tag ``{criticality: high}``).
    """

    to: Severity = Field(description="the severity to raise to")
    after_failures: int | None = Field(default=None, ge=1, description="when the incident has failed this many times in a row")
    after_failing_for: Duration | None = Field(default=None, description="when the incident has been failing this long")
    tags: dict[str, str] | None = Field(default=None, description="when the event carries all these tags (e.g. criticality: high)")
    sources: tuple[str, ...] = Field(default=(), description="only events of these sources; empty: all")
    kinds: tuple[str, ...] = Field(default=(), description="only events of these kinds; empty: all")

    @field_validator("to", mode="before")
    @classmethod
    def _severity(cls, value: object) -> Severity:
        return Severity.parse(value)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _one_trigger(self) -> EscalationRule:
        triggers = [t for t in (self.after_failures, self.after_failing_for, self.tags) if t is not None]
        if len(triggers) != 1:
            raise ValueError("give exactly one of after_failures, after_failing_for, tags")
        return self

    def applies(self, event: AlertEvent, state: IncidentState) -> bool:
        if self.sources and event.source not in self.sources:
            return False
        if self.kinds and event.kind not in self.kinds:
            return False
        if self.after_failures is not None:
            return state.consecutive_failures >= self.after_failures
        if self.after_failing_for is not None:
            since = state.last_success_at or state.first_failed_at
            return since is not None and event.occurred_at - since >= self.after_failing_for
        assert self.tags is not None
        return all(event.tags.get(k) == v for k, v in self.tags.items())


class Silence(Matcher):
    """Mute matching incidents until ``expires_at``. Silenced decisions are still recorded."""

    expires_at: datetime = Field(description="tz-aware timestamp, e.g. 2026-12-31T00:00:00Z; the silence ends then")
    comment: str = Field(default="", description="why, for whoever reads the config or the audit row")
    min_severity: Severity = Field(default=Severity.WARN, description="silence events at least this severe")

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("expires_at must carry a timezone, e.g. 2026-12-01T00:00:00Z")
        return value

    def active(self, event: AlertEvent, now: datetime) -> bool:
        return now < self.expires_at and self.matches(event)

    @property
    def label(self) -> str:
        """What a silenced decision's ``silenced_by`` says."""
        return self.comment or "silence"


class PolicyConfig(_Strict):
    """Timing of the lifecycle."""

    repeat_interval: Duration = Field(default=timedelta(hours=4), description="remind while still failing")
    flap_window: Duration = Field(
        default=timedelta(minutes=15),
        description="a recovery is announced only after this long without a new failure; "
        "a failure inside the window continues the same incident",
    )
    escalation: tuple[EscalationRule, ...] = ()
    grouping: bool = Field(
        default=True,
        description="false: one message per notification, as before grouping (the same as group_by: [])",
    )
    group_by: tuple[str, ...] = Field(
        default=("run_id",),
        description=(
            "notifications of one router call for the same receiver with equal values of these fields become one message "
            "listing the members (like Alertmanager's group_by): run_id, source, kind, owner, severity, or tags.NAME; "
            "a notification missing one of them is sent alone; []: no grouping. Ticket receivers are never grouped"
        ),
    )
    group_wait: Duration = Field(
        default=timedelta(0),
        description=(
            "hold a group's first message this long after its first member (Alertmanager's group_wait), so members that "
            "arrive in later calls (runs of one owner ending minutes apart, webhooks one request each) join it; "
            "sent by the first router call after it (the next sensor tick). 0s: each call's notifications are sent at once"
        ),
    )
    inhibition: bool = Field(
        default=True,
        description=(
            "an alert whose upstream asset (its dagster-monitoring/upstream tag) failed in the same run, at least as "
            "severely, is recorded but not sent on its own: the upstream's message lists it under Also affected"
        ),
    )

    @field_validator("group_by", mode="before")
    @classmethod
    def _group_fields(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError("group_by is a list of field names, e.g. [run_id] (a single string is not a list)")
        if not isinstance(value, (list, tuple)):
            return value
        seen: set[str] = set()
        for name in value:
            if not isinstance(name, str) or not (name in GROUP_FIELDS or (name.startswith("tags.") and len(name) > 5)):
                raise ValueError(f"unknown group_by field {name!r}; expected {', '.join(sorted(GROUP_FIELDS))} or tags.NAME")
            if name in seen:
                raise ValueError(f"group_by names {name!r} twice")
            seen.add(name)
        return value

    @field_validator("group_wait")
    @classmethod
    def _short_wait(cls, value: timedelta) -> timedelta:
        if value > timedelta(hours=1):
            raise ValueError("group_wait delays every grouped alert; keep it at most 1h (30s-5m is usual)")
        return value

    @property
    def grouped_by(self) -> tuple[str, ...]:
        """The fields grouping uses; empty when grouping is off."""
        return self.group_by if self.grouping else ()


# Fields a group key can be made of (plus ``tags.NAME``), read by :func:`group_key`.
GROUP_FIELDS = frozenset({"run_id", "source", "kind", "owner", "severity"})


def group_key(event: AlertEvent, fields: Sequence[str]) -> tuple[str, ...] | None:
    """The values of ``fields`` for ``event``; None (not grouped) when any of them is missing, so
    with the default ``[run_id]`` an event outside a run is sent on its own."""
    values: list[str] = []
    for name in fields:
        if name == "run_id":
            value = event.run_id
        elif name == "owner":
            value = ",".join(event.owners)
        elif name == "severity":
            value = event.severity.value
        elif name.startswith("tags."):
            value = event.tags.get(name[5:])
        else:
            value = getattr(event, name)
        if not value:
            return None
        values.append(value)
    return tuple(values)


def effective_severity(event: AlertEvent, state: IncidentState, rules: Iterable[EscalationRule]) -> Severity:
    """The event's own severity raised by every escalation rule that applies (never lowered)."""
    severity = event.severity
    for rule in rules:
        if rule.to > severity and rule.applies(event, state):
            severity = rule.to
    return severity


def match_routes(event: AlertEvent, routes: Sequence[Route]) -> list[Route]:
    """Routes that match, in order, stopping at the first match without ``continue``."""
    matched: list[Route] = []
    for route in routes:
        if route.matches(event):
            matched.append(route)
            if not route.continue_:
                break
    return matched


def receivers_for(
    event: AlertEvent,
    consecutive_failures: int,
    routes: Sequence[Route],
    owners_map: dict[str, tuple[str, ...]],
    default_receivers: Sequence[str] = (),
    *,
    matched: Sequence[Route] | None = None,
) -> list[str]:
    """Receivers that should hear about this failing event now, de-duplicated, in route order.
    ``matched`` is ``match_routes(event, routes)`` when the caller already has it (see :class:`MatchCache`)."""
    names: list[str] = []
    any_route = False
    for route in match_routes(event, routes) if matched is None else matched:
        any_route = True
        if consecutive_failures >= route.min_failures:
            names.extend(route.receivers)
    for owner in event.owners:
        names.extend(owners_map.get(owner, ()))
    if not names and not any_route:
        names.extend(default_receivers)
    return list(dict.fromkeys(names))


def active_silence(event: AlertEvent, silences: Sequence[Silence], now: datetime) -> Silence | None:
    for silence in silences:
        if silence.active(event, now):
            return silence
    return None


class MatchCache:
    """Route and silence matching for one router call, done once per distinct event key.

    Matching reads only a few event fields (severity, source, kind, and the entity, tags and owners
    that some matcher names), and a sensor batch repeats the same few combinations, so the answer
    is memoised on exactly those fields. Silences are checked against ``now`` once, up front; the
    cache is meant for one call (one ``now``), then thrown away.
    """

    def __init__(self, routes: Sequence[Route], silences: Sequence[Silence | StoredSilence], now: datetime) -> None:
        self.routes = routes
        self.silences = [s for s in silences if now < s.expires_at]
        matchers: list[Matcher | StoredSilence] = [*routes, *self.silences]
        self._by_entity = any(m.entity is not None or m.fingerprint is not None for m in matchers)
        self._tag_keys = tuple(sorted({k for m in matchers for k in m.tags}))
        self._by_owner = any(m.owners for m in matchers)
        self._memo: dict[tuple[object, ...], tuple[list[Route], Silence | StoredSilence | None]] = {}

    def key(self, event: AlertEvent) -> tuple[object, ...]:
        """Equal for two events exactly when no route or silence can tell them apart."""
        return (
            event.severity,
            event.source,
            event.kind,
            event.entity if self._by_entity else None,
            tuple(map(event.tags.get, self._tag_keys)) if self._tag_keys else None,
            event.owners if self._by_owner else None,
        )

    def lookup(self, event: AlertEvent) -> tuple[list[Route], Silence | StoredSilence | None]:
        """``(match_routes(event, routes), the first silence matching it)``."""
        key = self.key(event)
        found = self._memo.get(key)
        if found is None:
            silence = next((s for s in self.silences if s.matches(event)), None)
            found = self._memo[key] = (match_routes(event, self.routes), silence)
        return found
