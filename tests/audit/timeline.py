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


def dbt(invocation: str, test: str, status: str, hours: float, critical: bool = False, failures: int = 0,
        run_id: str | None = None, model: str = "fct_repayments", owners: str = "team:data-eng") -> DbtTestResultRecord:
    return DbtTestResultRecord.build(
        event_ts=at(hours), invocation_id=invocation, unique_id=f"test.lender.{test}.abc123", test_name=test,
        model=model, status=status, failures=failures, is_critical=critical, run_id=run_id,
        message=None if status == "pass" else f"Got {failures} results, configured to {status} if != 0",
        tags=["critical"] if critical else [], execution_time_s=0.4, owners=owners,
        compiled_path=f"target/compiled/lender/{test}.sql", run_url=None if run_id else URL + invocation,
    )


def dbt_check(run_id: str, test: str, passed: bool, hours: float, severity: str) -> AssetCheckEvaluationRecord:
    """The asset check Dagster records for a dbt test, as the audit sensor does: named after the
    test, severity WARN/ERROR, no owners, the run URL (dbt's row has none without a base URL)."""
    return AssetCheckEvaluationRecord.build(
        event_ts=at(hours) + timedelta(seconds=5), run_id=run_id, asset_key="stg_loans", check_name=test,
        passed=passed, severity=severity, blocking=severity == "ERROR",
        description=None if passed else "Got 1 result, configured to fail if != 0",
        run_url=URL + run_id, metadata={"unique_id": f"test.lender.{test}.abc123", "dagster_monitoring/source": "dbt"},
    )


CRITICAL_DBT = "not_null_stg_loans_principal_amount"
WARN_DBT = "accepted_values_stg_loans_status"


def dbt_in_dagster_failing() -> list[AuditRecord]:
    """Run d1 runs dbt as asset checks: every test is recorded both ways (dbt result + check).
    The critical test fails (check ERROR, alert CRITICAL); a non-critical test fails as a WARN check."""
    return [
        dbt("i4", CRITICAL_DBT, "fail", 2, critical=True, failures=1, run_id="d1", model="stg_loans", owners="team:lending"),
        dbt_check("d1", CRITICAL_DBT, False, 2, "ERROR"),
        dbt("i4", WARN_DBT, "fail", 2, failures=1, run_id="d1", model="stg_loans", owners="team:lending-ops"),
        dbt_check("d1", WARN_DBT, False, 2, "WARN"),
    ]


def dbt_in_dagster_fixed() -> list[AuditRecord]:
    """Run d2: the critical test passes, both ways; the WARN one is still failing."""
    return [
        dbt("i5", CRITICAL_DBT, "pass", 3, critical=True, run_id="d2", model="stg_loans", owners="team:lending"),
        dbt_check("d2", CRITICAL_DBT, True, 3, "ERROR"),
        dbt("i5", WARN_DBT, "fail", 3, failures=1, run_id="d2", model="stg_loans", owners="team:lending-ops"),
        dbt_check("d2", WARN_DBT, False, 3, "WARN"),
    ]


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


# -- runs outside Dagster: records built from the sources' own events, as the ingest hook does --


def _z(hours: float) -> str:
    return at(hours).isoformat().replace("+00:00", "Z")


def fivetran_sync_end(status: str, hours: float, sync_id: str, reason: str | None = None):
    from dagster_monitoring.config import config_from_dict
    from dagster_monitoring.sources import fivetran

    cfg = config_from_dict({"sources": {"fivetran": {"webhook_secret": "s" * 12, "owners": ["team:data-eng"]}}}).sources.fivetran
    payload = {
        "event": "sync_end",
        "created": _z(hours),
        "connector_type": "postgres",
        "connector_id": "mystified_presiding",
        "connector_name": "warehouse_pg",
        "sync_id": sync_id,
        "destination_group_id": "projected_sickle",
        "data": {"status": status, **({"reason": reason} if reason else {})},
    }
    return fivetran.webhook_event(payload, cfg)


def dbt_cloud_run(run_id: int, status: int, hours: float):
    from dagster_monitoring.config import config_from_dict
    from dagster_monitoring.sources import dbt_cloud

    cfg = config_from_dict({"sources": {"dbt_cloud": {"account_id": 43, "webhook_secret": "s" * 12, "project_id": 99}}}).sources.dbt_cloud
    run = {
        "id": run_id,
        "job_definition_id": 10,
        "project_id": 99,
        "status": status,
        "status_humanized": "Success" if status == 10 else "Error",
        "status_message": None if status == 10 else "Database Error in model fct_loans",
        "started_at": at(hours - 0.1).isoformat(),
        "finished_at": at(hours).isoformat(),
        "job": {"name": "daily build"},
        "environment": {"name": "prod"},
    }
    return dbt_cloud.run_event(run, cfg, now=at(hours))


def external_failing() -> list[AuditRecord]:
    """The Fivetran connector fails twice (the second sync re-delivered), the dbt Cloud job fails once."""
    from dagster_monitoring.audit.external_records import external_job_records

    events = [
        fivetran_sync_end("FAILURE_WITH_TASK", 1, "sync-1", "permission denied for table loans"),
        fivetran_sync_end("FAILURE_WITH_TASK", 2, "sync-2", "permission denied for table loans"),
        fivetran_sync_end("FAILURE_WITH_TASK", 2, "sync-2", "permission denied for table loans"),  # the webhook retried
        dbt_cloud_run(101, 20, 1.5),
    ]
    return list(external_job_records(events))


def external_recovered() -> list[AuditRecord]:
    from dagster_monitoring.audit.external_records import external_job_records

    return list(external_job_records([fivetran_sync_end("SUCCESSFUL", 3, "sync-3")]))
