"""The watchdog: alerts when a monitoring sensor stops ticking or its ticks fail.

Each monitoring sensor records a heartbeat per tick (``with_heartbeat``). The watchdog reads
them every tick and feeds the router a ``heartbeat`` event per sensor: FAILING when the last
tick raised or when none came for ``max(stale_factor x interval, min_silence)``, PASSING
otherwise, so a sensor that comes back is announced as recovered. If the whole daemon is
down, nothing inside Dagster can tell; run the daemon under a supervisor for that.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg

from ..alerting.events import AlertEvent, Severity, Status
from ..runtime import MonitoringRuntime


def heartbeat_events(
    runtime: MonitoringRuntime, now: datetime, *, own_name: str, stale_factor: float, min_silence: timedelta
) -> list[AlertEvent]:
    events = []
    for beat in runtime.router.store.heartbeats():
        if beat.name == own_name:
            continue
        silent_for = now - beat.last_tick_at
        allowed = max(timedelta(seconds=beat.interval_s * stale_factor), min_silence)
        failing_tick = beat.last_error is not None
        details: dict[str, object]
        stale = silent_for > allowed
        if failing_tick:
            summary = f"Monitoring sensor {beat.name} is failing: its last tick raised"
            details = {"error": beat.last_error, "last_good_tick": beat.last_ok_at.isoformat() if beat.last_ok_at else "never"}
        elif stale:
            summary = f"Monitoring sensor {beat.name} stopped ticking {int(silent_for.total_seconds())} s ago"
            details = {"last_tick": beat.last_tick_at.isoformat(), "expected_every_s": beat.interval_s}
        else:
            summary, details = f"Monitoring sensor {beat.name} is ticking", {}
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
                next_action=(
                    "Alerts from this sensor are not being sent. Open Deployment > Sensors, read the tick "
                    "error, and check the daemon (dagster-daemon) is running."
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
        events = heartbeat_events(runtime, now, own_name=name, stale_factor=stale_factor, min_silence=min_silence)
        result = runtime.router.process(events)
        failing = [e.entity for e in events if e.is_failing]
        return dg.SkipReason(
            f"{len(events)} sensor(s) watched; failing or silent: {', '.join(failing) or 'none'}; "
            f"{len(result.notifications)} notification(s)"
        )

    return _watchdog
