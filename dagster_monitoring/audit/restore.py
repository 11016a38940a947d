"""Open incidents rebuilt from the audit trail, for when the alert state DB was lost.

The router's memory (which incidents are open, who was told) lives in its state DB, and every
decision it makes is also an ``alert_notifications`` row. When the DB is found deleted, corrupt
or replaced, the router calls :func:`open_incidents` (``AlertRouter.restore_incidents``, set by
:func:`~.alert_records.attach_audit`) before it applies any event. An incident that was open is
then continued, not announced again as new, and its recovery reaches the receivers that heard
about it. What the trail does not hold comes back as the router would not have had it: no
owners or details on the last failing event (a recovery takes the owners of the passing event),
and times are those of the decisions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from ..alerting.events import AlertEvent, Severity, Status, make_fingerprint
from ..alerting.lifecycle import IncidentState, Phase, ReceiverMark, Transition
from ..alerting.redact import get_logger
from .read import read_view, rows_as_dicts
from .sinks.base import AuditSink
from .trail import AuditTrail

_log = get_logger(__name__)

# set on the last failing event of a restored incident: what a card or a test can tell it by
RESTORED_TAG = "dagster-monitoring/restored_from"
RESTORED_FROM = "audit trail"


def open_incidents(sink: AuditSink) -> list[IncidentState]:
    """The incidents ``vw_open_alerts`` holds open, with who was told (``vw_open_alert_receivers``)."""
    told: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows_as_dicts(read_view(sink, "vw_open_alert_receivers")):
        told[row["incident_id"]].append(row)
    states = []
    for row in rows_as_dicts(read_view(sink, "vw_open_alerts")):
        state = _state(row, told.get(row["incident_id"], ()))
        if state is not None:
            states.append(state)
    return states


def restorer(trail: AuditTrail) -> Callable[[], list[IncidentState]]:
    """The router's ``restore_incidents`` hook for ``trail``."""
    return lambda: open_incidents(trail.sink)


def _state(row: Mapping[str, Any], told: Sequence[Mapping[str, Any]]) -> IncidentState | None:
    source, kind, entity = row.get("source"), row.get("kind"), row.get("entity")
    if not (source and kind and entity and row.get("incident_id")) or make_fingerprint(source, kind, entity) != row["fingerprint"]:
        _log.warning("open incident %s in the audit trail cannot be restored (its source, kind or entity is missing)", row["fingerprint"])
        return None
    severity = Severity.parse(row["severity"] or Severity.WARN)
    last_seen: datetime = row["last_seen_at"]
    resolving = row["state"] == "resolving"
    event = AlertEvent(
        source,
        kind,
        entity,
        Status.FAILING,
        severity,
        last_seen,
        run_id=row.get("last_run_id"),
        tags={RESTORED_TAG: RESTORED_FROM},
    )
    tickets = {r["receiver"]: {"key": r["ticket_key"], "url": "", "incident_id": row["incident_id"]} for r in told if r.get("ticket_key")}
    return IncidentState(
        fingerprint=row["fingerprint"],
        phase=Phase.RESOLVING if resolving else Phase.FAILING,
        incident_id=row["incident_id"],
        first_failed_at=row["opened_at"],
        last_failed_at=row["opened_at"] if resolving else last_seen,
        resolving_since=last_seen if resolving else None,
        last_seen_at=last_seen,
        consecutive_failures=int(row.get("failures_seen") or 1),
        severity=severity,
        last_event=event,
        receivers={
            r["receiver"]: ReceiverMark(r["notified_at"], Severity.parse(r["severity"] or severity), Transition(r["last_notice"]))
            for r in told
        },
        tickets=tickets,
    )
