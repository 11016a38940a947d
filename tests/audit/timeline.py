"""A crafted audit timeline shared by the DuckDB and BigQuery view tests.

Anchored on yesterday 08:00 UTC so every event falls inside the views' windows (9, 14, 30
days) and on one calendar day, whatever time the tests run.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dagster_monitoring.audit.records import (
    AssetCheckEvaluationRecord,
    AuditRecord,
    DbtTestResultRecord,
    RunRecord,
)

DAY = (datetime.now(timezone.utc) - timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
URL = "http://localhost:3000/runs/"


def at(hours: float) -> datetime:
    return DAY + timedelta(hours=hours)


def run(run_id: str, job: str, status: str, hours: float, duration: float, error: str | None = None) -> RunRecord:
    return RunRecord.build(
        event_ts=at(hours), run_id=run_id, job_name=job, status=status, duration_s=duration,
        started_at=at(hours) - timedelta(seconds=duration), ended_at=at(hours),
        error_class="ValueError" if error else None, error_message=error,
        owners="team:data-eng", run_url=URL + run_id, tags={"team": "data-eng"},
    )


def check(run_id: str, passed: bool, hours: float) -> AssetCheckEvaluationRecord:
    return AssetCheckEvaluationRecord.build(
        event_ts=at(hours), run_id=run_id, asset_key="loans/fct_loans", check_name="row_count_ok",
        passed=passed, severity="ERROR", blocking=False, description=None if passed else "row count 12 < minimum 100",
        owners="team:credit", run_url=URL + run_id, metadata={"row_count": 12 if not passed else 5000},
    )


def dbt(invocation: str, test: str, status: str, hours: float, critical: bool = False, failures: int = 0) -> DbtTestResultRecord:
    return DbtTestResultRecord.build(
        event_ts=at(hours), invocation_id=invocation, unique_id=f"test.lender.{test}.abc123", test_name=test,
        model="fct_repayments", status=status, failures=failures, is_critical=critical,
        message=None if status == "pass" else f"Got {failures} results, configured to {status} if != 0",
        tags=["critical"] if critical else [], execution_time_s=0.4, owners="team:data-eng",
        compiled_path=f"target/compiled/lender/{test}.sql", run_url=URL + invocation,
    )


def before_recovery() -> list[AuditRecord]:
    """loans_daily fails twice; a check flaps; a dbt test goes warn -> fail; one critical test fails."""
    return [
        run("r1", "loans_daily", "STARTED", 0.9, 0),
        run("r1", "loans_daily", "FAILURE", 1, 60, "negative principal on loan 1042"),
        run("r2", "loans_daily", "FAILURE", 2, 120, "negative principal on loan 1187"),
        run("s1", "repayments_sync", "SUCCESS", 1.5, 30),
        run("s2", "repayments_sync", "SUCCESS", 2.5, 50),
        check("c1", True, 1), check("c2", False, 2), check("c3", True, 3), check("c4", False, 4),
        dbt("i1", "not_null_fct_repayments_amount", "warn", 1, failures=2),
        dbt("i2", "not_null_fct_repayments_amount", "fail", 2, failures=3),
        dbt("i2", "unique_fct_loans_loan_id", "fail", 2, critical=True, failures=1),
        dbt("i1", "unique_fct_loans_loan_id", "pass", 1, critical=True),
    ]


def recovery() -> list[AuditRecord]:
    """The fixes land: loans_daily succeeds, the dbt test passes."""
    return [
        run("r3", "loans_daily", "SUCCESS", 3, 90),
        dbt("i3", "not_null_fct_repayments_amount", "pass", 3),
    ]
