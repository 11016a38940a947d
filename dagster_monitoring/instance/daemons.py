"""Daemon down (dagster#4394): each required daemon's latest heartbeat, from outside the daemon.

``dagster-daemon run`` writes a heartbeat per daemon (sensors, scheduler, run queue, ...) about
every 30 s. A sensor runs inside that daemon, so it cannot notice the daemon stopping: this is
read by ``dagster-monitoring watch`` instead, from the instance's storage. One ``daemon`` event per
required daemon type (``instance.get_required_daemon_types()``, the UI's Daemons list): FAILING
when its heartbeat is older than ``stale_after`` or missing, PASSING once it beats again. When
every one of them is stale the process is down: that is one ``dagster-daemon`` event instead of
one per daemon (one card, not six, when the process dies), and the process event recovers when
any daemon beats again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import dagster as dg

from ..alerting.durations import format_duration
from ..alerting.events import AlertEvent, Status
from ..translator import default_error_line
from .config import DaemonsConfig

PROCESS = "dagster-daemon"  # the entity of "the whole process is down"
NEXT_ACTION = (
    "While {what} is down, nothing it runs happens: no schedules or sensors tick (the monitoring sensors "
    "neither), no queued runs start. Check the dagster-daemon process (systemctl status dagster-daemon, kubectl "
    "logs of the daemon pod), its logs, and that it reaches the instance's storage (DAGSTER_HOME, dagster.yaml); "
    "restart it. Deployment > Daemons in the UI shows each daemon's last heartbeat."
)


def daemon_events(
    instance: dg.DagsterInstance, config: DaemonsConfig, now: datetime, *, base_url: str | None, owners: Sequence[str] = ()
) -> list[AlertEvent]:
    heartbeats = instance.get_daemon_heartbeats()
    links = {"daemons": f"{base_url}/health"} if base_url else {}

    def event(entity: str, failing: bool, summary: str, details: dict[str, object], what: str) -> AlertEvent:
        return AlertEvent(
            source="dagster",
            kind="daemon",
            entity=entity,
            status=Status.FAILING if failing else Status.PASSING,
            severity=config.severity,
            occurred_at=now,
            summary=summary,
            details=details,
            owners=tuple(owners),
            links=links,
            next_action=NEXT_ACTION.format(what=what),
        )

    seen = []
    for daemon_type in instance.get_required_daemon_types():
        beat = heartbeats.get(daemon_type)
        last = datetime.fromtimestamp(beat.timestamp, tz=timezone.utc) if beat is not None else None
        seen.append((daemon_type, beat, last, last is None or now - last > config.stale_after))
    if not seen:
        return []
    newest = max((last for _, _, last, _ in seen if last is not None), default=None)
    process_down = all(stale for *_, stale in seen)
    details: dict[str, object] = {"Daemons": ", ".join(t for t, *_ in seen)}
    if process_down:
        details["Last heartbeat"] = _ago(now, newest)
        details["Tolerated"] = format_duration(config.stale_after)
        _last_error(details, [beat for _, beat, *_ in seen])
        summary = (
            f"dagster-daemon is down: no daemon has sent a heartbeat for {format_duration(now - newest)}"
            if newest is not None
            else "dagster-daemon is not running: no daemon has ever sent a heartbeat"
        )
        return [event(PROCESS, True, summary, details, "dagster-daemon")]
    events = [event(PROCESS, False, "dagster-daemon is running", details, "dagster-daemon")]
    for daemon_type, beat, last, stale in seen:
        details = {}
        if stale:
            summary = f"Dagster daemon {daemon_type} is down: " + (
                f"no heartbeat for {format_duration(now - last)}" if last is not None else "it has never sent a heartbeat"
            )
            details["Last heartbeat"] = _ago(now, last)
            details["Tolerated"] = format_duration(config.stale_after)
        else:
            summary = f"Dagster daemon {daemon_type} is running"
        _last_error(details, [beat])
        events.append(event(daemon_type, stale, summary, details, f"the {daemon_type} daemon"))
    return events


def _ago(now: datetime, at: datetime | None) -> str:
    return f"{format_duration(now - at)} ago ({at:%Y-%m-%d %H:%M UTC})" if at is not None else "never"


def _last_error(details: dict[str, object], beats: Sequence[object]) -> None:
    """The last thing a daemon said before it went quiet, if it reported an error."""
    for beat in beats:
        errors = getattr(beat, "errors", None)
        if errors:
            details["Last error"] = default_error_line(errors[0])
            return
