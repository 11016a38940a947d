"""Source events into the router, through the settle buffer: the one path polls and webhooks share."""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
    zero = timedelta(0)
    return lambda event: delays.get(event.source, zero)


class SourceIngest:
    """``ingest(events)``: hold what must settle, release what is due, route the rest.
    ``clock`` is the router's unless given."""

    def __init__(self, router: AlertRouter, sources: SourcesConfig, *, clock: Callable[[], datetime] | None = None) -> None:
        self.router = router
        self.clock = clock or router.clock
        self.buffer = SettleBuffer(router.store, settle_delays(sources))

    def ingest(self, events: Iterable[AlertEvent], *, deliver: bool = True) -> RouterResult:
        now = self.clock()
        routed = self.buffer.admit(events, now)
        routed += self.buffer.release_due(now)
        return self.router.process(routed, deliver=deliver)

    def tick(self, *, deliver: bool = True) -> RouterResult:
        """Release due failures (and let the router do its timed work); call it regularly."""
        return self.ingest((), deliver=deliver)
