"""Ten days of audit rows for the report and digest tests, relative to now (the views filter on
CURRENT_TIMESTAMP), written with the trail's own record types.

* ``ingest_loans`` (team:data-eng): 3 runs a day, ~60 s, ~150 s over the last 3 days (regressing);
  its last two runs fail (ERROR, failing now), with an error holding HTML.
* ``nightly_export`` (team:finance): one 300 s run a day, all green (the slowest job).
* ``healthy_job`` (team:data-eng): green every day.
* ``loans/fct_loans:row_count_ok`` (team:credit): an asset check alternating pass/fail every day
  (flaky), failing now (WARN).
* ``unique_fct_loans_loan_id``: a critical dbt test (team:data-eng), failing now (CRITICAL).
* alerts: ``ingest_loans`` open with ticket DM-42; an older incident that recovered (not open).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from dagster_monitoring.audit.records import (
    AlertNotificationRecord,
    AssetCheckEvaluationRecord,
    AuditRecord,
    DbtTestResultRecord,
    RunRecord,
)

NOW = datetime.now(timezone.utc).replace(microsecond=0)
if NOW.hour == 0 and NOW.minute == 0:  # the first minute of a UTC day leaves no room for "today"
    time.sleep(61 - NOW.second)
    NOW = datetime.now(timezone.utc).replace(microsecond=0)
MIDNIGHT = NOW.replace(hour=0, minute=0, second=0)
URL = "http://dagster.example.test/runs/"
HOSTILE = "<script>alert(1)</script> upstream file missing"
FAILING = {"ingest_loans", "loans/fct_loans:row_count_ok", "unique_fct_loans_loan_id"}


def ago(days: int, hours: float = 0) -> datetime:
    """``days`` calendar days before today, ``hours`` (0..7) "earlier" on that day.

    The views bucket by DATE(event_ts) and filter on CURRENT_TIMESTAMP, so each event stays on its
    own UTC day and before now's time of day, whatever the hour the suite runs at: the part of the
    day already gone is split in sevenths (``hours=0`` is now's time of day)."""
    return MIDNIGHT - timedelta(days=days) + (NOW - MIDNIGHT) * (1 - hours / 7)


def run(run_id: str, job: str, status: str, at: datetime, duration: float, owners: str, error: str | None = None) -> RunRecord:
    return RunRecord.build(
        event_ts=at,
        run_id=run_id,
        job_name=job,
        status=status,
        duration_s=duration,
        started_at=at - timedelta(seconds=duration),
        ended_at=at,
        error_class="ValueError" if error else None,
        error_message=error,
        owners=owners,
        run_url=URL + run_id,
    )


def records() -> list[AuditRecord]:
    out: list[AuditRecord] = []
    for day in range(9, -1, -1):  # 9 days ago .. today
        for i in range(3):
            at = ago(day, 6 - 2 * i) if day else ago(0, 3 - i)
            last_two = day == 0 and i >= 1
            slow = day <= 2
            out.append(
                run(
                    f"il-{day}-{i}",
                    "ingest_loans",
                    "FAILURE" if last_two else "SUCCESS",
                    at,
                    150.0 + i if slow else 60.0 + i,
                    "team:data-eng",
                    HOSTILE if last_two else None,
                )
            )
        out.append(run(f"ne-{day}", "nightly_export", "SUCCESS", ago(day, 5) if day else ago(0, 5), 300.0, "team:finance"))
        out.append(run(f"hj-{day}", "healthy_job", "SUCCESS", ago(day, 4) if day else ago(0, 4), 20.0, "team:data-eng"))
        passed = day % 2 == 1
        out.append(
            AssetCheckEvaluationRecord.build(
                event_ts=ago(day, 3) if day else ago(0, 2),
                run_id=f"ck-{day}",
                asset_key="loans/fct_loans",
                check_name="row_count_ok",
                passed=passed,
                severity="WARN",
                description=None if passed else "row count 12 < minimum 100",
                owners="team:credit",
                run_url=URL + f"ck-{day}",
            )
        )
    for day, status in ((3, "pass"), (1, "pass"), (0, "fail")):
        out.append(
            DbtTestResultRecord.build(
                event_ts=ago(day, 2) if day else ago(0, 1),
                invocation_id=f"inv-{day}",
                unique_id="test.lender.unique_fct_loans_loan_id.abc",
                test_name="unique_fct_loans_loan_id",
                model="fct_loans",
                status=status,
                is_critical=True,
                failures=0 if status == "pass" else 3,
                message=None if status == "pass" else "Got 3 results, configured to fail if != 0",
                owners="team:data-eng",
            )
        )
    out += alerts()
    return out


def _alert_row(record_type: str, fp: str, incident: str, at: datetime, entity: str, **fields: object) -> AlertNotificationRecord:
    return AlertNotificationRecord.build(
        event_ts=at, record_type=record_type, fingerprint=fp, incident_id=incident, source="dagster", kind="run_failure", entity=entity, **fields
    )


def decision(
    fp: str, incident: str, observation: str, transition: str | None, at: datetime, entity: str, **kw: str
) -> AlertNotificationRecord:
    return _alert_row(
        "decision", fp, incident, at, entity, observation=observation, transition=transition, severity=kw.get("severity", "ERROR"), run_id=kw.get("run_id")
    )


def delivery(fp: str, incident: str, at: datetime, entity: str, *, ticket_key: str) -> AlertNotificationRecord:
    return _alert_row(
        "delivery", fp, incident, at, entity, transition="new", receiver="jira", severity="ERROR", delivered=True,
        delivery_status="delivered", attempts=1, ticket_key=ticket_key,
    )


def alerts() -> list[AuditRecord]:
    return [
        decision("fp-ingest", "inc-1", "opened", "new", ago(0, 2), "ingest_loans", run_id="il-0-1"),
        delivery("fp-ingest", "inc-1", ago(0, 2), "ingest_loans", ticket_key="DM-42"),  # the ticket the delivery opened
        decision("fp-ingest", "inc-1", "continued", None, ago(0, 1), "ingest_loans", run_id="il-0-2"),
        decision("fp-old", "inc-0", "opened", "new", ago(5), "healthy_job"),
        decision("fp-old", "inc-0", "recovered", "recovered", ago(4), "healthy_job"),
    ]
