"""The watchdog: alerts when a monitoring sensor stops ticking or its ticks fail.

Each monitoring sensor records a heartbeat per tick (``with_heartbeat``). The watchdog reads
them every tick and feeds the router a ``heartbeat`` event per sensor: FAILING when the last
tick raised or when none came for ``max(stale_factor x interval, min_silence)``, PASSING
otherwise, so a sensor that comes back is announced as recovered. If the whole daemon is
down, nothing inside Dagster can tell: ``dagster-monitoring watch`` (dagster_monitoring/watch.py)
checks the daemon's heartbeats from outside and sends these same events too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import dagster as dg

from ..alerting.durations import format_duration
from ..alerting.events import AlertEvent, Severity, Status
from ..runtime import MonitoringRuntime

# What stops while a monitoring sensor is down, by its ``dagster-monitoring`` tag: the card must
# say what the on-call loses, and "alerts are not sent" is not true of the audit sensor.
CONSEQUENCES = {
    "alerts": "Run failures and asset-check results are not alerted while this lasts; they are sent once it ticks again.",
    "sources": "Fivetran and dbt Cloud outcomes are not polled while this lasts; the next tick reads their current state "
    "(webhooks to `dagster-monitoring serve` still arrive).",
    "ticks": "Failing schedule and sensor ticks are not alerted while this lasts; the next tick reads their current state.",
    "audit": "Runs and check results are not written to the audit trail while this lasts; "
    "nothing is lost, the sensor catches up from its cursor when it ticks again.",
}
DEFAULT_CONSEQUENCE = "This monitoring sensor's work is not done while this lasts."


def sensor_url(base_url: str | None, location: str | None, name: str) -> str | None:
    """The sensor's page in the UI (its ticks and their errors), else the Automation list."""
    if not base_url:
        return None
    if location:
        return f"{base_url}/locations/{quote(location, safe='')}/sensors/{quote(name, safe='')}"
    return f"{base_url}/automation"


def heartbeat_events(
    runtime: MonitoringRuntime,
    now: datetime,
    *,
    own_name: str,
    stale_factor: float,
    min_silence: timedelta,
    kinds: Mapping[str, str] | None = None,
    location: str | None = None,
) -> list[AlertEvent]:
    """One event per monitoring sensor that records heartbeats (``kinds``: sensor name -> its
    ``dagster-monitoring`` tag, for the wording; ``location``: the code location, for the link)."""
    events = []
    owners = (runtime.config.default_owner,) if runtime.config.default_owner else ()
    for beat in runtime.router.store.heartbeats():
        if beat.name == own_name:
            continue
        silent_for = now - beat.last_tick_at
        allowed = max(timedelta(seconds=beat.interval_s * stale_factor), min_silence)
        failing_tick = beat.last_error is not None
        stale = silent_for > allowed
        details: dict[str, object]
        if failing_tick:
            since = f" since {format_duration(now - beat.last_ok_at)}" if beat.last_ok_at else ""
            summary = f"Monitoring sensor {beat.name} is failing{since}: its ticks raise an error"
            details = {
                "Error": beat.last_error,
                "Last good tick": f"{format_duration(now - beat.last_ok_at)} ago" if beat.last_ok_at else "never",
            }
        elif stale:
            summary = f"Monitoring sensor {beat.name} stopped ticking {format_duration(silent_for)} ago"
            details = {
                "Last tick": f"{format_duration(silent_for)} ago ({beat.last_tick_at:%Y-%m-%d %H:%M UTC})",
                "Expected every": format_duration(timedelta(seconds=beat.interval_s)),
            }
        else:
            summary, details = f"Monitoring sensor {beat.name} is ticking", {}
        link = sensor_url(runtime.config.dagster_base_url, location, beat.name)
        consequence = CONSEQUENCES.get((kinds or {}).get(beat.name, ""), DEFAULT_CONSEQUENCE)
        events.append(
            AlertEvent(
                source="dagster-monitoring",
                kind="heartbeat",
                entity=beat.name,
                status=Status.FAILING if (failing_tick or stale) else Status.PASSING,
                severity=Severity.ERROR,
                occurred_at=now,
                summary=summary,
                details=details,
                owners=owners,
                links={"sensor": link} if link else {},
                next_action=(
                    f"{consequence} Open the sensor's page (Automation > {beat.name}), read the latest tick's error, "
                    "and check that dagster-daemon is running."
                ),
            )
        )
    return events


def build_watchdog_sensor(
    *,
    runtime: MonitoringRuntime,
    name: str = "dagster_monitoring_watchdog",
    minimum_interval_seconds: int = 60,
    stale_factor: float = 3.0,
    min_silence: timedelta = timedelta(minutes=5),
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """A sensor that watches the other monitoring sensors' heartbeats."""

    @dg.sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="dagster-monitoring: alerts when a monitoring sensor stops ticking or fails",
        tags={"dagster-monitoring": "watchdog"},
    )
    def _watchdog(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        now = datetime.now(timezone.utc)
        repository = getattr(context, "repository_def", None)
        kinds = {s.name: s.tags.get("dagster-monitoring", "") for s in repository.sensor_defs} if repository else {}
        kinds.update(runtime.sensor_kinds)
        origin = getattr(context, "code_location_origin", None)
        events = heartbeat_events(
            runtime,
            now,
            own_name=name,
            stale_factor=stale_factor,
            min_silence=min_silence,
            kinds=kinds,
            location=getattr(origin, "location_name", None),
        )
        result = runtime.router.process(events)
        failing = [e.entity for e in events if e.is_failing]
        return dg.SkipReason(
            f"{len(events)} sensor(s) watched; failing or silent: {', '.join(failing) or 'none'}; "
            f"{len(result.notifications)} notification(s)"
        )

    return _watchdog
