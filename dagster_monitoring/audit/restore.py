"""Open incidents rebuilt from the audit trail, for when the alert state DB was lost.

The router's memory (which incidents are open, who was told) lives in its state DB, and every
decision and delivery is also an ``alert_notifications`` row. When the DB is found deleted or
corrupt, the router calls :func:`open_incidents` (``AlertRouter.restore_incidents``, set by
:func:`~.alert_records.attach_audit`) before it applies the next events. An incident that was
open is then continued, not announced again as new, and its recovery reaches the receivers a
delivery of it reached. The last failing event links its Dagster run when the trail's ``runs``
table holds it, and takes the run's owners and error when the run is what failed; what the
trail does not hold comes back as the router would not have had it: no summary, no owners for
other failures (a recovery takes the owners of the passing event, also one announced when its
flap window ends), times are those of the decisions, and the views look 30 days back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from ..alerting.events import AlertEvent, Severity, Status, make_fingerprint
from ..alerting.lifecycle import RESTORED_TAG, IncidentState, Phase, ReceiverMark, Transition
from ..alerting.redact import get_logger
from .read import read_view, rows_as_dicts, split_owners
from .sinks.base import AuditSink, AuditSinkError
from .trail import AuditTrail

_log = get_logger(__name__)

RESTORED_FROM = "audit trail"


def open_incidents(sink: AuditSink) -> list[IncidentState]:
    """The incidents ``vw_open_alerts`` holds open, with who heard of them (``vw_open_alert_receivers``)."""
    incidents = rows_as_dicts(read_view(sink, "vw_open_alerts"))  # first: a receiver row never lacks its incident
    told: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows_as_dicts(read_view(sink, "vw_open_alert_receivers")):
        told[row["incident_id"]].append(row)
    states = []
    for row in incidents:
        state = _state(row, told.get(row["incident_id"], ()))
        if state is not None:
            states.append(state)
    return states


def restorer(trail: AuditTrail) -> Callable[[], list[IncidentState]]:
    """The router's ``restore_incidents`` hook for ``trail``: its spool is written out first, so
    a decision the sink missed (a recovery, say) is not read as still open; a trail that cannot
    be written out fails the restore (the router tries again later)."""

    def restore() -> list[IncidentState]:
        trail.flush()
        if trail.has_backlog():
            raise AuditSinkError("the audit trail's spool could not be written to its sink, so the trail is incomplete")
        return open_incidents(trail.sink)

    return restore


def _opened_at(row: Mapping[str, Any]) -> datetime:
    """The incident's first failure: its id ends with it (``<hash>-<epoch seconds>``), which
    outlives the views' 30 days; the first decision's time when that is earlier or the id has none."""
    opened: datetime = row["opened_at"]
    _, _, epoch = str(row["incident_id"]).rpartition("-")
    if epoch.isdigit():
        from_id = datetime.fromtimestamp(int(epoch), tz=timezone.utc)
        if from_id < opened.replace(microsecond=0):
            return from_id
    return opened


def _state(row: Mapping[str, Any], told: Sequence[Mapping[str, Any]]) -> IncidentState | None:
    source, kind, entity = row.get("source"), row.get("kind"), row.get("entity")
    if not (source and kind and entity) or make_fingerprint(source, kind, entity) != row["fingerprint"]:
        _log.warning("open incident %s in the audit trail cannot be restored (its source, kind or entity is missing)", row["fingerprint"])
        return None
    severity = Severity.parse(row["severity"] or Severity.WARN)
    resolving = row["state"] == "resolving" and row.get("resolving_since") is not None
    last_failed: datetime = row.get("last_failed_at") or row["last_seen_at"]
    event = AlertEvent(
        source,
        kind,
        entity,
        Status.FAILING,
        severity,
        last_failed,
        details={"error": row["error"]} if row.get("error") else {},
        owners=tuple(split_owners(row.get("owners"))),
        tags={RESTORED_TAG: RESTORED_FROM},
        links={"run": row["failed_run_url"]} if row.get("failed_run_url") else {},
        run_id=row.get("failed_run_id"),  # a failing incident's latest decision is its last failure
    )
    fixed_by = {"run_id": row["fixed_by_run_id"]} if resolving and row.get("fixed_by_run_id") else None
    return IncidentState(
        fingerprint=row["fingerprint"],
        phase=Phase.RESOLVING if resolving else Phase.FAILING,
        incident_id=row["incident_id"],
        first_failed_at=_opened_at(row),
        last_failed_at=last_failed,
        last_success_at=row.get("last_success_at"),
        resolving_since=row["resolving_since"] if resolving else None,
        last_seen_at=row["last_seen_at"],
        consecutive_failures=int(row.get("failures_seen") or 1),
        flaps=int(row.get("flaps") or 0),
        severity=severity,
        last_event=event,
        receivers={
            r["receiver"]: ReceiverMark(r["notified_at"], Severity.parse(r["severity"] or severity), Transition(r["last_notice"]))
            for r in told
        },
        fixed_by=fixed_by,
        tickets={
            r["receiver"]: {"key": r["ticket_key"], "url": "", "incident_id": row["incident_id"]} for r in told if r.get("ticket_key")
        },
    )
