"""Schedule and sensor tick failures, for every instigator of the instance (dagster#29625).

Dagster records each tick (SUCCESS, SKIPPED, FAILURE) in the schedule storage, but tells nobody
when a sensor starts raising or a schedule's function fails. This reads every schedule and
sensor the instance knows (``instance.all_instigator_state()``, any code location, ours too)
and their latest ticks, and makes one ``tick`` event per instigator: FAILING once the latest
``min_failures`` completed ticks all failed, PASSING when the latest completed tick is good
(SUCCESS or SKIPPED) or the instigator was stopped. ``occurred_at`` is the tick's own time, so
reading the same tick again is a replay the router ignores: one alert per failure streak, one
recovery on the next good tick.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import dagster as dg
from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType, TickStatus

from ..alerting.durations import format_duration
from ..alerting.events import AlertEvent, Status
from ..translator import default_error_line
from .config import TickFailuresConfig

SOURCE, KIND = "dagster", "tick"
_GOOD = (TickStatus.SUCCESS, TickStatus.SKIPPED)
_WINDOW = 20  # ticks read per instigator: the streak is counted up to this ("20 or more")
_BATCH = 500  # instigators per query


def instigator_url(base_url: str | None, location: str, kind: str, name: str) -> str | None:
    """The schedule's or sensor's page in the UI: its tick history and each tick's error."""
    if not base_url:
        return None
    return f"{base_url}/locations/{quote(location, safe='')}/{kind}s/{quote(name, safe='')}"


def _time(tick: Any) -> datetime:
    return datetime.fromtimestamp(tick.end_timestamp or tick.timestamp, tz=timezone.utc)


def tick_events(
    instance: dg.DagsterInstance,
    config: TickFailuresConfig,
    *,
    base_url: str | None,
    owners: Sequence[str] = (),
    skip: Collection[str] = (),
) -> list[AlertEvent]:
    """One event per schedule / sensor with a completed tick (none while a streak is shorter
    than ``min_failures``: not yet an alert, and nothing to resolve). ``skip``: sensor names
    watched otherwise (the monitoring sensors: the watchdog alerts on their failing ticks)."""
    now = datetime.now(timezone.utc)
    states = [
        state
        for state in instance.all_instigator_state()
        if state.instigator_type in (InstigatorType.SCHEDULE, InstigatorType.SENSOR) and state.instigator_name not in skip
    ]
    limit = max(_WINDOW, config.min_failures)
    events = []
    for start in range(0, len(states), _BATCH):  # one query per batch of instigators, not one each
        chunk = states[start : start + _BATCH]
        # no statuses= filter: Dagster 1.13's get_batch_ticks raises with one (Subquery.where); one
        # tick more instead, for the one that may still be running
        ticks_of = instance.get_batch_ticks([s.selector_id for s in chunk], limit=limit + 1)
        for state in chunk:
            ticks = [t for t in ticks_of.get(state.selector_id) or () if t.status is not TickStatus.STARTED][:limit]
            event = _event(state, ticks, config, now, base_url, tuple(owners)) if ticks else None
            if event is not None:
                events.append(event)
    return events


def _event(
    state: Any, ticks: Sequence[Any], config: TickFailuresConfig, now: datetime, base_url: str | None, owners: tuple[str, ...]
) -> AlertEvent | None:
    kind = "schedule" if state.instigator_type is InstigatorType.SCHEDULE else "sensor"
    location = state.origin.repository_origin.code_location_origin.location_name
    name = state.instigator_name
    entity = f"{location}/{name}"  # names are unique per code location, not per instance
    link = instigator_url(base_url, location, kind, name)
    links = {kind: link} if link else {}
    base = dict(
        source=SOURCE,
        kind=KIND,
        entity=entity,
        severity=config.severity,
        owners=owners,
        links=links,
        tags={"dagster/instigator_type": kind, "dagster/code_location": location},
    )
    latest = ticks[0]
    if state.status is InstigatorStatus.STOPPED:
        if latest.status in _GOOD:
            return None  # stopped after a good tick: nothing to resolve, nothing to write
        return AlertEvent(status=Status.PASSING, occurred_at=now, summary=f"The {kind} {name} was stopped", **base)  # type: ignore[arg-type]
    if latest.status in _GOOD:
        return AlertEvent(
            status=Status.PASSING,
            occurred_at=_time(latest),
            summary=f"The {kind} {name} ticks again ({latest.status.value})",
            **base,  # type: ignore[arg-type]
        )
    streak = 0
    for tick in ticks:
        if tick.status is not TickStatus.FAILURE:
            break
        streak += 1
    if streak < config.min_failures:
        return None
    first = ticks[streak - 1]
    last_good = ticks[streak] if streak < len(ticks) else None
    error = default_error_line(latest.error)
    count = f"{streak}{' or more' if last_good is None and len(ticks) >= _WINDOW else ''}"
    return AlertEvent(
        status=Status.FAILING,
        occurred_at=_time(latest),
        summary=f"The {kind} {name} in {location} is failing: {count} failed tick(s) in a row",
        details={
            "Error": error,
            "Code location": location,
            "Failing since": f"{_time(first):%Y-%m-%d %H:%M UTC} ({format_duration(max(now - _time(first), timedelta(0)))} ago)",
            "Failed ticks in a row": count,
            "Last good tick": f"{_time(last_good):%Y-%m-%d %H:%M UTC}" if last_good is not None else "none in the last ticks",
        },
        next_action=(
            f"Open the {kind}'s page (Automation > {name}) and read the failed tick's error. "
            + ("A schedule's function" if kind == "schedule" else "The sensor's function")
            + " raised in code location "
            + location
            + ": fix the code or its configuration (a credential, a "
            "missing resource) and redeploy; the alert recovers on the next good tick. "
            "While it fails, no run is requested by it."
        ),
        **base,  # type: ignore[arg-type]
    )
