"""Heartbeats: every monitoring sensor records each tick, so a watchdog can tell when one stops.

A sensor that raises fails silently from the on-call engineer's point of view (dagster#18130):
the wrapper records the (redacted) error before re-raising it, and the watchdog sensor turns a
failing or silent sensor into an alert like any other. Heartbeats live in the state DB, so when
that DB breaks the watchdog is blind too: then the wrapper tells a human through the router's
fallback path (no state needed) and the tick fails with an error that names the DB.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import dagster as dg

from ..alerting.redact import describe_error
from ..alerting.state_health import StateStoreError
from ..runtime import MonitoringRuntime


def with_heartbeat(name: str, interval_s: float, runtime: MonitoringRuntime) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(context: Any) -> Any:
            router = runtime.router
            try:
                result = fn(context)
            except Exception as exc:
                try:
                    router.store.record_heartbeat(name, datetime.now(timezone.utc), interval_s, describe_error(exc))
                except StateStoreError as store_exc:  # the tick's own error is the one to show
                    router.report_state_failure(store_exc)
                raise
            try:
                router.store.record_heartbeat(name, datetime.now(timezone.utc), interval_s)
            except StateStoreError as exc:
                router.report_state_failure(exc)  # the watchdog cannot see this tick: tell a human directly
                raise
            return result

        return wrapper

    return decorate


def monitoring_sensor(
    *,
    runtime: MonitoringRuntime,
    name: str,
    minimum_interval_seconds: int,
    default_status: dg.DefaultSensorStatus,
    description: str,
    kind: str,
) -> Callable[[Callable[[dg.SensorEvaluationContext], dg.SkipReason]], dg.SensorDefinition]:
    """A Dagster sensor around ``evaluate`` that records a heartbeat per tick."""
    if minimum_interval_seconds < 1:
        raise ValueError(f"{name}: minimum_interval_seconds must be at least 1")

    def decorate(evaluate: Callable[[dg.SensorEvaluationContext], dg.SkipReason]) -> dg.SensorDefinition:
        runtime.sensor_kinds[name] = kind  # the watchdog's wording says what stops when this sensor does
        beating = with_heartbeat(name, minimum_interval_seconds, runtime)(evaluate)

        @dg.sensor(
            name=name,
            minimum_interval_seconds=minimum_interval_seconds,
            default_status=default_status,
            description=f"dagster-monitoring: {description}",
            tags={"dagster-monitoring": kind},
        )
        def _sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
            return beating(context)

        return _sensor

    return decorate
