"""The settle delay: a failure waits a moment for the retry that makes it moot.

Fivetran retries a failed sync by itself and can report FAILURE and, minutes later, SUCCESSFUL.
Alerting on the first would page someone about nothing. So a FAILING event from a source with
``settle`` > 0 is not handed to the router at once: it is written to a small pending table
(``dm_source_pending``, in the alert state DB, so a restart of ``serve`` or of the code server
loses nothing and a sensor and ``serve`` share it) with a due time ``settle`` later.

- A PASSING event for the same fingerprint drops every held failure that is not newer than it,
  and goes on to the router (where it is a no-op if no incident is open, or the recovery if one is).
- :meth:`SettleBuffer.release_due` hands the held failures whose due time has passed to the
  router; the serve loop calls it every second, the poll sensors every tick.
- Held rows are keyed by fingerprint and event time, so a poll that reports the same failed sync
  every tick holds it once.

This is the simplest design that is correct across processes: the router and its lifecycle stay
untouched (a held failure is, to them, an event that arrived ``settle`` late, which they already
order by its own time), and the table is empty whenever nothing is failing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from ..alerting.events import AlertEvent
from ..alerting.state import SqlStateStore, to_json

metadata = sa.MetaData()

pending = sa.Table(
    "dm_source_pending",
    metadata,
    sa.Column("fingerprint", sa.String(255), primary_key=True),
    sa.Column("occurred_at", sa.Float, primary_key=True),
    sa.Column("due_at", sa.Float, nullable=False, index=True),
    sa.Column("event", sa.Text, nullable=False),
)

SettleFor = Callable[[AlertEvent], timedelta]


def _ts(at: datetime) -> float:
    return at.timestamp()


class SettleBuffer:
    """Held failures in the state DB. ``settle_for(event)`` says how long an event's source waits."""

    def __init__(self, store: SqlStateStore, settle_for: SettleFor) -> None:
        self.store = store
        self.settle_for = settle_for
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            metadata.create_all(self.store.engine)
            self._ready = True

    def admit(self, events: Iterable[AlertEvent], now: datetime) -> list[AlertEvent]:
        """The events to route now; failures with a settle delay are held instead, and
        successes drop the failures they make moot."""
        events = list(events)
        if not events:
            return []
        if not any(self.settle_for(e) > timedelta(0) for e in events):
            return events
        self._ensure()
        out: list[AlertEvent] = []
        with self.store.transaction() as conn:
            for event in sorted(events, key=lambda e: e.occurred_at):
                settle = self.settle_for(event)
                if settle <= timedelta(0):
                    out.append(event)
                elif event.is_failing:
                    exists = conn.execute(
                        sa.select(pending.c.fingerprint).where(
                            pending.c.fingerprint == event.fingerprint, pending.c.occurred_at == _ts(event.occurred_at)
                        )
                    ).first()
                    if exists is None:
                        conn.execute(
                            pending.insert().values(
                                fingerprint=event.fingerprint,
                                occurred_at=_ts(event.occurred_at),
                                due_at=_ts(now + settle),
                                event=to_json(event.to_dict()),
                            )
                        )
                else:
                    conn.execute(
                        pending.delete().where(pending.c.fingerprint == event.fingerprint, pending.c.occurred_at <= _ts(event.occurred_at))
                    )
                    out.append(event)
        return out

    def release_due(self, now: datetime) -> list[AlertEvent]:
        """Held failures whose settle time has passed, removed from the table, oldest first."""
        if not self._ready:
            if not sa.inspect(self.store.engine).has_table(pending.name):
                return []
            self._ready = True
        with self.store.transaction() as conn:
            rows = conn.execute(sa.select(pending).where(pending.c.due_at <= _ts(now)).order_by(pending.c.occurred_at)).fetchall()
            for row in rows:
                conn.execute(pending.delete().where(pending.c.fingerprint == row.fingerprint, pending.c.occurred_at == row.occurred_at))
        return [AlertEvent.from_dict(json.loads(row.event)) for row in rows]

    def held(self) -> list[tuple[str, datetime]]:
        """(fingerprint, due time) of every held failure; for tests and status lines."""
        if not sa.inspect(self.store.engine).has_table(pending.name):
            return []
        with self.store.transaction() as conn:
            rows: Sequence[sa.Row] = conn.execute(sa.select(pending.c.fingerprint, pending.c.due_at).order_by(pending.c.due_at)).fetchall()
        return [(r.fingerprint, datetime.fromtimestamp(r.due_at, timezone.utc)) for r in rows]
