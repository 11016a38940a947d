"""Source events into the router, through the settle buffer: the one path polls, webhooks, the
SQS sensor and the Lambda handler share. Once the router has committed a batch, ``on_events``
(the audit trail's ``external_job_runs`` writer, when auditing is on) sees every event that came
in, held or routed: the audit records what was observed, not what was announced."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone

from ..alerting.events import AlertEvent
from ..alerting.router import AlertRouter, RouterResult
from .config import SourcesConfig
from .settle import SettleBuffer


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def settle_delays(sources: SourcesConfig) -> Callable[[AlertEvent], timedelta]:
    """``event -> settle`` from the ``sources:`` config (0 for every other source)."""
    delays: dict[str, timedelta] = {}
    if sources.fivetran is not None:
        delays["fivetran"] = sources.fivetran.settle
    if sources.dbt_cloud is not None:
        delays["dbt_cloud"] = sources.dbt_cloud.settle
    if sources.aws_eventbridge is not None:
        for source in ("aws_glue", "aws_stepfunctions", "aws_appflow", "aws_datasync"):
            delays[source] = sources.aws_eventbridge.settle
    zero = timedelta(0)
    return lambda event: delays.get(event.source, zero)


class SourceIngest:
    """``ingest(events)``: hold what must settle, release what is due, route the rest.
    ``clock`` is the router's unless given."""

    def __init__(
        self,
        router: AlertRouter,
        sources: SourcesConfig,
        *,
        clock: Callable[[], datetime] | None = None,
        on_events: Callable[[Sequence[AlertEvent]], object] | None = None,
    ) -> None:
        self.router = router
        self.clock = clock or router.clock
        self.buffer = SettleBuffer(router.store, settle_delays(sources))
        self.on_events = on_events

    def ingest(self, events: Iterable[AlertEvent], *, deliver: bool = True) -> RouterResult:
        now = self.clock()
        events = list(events)
        routed = self.buffer.admit(events, now)
        routed += self.buffer.release_due(now)
        result = self.router.process(routed, deliver=deliver)
        if events and self.on_events is not None:
            self.on_events(events)
        return result

    def tick(self, *, deliver: bool = True) -> RouterResult:
        """Release due failures (and let the router do its timed work); call it regularly."""
        return self.ingest((), deliver=deliver)
