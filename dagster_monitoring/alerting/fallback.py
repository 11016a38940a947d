"""The path for the monitoring's own failures: straight to receivers, no state DB, no outbox.

When the state DB breaks, the router cannot remember, queue or deduplicate anything, so the
normal path cannot tell anyone that it broke. This path can: it builds the notification in
memory and sends it at once, bounded by the tick budget (a hung receiver does not hold the tick).
Repeats are held back in memory (once per ``repeat_interval`` per problem, per process), and
once the DB works again a recovery goes to the same receivers.

Receivers: ``fallback_receivers`` when configured, else whoever the routes pick for a CRITICAL
``dagster-monitoring`` event, else ``default_receivers``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from .config import AlertingConfig
from .events import AlertEvent, Severity, Status, short_hash
from .lifecycle import Transition
from .notification import IncidentSnapshot, Notification
from .outbox import attempt_delivery
from .policy import receivers_for
from .redact import get_logger
from .state_health import StateProblem
from .transports.base import Transport

_log = get_logger(__name__)

NEXT_ACTION = (
    "Alerts for your pipelines may not be sent while this lasts. Read the monitoring sensors' tick log "
    "(Automation > Sensors) and fix the state DB named above; nothing else needs doing once it works."
)


def problem_event(problem: StateProblem, at: datetime, status: Status = Status.FAILING, owner: str | None = None) -> AlertEvent:
    return AlertEvent(
        source="dagster-monitoring",
        kind="state_store",
        entity=problem.location,
        status=status,
        severity=Severity.CRITICAL,
        occurred_at=at,
        summary=problem.message if status is Status.FAILING else f"The alert state DB {problem.location} works again",
        details={"Problem": problem.kind, "Database": problem.location},
        owners=(owner,) if owner else (),
        next_action=NEXT_ACTION,
    )


class FallbackNotifier:
    def __init__(
        self,
        config: AlertingConfig,
        transports: Mapping[str, Transport],
        clock: Callable[[], datetime],
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.transports = transports
        self.clock = clock
        self.sleep = sleep
        self._sent: dict[str, tuple[datetime, StateProblem, list[str]]] = {}  # problem key -> (when, what, who heard)
        self._lock = threading.Lock()

    def receivers(self) -> list[str]:
        if self.config.fallback_receivers:
            return list(self.config.fallback_receivers)
        probe = problem_event(StateProblem("probe", "state", "probe"), self.clock())
        return receivers_for(probe, 1, self.config.routes, self.config.owners, self.config.default_receivers)

    def report(self, problem: StateProblem) -> list[str]:
        """Send ``problem`` unless it was sent within ``repeat_interval``; the receivers that took it."""
        now = self.clock()
        with self._lock:
            last = self._sent.get(problem.key)
            # a repeat is held back, but not what became of an outage reported before (a corrupt
            # file found mid-tick, then moved aside: where to, and what came back)
            if last is not None and now - last[0] < self.config.policy.repeat_interval and not (last[1].ongoing and not problem.ongoing):
                return []
            first = last is None
        _log.error("dagster-monitoring state DB problem: %s", problem.message)
        transition = Transition.NEW if first else Transition.REMINDER
        names = self._send(problem_event(problem, now, owner=self.config.default_owner), transition, self.receivers(), now)
        if names:  # nobody took it: try again on the next tick
            with self._lock:
                heard = sorted(set(names) | set(last[2] if last else ()))
                kept = last[1] if last is not None and last[1].ongoing else problem  # its end is still to be announced
                self._sent[problem.key] = (now, kept, heard)
        return names

    def resolve_ongoing(self) -> list[str]:
        """The DB answered again: announce recovery of every ongoing problem reported before."""
        with self._lock:
            done = [(key, entry) for key, entry in self._sent.items() if entry[1].ongoing]
            for key, _ in done:
                del self._sent[key]
        names: list[str] = []
        now = self.clock()
        for _, (_, problem, heard) in done:
            _log.warning("dagster-monitoring state DB %s works again", problem.location)
            names += self._send(problem_event(problem, now, Status.PASSING, self.config.default_owner), Transition.RECOVERED, heard, now)
        return names

    @property
    def has_ongoing(self) -> bool:
        with self._lock:
            return any(entry[1].ongoing for entry in self._sent.values())

    def _send(self, event: AlertEvent, transition: Transition, names: Sequence[str], now: datetime) -> list[str]:
        """One attempt round per receiver, each in its own thread, all within the tick budget."""
        incident_id = f"fallback-{short_hash(event.fingerprint, 10)}"
        results: dict[str, bool] = {}
        deadline = time.monotonic() + self.config.delivery.tick_budget.total_seconds()

        def deliver(name: str) -> None:
            transport = self.transports.get(name)
            if transport is None:
                return
            notification = Notification(
                key=f"{incident_id}:{transition.value}:{name}:{int(now.timestamp())}",
                receiver=name,
                transition=transition,
                severity=event.severity,
                event=event,
                incident=IncidentSnapshot(
                    incident_id=incident_id,
                    fingerprint=event.fingerprint,
                    first_failed_at=now,
                    last_failed_at=now if event.is_failing else None,
                    failures=1,
                    recovered_at=None if event.is_failing else now,
                ),
                created_at=now,
            )
            result, _ = attempt_delivery(transport, notification, self.config.delivery, self.sleep, deadline)
            results[name] = result.ok
            if not result.ok:
                _log.error("fallback alert to %s failed: %s", name, result.error)

        threads = [threading.Thread(target=deliver, args=(n,), name=f"dm-fallback-{n}", daemon=True) for n in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        return [name for name, ok in results.items() if ok]
