"""Daemon down (dagster#4394): each required daemon's latest heartbeat, from outside the daemon.

``dagster-daemon run`` writes a heartbeat per daemon (sensors, scheduler, run queue, ...) about
every 30 s. A sensor runs inside that daemon, so it cannot notice the daemon stopping: this is
read by ``dagster-monitoring watch`` instead, from the instance's storage. One ``daemon`` event per
required daemon type (``instance.get_required_daemon_types()``, the UI's Daemons list): FAILING
when its heartbeat is older than ``stale_after`` or missing, PASSING once it beats again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import dagster as dg

from ..alerting.durations import format_duration
from ..alerting.events import AlertEvent, Status
from ..translator import default_error_line
from .config import DaemonsConfig


def daemon_events(
    instance: dg.DagsterInstance, config: DaemonsConfig, now: datetime, *, base_url: str | None, owners: Sequence[str] = ()
) -> list[AlertEvent]:
    heartbeats = instance.get_daemon_heartbeats()
    links = {"daemons": f"{base_url}/health"} if base_url else {}
    events = []
    for daemon_type in instance.get_required_daemon_types():
        beat = heartbeats.get(daemon_type)
        last = datetime.fromtimestamp(beat.timestamp, tz=timezone.utc) if beat is not None else None
        stale = last is None or now - last > config.stale_after
        details: dict[str, object] = {}
        if last is None:
            summary = f"Dagster daemon {daemon_type} has never sent a heartbeat: dagster-daemon is not running"
            details["Last heartbeat"] = "never"
        elif stale:
            summary = f"Dagster daemon {daemon_type} is down: no heartbeat for {format_duration(now - last)}"
            details["Last heartbeat"] = f"{format_duration(now - last)} ago ({last:%Y-%m-%d %H:%M UTC})"
            details["Tolerated"] = format_duration(config.stale_after)
        else:
            summary = f"Dagster daemon {daemon_type} is running"
        if beat is not None and beat.errors:  # the last thing the daemon said before it went quiet
            details["Last error"] = default_error_line(beat.errors[0])
        events.append(
            AlertEvent(
                source="dagster",
                kind="daemon",
                entity=daemon_type,
                status=Status.FAILING if stale else Status.PASSING,
                severity=config.severity,
                occurred_at=now,
                summary=summary,
                details=details,
                owners=tuple(owners),
                links=links,
                next_action=(
                    f"While the {daemon_type} daemon is down, nothing it runs happens: no schedules or sensors tick "
                    "(the monitoring sensors neither), no queued runs start. Check the dagster-daemon process "
                    "(systemctl status dagster-daemon, kubectl logs of the daemon pod), its logs, and that it reaches "
                    "the instance's storage (DAGSTER_HOME, dagster.yaml); restart it. Deployment > Daemons in the UI "
                    "shows each daemon's last heartbeat."
                ),
            )
        )
    return events
