"""The ticks sensor: every schedule's and sensor's tick failures, as alerts (see instance.ticks).

A sensor of its own (not part of the watchdog) so it can be turned off on its own
(``instance.tick_failures.enabled: false``) and so the watchdog watches it like any monitoring
sensor: it records a heartbeat per tick through ``monitoring_sensor``.
"""

from __future__ import annotations

import dagster as dg

from ..instance.ticks import tick_events
from ..runtime import MonitoringRuntime
from .heartbeat import monitoring_sensor


def build_tick_failure_sensor(
    *,
    runtime: MonitoringRuntime,
    name: str = "dagster_monitoring_ticks",
    minimum_interval_seconds: int = 60,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    config = runtime.config.instance.tick_failures

    @monitoring_sensor(
        runtime=runtime,
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="alerts when a schedule's or sensor's ticks fail (every code location)",
        kind="ticks",
    )
    def _ticks(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        owners = (runtime.config.default_owner,) if runtime.config.default_owner else ()
        # the monitoring sensors (heartbeats) are the watchdog's; the watchdog's own ticks are read here
        events = tick_events(
            context.instance, config, base_url=runtime.config.dagster_base_url, owners=owners, skip=set(runtime.sensor_kinds)
        )
        result = runtime.router.process(events)
        failing = [e.entity for e in events if e.is_failing]
        return dg.SkipReason(
            f"{len(events)} schedule(s) / sensor(s) read; failing: {', '.join(failing) or 'none'}; "
            f"{len(result.notifications)} notification(s)"
        )

    return _ticks
