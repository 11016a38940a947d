"""Alert router decisions and deliveries as ``alert_notifications`` rows.

Hook these into the router (``on_decision`` / ``on_delivery``) so every decision — including
suppressed and silenced ones — and every delivery attempt is auditable next to the runs:
:func:`attach_audit` does it, for the code location's runtime, ``serve`` and the Lambda handler
alike, and :func:`external_job_writer` is the sources' ingest hook (``external_job_runs``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..alerting.events import AlertEvent
from ..alerting.grouping import expand
from ..alerting.lifecycle import Observation
from ..alerting.notification import Notification
from ..alerting.outbox import DeliveryOutcome
from ..alerting.router import AlertRouter, Decision
from .external_records import external_job_records
from .records import AlertNotificationRecord
from .restore import restorer
from .trail import AuditTrail


def decision_records(decisions: Sequence[Decision]) -> list[AlertNotificationRecord]:
    """Decisions about incidents. A success with no incident open (every green run, every
    healthy watchdog tick) decided nothing and is left out: it would be most of the rows."""
    records = []
    for d in decisions:
        if d.observation is Observation.HEALTHY:
            continue
        ev = d.event
        records.append(
            AlertNotificationRecord.build(
                event_ts=d.at,
                record_type="decision",
                fingerprint=d.fingerprint,
                incident_id=d.incident_id,
                source=ev.source if ev else None,
                kind=ev.kind if ev else None,
                entity=ev.entity if ev else None,
                transition=d.transition.value if d.transition else None,
                observation=d.observation.value,
                receiver=d.receiver,
                severity=d.severity.value,
                # an inhibited decision is recorded like a silenced one, naming the upstream incident
                silenced_by=d.silenced_by or (f"inhibited by {d.inhibited_by}" if d.inhibited_by else None),
                run_id=ev.run_id if ev else None,
            )
        )
    return records


def delivery_records(outcomes: Sequence[DeliveryOutcome]) -> list[AlertNotificationRecord]:
    """A delivery row per incident: a grouped message counts for each of its members."""
    records = []
    for o in outcomes:
        for n in expand(o.notification) if o.notification.members else (o.notification,):
            records.append(_delivery_record(o, n))
    return records


def attach_audit(router: AlertRouter, trail: AuditTrail) -> None:
    """Write the router's decisions and deliveries to ``trail`` (``alert_notifications``), and
    rebuild open incidents from it when the state DB is lost (see :mod:`.restore`)."""
    router.on_decision = lambda decisions: trail.write(decision_records(decisions))
    router.on_delivery = lambda outcomes: trail.write(delivery_records(outcomes))
    router.restore_incidents = restorer(trail)


def external_job_writer(trail: AuditTrail) -> Callable[[Sequence[AlertEvent]], object]:
    """The :class:`~dagster_monitoring.sources.ingest.SourceIngest` hook: external job events as
    ``external_job_runs`` rows (the trail spools when its sink is down; it never raises for that)."""
    return lambda events: trail.write(external_job_records(events))


def _delivery_record(o: DeliveryOutcome, n: Notification) -> AlertNotificationRecord:
    return AlertNotificationRecord.build(
        event_ts=o.settled_at or n.created_at,
        record_type="delivery",
        fingerprint=n.incident.fingerprint,
        incident_id=n.incident.incident_id,
        source=n.event.source,
        kind=n.event.kind,
        entity=n.event.entity,
        transition=n.transition.value,
        receiver=n.receiver,
        severity=n.severity.value,
        delivered=o.delivered,
        delivery_status=o.status,
        attempts=o.attempts,
        error=o.error,
        ticket_key=o.external_id if o.ticket else (n.ticket or {}).get("key"),
        run_id=n.event.run_id,
    )
