"""Heartbeats: every monitoring sensor records each tick, so a watchdog can tell when one stops.

A sensor that raises fails silently from the on-call engineer's point of view (dagster#18130):
the wrapper records the (redacted) error before re-raising it, and the watchdog sensor turns a
failing or silent sensor into an alert like any other.
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from typing import Any, Callable

from ..alerting.redact import describe_error
from ..runtime import MonitoringRuntime


def with_heartbeat(name: str, interval_s: float, runtime: MonitoringRuntime) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(context: Any) -> Any:
            try:
                result = fn(context)
            except Exception as exc:
                runtime.router.store.record_heartbeat(name, datetime.now(timezone.utc), interval_s, describe_error(exc))
                raise
            runtime.router.store.record_heartbeat(name, datetime.now(timezone.utc), interval_s)
            return result

        return wrapper

    return decorate
