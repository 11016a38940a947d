"""``dagster-monitoring watch``: what no sensor can see, checked from outside the daemon.

Run next to ``dagster-daemon`` (a systemd unit, a cron line with ``--once``, a Kubernetes
sidecar): it reads the instance's storage (``DAGSTER_HOME``) and, with a workspace, loads its
code locations, then feeds the same router (config, state DB, receivers) as the sensors:

- each required daemon's heartbeat (``instance.daemons``; dagster#4394),
- the monitoring sensors' own heartbeats in the state DB (the watchdog's events, so the same
  incidents; skipped while the sensor daemon itself is down, which already explains them),
- with ``--workspace`` or ``instance.workspace``: code locations that fail to load, and the health
  of every asset the workspace defines (``instance.asset_health``).

Each check yields PASSING events too, so whatever recovers is announced once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import dagster as dg

from .alerting.events import AlertEvent
from .alerting.redact import describe_error, get_logger
from .alerting.router import RouterResult
from .config import MonitoringConfig
from .instance.asset_health import asset_health_events
from .instance.code_locations import code_location_events
from .instance.daemons import PROCESS, daemon_events
from .runtime import MonitoringRuntime
from .sensors.watchdog import CONSEQUENCES, heartbeat_events

_log = get_logger(__name__)
WATCHDOG_NAME = "dagster_monitoring_watchdog"
SOURCE_SENSORS = ("dagster_monitoring_fivetran", "dagster_monitoring_dbt_cloud", "dagster_monitoring_aws_eventbridge")


def sensor_kind(name: str) -> str:
    """The ``dagster-monitoring`` kind of a monitoring sensor, from its default name (the watchdog
    reads the tag from the code location; here there may be none loaded)."""
    if name in SOURCE_SENSORS:
        return "sources"
    kind = name.removeprefix("dagster_monitoring_")
    return kind if kind in CONSEQUENCES else ""


@dataclass
class WatchReport:
    events: list[AlertEvent] = field(default_factory=list)
    result: RouterResult = field(default_factory=RouterResult)
    problems: list[str] = field(default_factory=list)  # a check that could not run (named), not an alert

    @property
    def failing(self) -> list[str]:
        return [f"{e.kind}:{e.entity}" for e in self.events if e.is_failing]

    def line(self) -> str:
        counts: dict[str, int] = {}
        for event in self.events:
            counts[event.kind] = counts.get(event.kind, 0) + 1
        read = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "nothing"
        text = f"watch: read {read}; failing: {', '.join(self.failing) or 'none'}; {len(self.result.notifications)} notification(s)"
        return text + "".join(f"; could not check {p}" for p in self.problems)


class Watcher:
    """One ``check()`` per run (``--once``) or per interval. ``workspace``: a workspace.yaml to load."""

    def __init__(
        self,
        config: MonitoringConfig,
        instance: dg.DagsterInstance,
        *,
        workspace: str | None = None,
        runtime: MonitoringRuntime | None = None,
        reload: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.config = config
        self.instance = instance
        self.workspace = workspace or config.instance.workspace
        self.runtime = runtime or MonitoringRuntime(config)
        self.reload = reload  # reload the workspace at each check after the first (a fixed location shows up)
        self.clock = clock
        self._stack = ExitStack()
        self._process_context: Any = None

    def close(self) -> None:
        self._stack.close()
        self._process_context = None

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request_context(self) -> Any:
        """The workspace as the webserver sees it now: loaded on the first call, reloaded after."""
        from dagster._core.workspace.context import WorkspaceProcessContext
        from dagster._core.workspace.load_target import WorkspaceFileTarget

        if self._process_context is None:
            self._process_context = self._stack.enter_context(
                WorkspaceProcessContext(self.instance, WorkspaceFileTarget(paths=[str(self.workspace)]))
            )
        elif self.reload:
            self._process_context.reload_workspace()
        return self._process_context.create_request_context()

    def collect(self) -> tuple[list[AlertEvent], list[str]]:
        now = self.clock()
        cfg = self.config.instance
        base_url = self.config.dagster_base_url
        owners = (self.config.default_owner,) if self.config.default_owner else ()
        events: list[AlertEvent] = []
        problems: list[str] = []
        daemons = daemon_events(self.instance, cfg.daemons, now, base_url=base_url, owners=owners)
        events += daemons
        sensor_daemon_down = any(e.entity in (PROCESS, "SENSOR") and e.is_failing for e in daemons)
        if cfg.daemons.monitoring_sensors and not sensor_daemon_down:
            beats = self.runtime.router.store.heartbeats()
            events += heartbeat_events(
                self.runtime,
                now,
                own_name=WATCHDOG_NAME,
                stale_factor=3.0,
                min_silence=timedelta(minutes=5),
                kinds={b.name: sensor_kind(b.name) for b in beats},
            )
        if self.workspace and (cfg.code_locations.enabled or cfg.asset_health.enabled):
            try:
                context = self._request_context()
            except Exception as exc:  # a workspace file that cannot be read is named, not fatal
                problems.append(f"workspace {self.workspace}: {describe_error(exc)}")
            else:
                if cfg.code_locations.enabled:
                    events += code_location_events(context, cfg.code_locations, now, base_url=base_url, owners=owners)
                if cfg.asset_health.enabled:
                    try:
                        events += asset_health_events(context, cfg.asset_health, now, base_url=base_url, default_owners=owners)
                    except Exception as exc:
                        problems.append(f"asset health: {describe_error(exc)}")
        return events, problems

    def check(self) -> WatchReport:
        events, problems = self.collect()
        result = self.runtime.router.process(events)
        return WatchReport(events, result, problems)


@contextmanager
def watcher(config: MonitoringConfig, *, workspace: str | None = None) -> Iterator[Watcher]:
    """A watcher on the instance of ``$DAGSTER_HOME``."""
    with dg.DagsterInstance.get() as instance, Watcher(config, instance, workspace=workspace) as w:
        yield w


def run_watch(
    config: MonitoringConfig,
    *,
    workspace: str | None,
    once: bool,
    interval: float,
    echo: Callable[[str], None],
    iterations: int | None = None,
) -> WatchReport:
    """``--once``: one check; else one every ``interval`` seconds until interrupted (or ``iterations``)."""
    report = WatchReport()
    with watcher(config, workspace=workspace) as w:
        done = 0
        while True:
            started = time.monotonic()
            try:
                report = w.check()
                echo(report.line())
            except Exception as exc:  # the state DB was down, say: told through the fallback; try again
                if once:
                    raise
                _log.error("watch: this check failed: %s", describe_error(exc))
            done += 1
            if once or (iterations is not None and done >= iterations):
                break
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
        w.runtime.router.wait_idle(timeout=30)
    return report
