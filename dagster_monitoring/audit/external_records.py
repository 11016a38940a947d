"""External job events (Fivetran, dbt Cloud, AWS) as ``external_job_runs`` rows.

Every source event carries its run's facts under ``external_job/...`` detail keys (see
:mod:`dagster_monitoring.sources._common`); this reads them back into one row per observed
status. The row's ``event_id`` hashes source, job, run, status and the event's time, so a
connection polled again, a webhook retried or an SQS message delivered twice is one row.
Events without those keys (every Dagster event) are skipped, and so is a status that is not a
run's (a Fivetran connector polled while its setup is broken has no run and no finish time, and
would otherwise add a row per poll).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ..alerting.events import AlertEvent
from ..sources._common import EXTERNAL_JOB, parse_time
from .records import ExternalJobRunRecord

# the keys the row has columns for; every other external_job/ key goes to `details`
_COLUMNS = {"source", "job_id", "job_name", "run_id", "status", "started_at", "finished_at", "message", "via", "account", "region"}


def _job_facts(details: Mapping[str, Any]) -> dict[str, Any]:
    return {key[len(EXTERNAL_JOB) :]: value for key, value in details.items() if key.startswith(EXTERNAL_JOB)}


def _duration(started: datetime | None, finished: datetime | None) -> float | None:
    return (finished - started).total_seconds() if started and finished and finished >= started else None


def external_job_record(event: AlertEvent) -> ExternalJobRunRecord | None:
    facts = _job_facts(event.details)
    if not facts.get("source") or not facts.get("job_id") or not facts.get("status"):
        return None
    if facts.get("run_id") is None and facts.get("finished_at") is None:
        return None  # not a run's outcome (a Fivetran connector found blocked at poll time): no row per poll
    started, finished = parse_time(facts.get("started_at")), parse_time(facts.get("finished_at"))
    status = str(facts["status"])
    failed = status != "succeeded"
    extra = {k: v for k, v in facts.items() if k not in _COLUMNS and v is not None}
    if event.tags:
        extra["tags"] = dict(event.tags)
    return ExternalJobRunRecord.build(
        event_ts=event.occurred_at,
        source=str(facts["source"]),
        job_id=str(facts["job_id"]),
        job_name=str(facts.get("job_name") or event.entity),
        run_id=None if facts.get("run_id") is None else str(facts["run_id"]),
        status=status,
        failed=failed,
        severity=event.severity.value.upper() if failed else None,
        started_at=started,
        finished_at=finished,
        duration_s=_duration(started, finished),
        message=facts.get("message"),
        fingerprint=event.fingerprint,
        owners=",".join(event.owners) or None,
        run_url=next(iter(event.links.values()), None),
        via=facts.get("via"),
        account=facts.get("account"),
        region=facts.get("region"),
        details=extra or None,
    )


def external_job_records(events: Iterable[AlertEvent]) -> list[ExternalJobRunRecord]:
    """One row per external job event; the rest (Dagster's own events) are left out."""
    return [r for r in map(external_job_record, events) if r is not None]
