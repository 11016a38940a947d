"""external_job_runs: rows from the sources' events, idempotent, and the views that read them (DuckDB)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dagster_monitoring.audit.external_records import external_job_records
from dagster_monitoring.audit.records import AuditRecordError, ExternalJobRunRecord
from dagster_monitoring.audit.sinks.duckdb import DuckDBSink

from . import timeline as tl


@pytest.fixture
def sink(tmp_path):
    sink = DuckDBSink(tmp_path / "audit.duckdb", dataset="audit_test")
    sink.init()
    return sink


def rows(sink, view):
    cols, data = sink.query(f"SELECT * FROM audit_test.{view}")
    return [dict(zip(cols, r)) for r in data]


def test_a_row_carries_the_events_run_facts():
    [row] = external_job_records([tl.dbt_cloud_run(101, 20, 1.5)])
    assert (row.source, row.job_id, row.job_name, row.run_id, row.status, row.failed) == (
        "dbt_cloud",
        "10",
        "daily build",
        "101",
        "failed",
        True,
    )
    assert row.severity == "ERROR" and row.fingerprint == "dbt_cloud:job_run:daily build" and row.via == "poll"
    assert row.event_ts == tl.at(1.5) and row.duration_s == pytest.approx(360.0)
    assert row.run_url == "https://cloud.getdbt.com/deploy/43/projects/99/runs/101/"
    assert row.message == "Database Error in model fct_loans" and row.details == {"tags": {"dbt_cloud/job_id": "10"}}
    [ok] = external_job_records([tl.fivetran_sync_end("SUCCESSFUL", 3, "sync-3")])
    assert (ok.source, ok.job_name, ok.status, ok.failed, ok.severity, ok.owners) == (
        "fivetran",
        "warehouse_pg",
        "succeeded",
        False,
        None,
        "team:data-eng",
    )


def test_dagster_events_and_polls_of_a_blocked_connector_make_no_row():
    from dagster_monitoring.alerting import AlertEvent

    plain = AlertEvent(source="dagster", kind="run", entity="j", status="failing", severity="error", occurred_at=tl.at(1))
    blocked = tl.fivetran_sync_end("FAILURE", 1, "x")
    details = {k: v for k, v in blocked.details.items() if k not in ("external_job/run_id", "external_job/finished_at")}
    assert external_job_records([plain, type(blocked)(**{**_fields(blocked), "details": details})]) == []


def _fields(event):
    return {
        f: getattr(event, f)
        for f in ("source", "kind", "entity", "status", "severity", "occurred_at", "summary", "owners", "tags", "links")
    }


def test_one_run_seen_twice_at_different_times_is_one_row(sink):
    """dbt Cloud sends job.run.errored, then job.run.completed a little later, for the same failed
    run (and a poll may see it too): one row per run and status, the first observation's."""
    errored, completed = external_job_records([tl.dbt_cloud_run(101, 20, 1.5), tl.dbt_cloud_run(101, 20, 1.55)])
    assert errored.event_ts != completed.event_ts and errored.event_id == completed.event_id
    assert sink.write([errored]).inserted == 1 and sink.write([completed]).inserted == 0
    [succeeded] = external_job_records([tl.dbt_cloud_run(101, 10, 1.6)])  # another status of that run is its own row
    assert sink.write([succeeded]).inserted == 1
    assert sink.query("SELECT status, event_ts FROM audit_test.external_job_runs ORDER BY event_ts")[1] == [
        ("failed", tl.at(1.5)),
        ("succeeded", tl.at(1.6)),
    ]


def test_the_same_event_twice_is_one_row(sink):
    first = sink.write(tl.external_failing())
    again = sink.write(tl.external_failing())
    assert first.inserted == 3 and again.inserted == 0  # the retried webhook was already one row
    assert sink.query("SELECT count(*) FROM audit_test.external_job_runs")[1] == [(3,)]


def test_an_unknown_status_is_named():
    with pytest.raises(AuditRecordError, match="external_job_runs.*status"):
        ExternalJobRunRecord.build(
            event_ts=tl.at(1), source="aws_glue", job_id="j", job_name="j", status="weird", failed=True, fingerprint="f"
        )


def test_external_jobs_fail_in_recent_failures_then_disappear(sink):
    sink.write(tl.external_failing())
    failing = {(r["entity_type"], r["entity"]): r for r in rows(sink, "vw_recent_failures")}
    assert set(failing) == {("fivetran", "warehouse_pg"), ("dbt_cloud", "daily build")}
    ft = failing[("fivetran", "warehouse_pg")]
    assert ft["failing_since"] == tl.at(1) and ft["failures_in_streak"] == 2 and ft["severity"] == "ERROR"
    assert ft["last_error"] == "permission denied for table loans" and ft["last_run_id"] == "sync-2"
    assert ft["last_run_url"] == "https://fivetran.com/dashboard/connections/mystified_presiding" and ft["owners"] == "team:data-eng"
    sink.write(tl.external_recovered())
    assert {(r["entity_type"], r["entity"]) for r in rows(sink, "vw_recent_failures")} == {("dbt_cloud", "daily build")}


def test_run_summary_and_failures_9d_count_external_runs_next_to_dagsters(sink):
    sink.write(tl.before_recovery() + tl.recovery() + tl.external_failing() + tl.external_recovered())
    summary = {(r["source"], r["job_name"]): r for r in rows(sink, "vw_run_summary")}
    assert (summary[("dagster", "loans_daily")]["runs"], summary[("dagster", "loans_daily")]["failures"]) == (3, 2)
    ft = summary[("fivetran", "warehouse_pg")]
    assert (ft["runs"], ft["failures"], ft["last_status"], ft["run_date"]) == (3, 2, "SUCCESS", tl.DAY.date())
    assert ft["success_rate"] == pytest.approx(1 / 3, abs=1e-4)
    dbt = summary[("dbt_cloud", "daily build")]
    assert (dbt["runs"], dbt["failures"], dbt["p50_duration_s"]) == (1, 1, pytest.approx(360.0))
    nine = {(r["entity_type"], r["entity"]): r for r in rows(sink, "vw_failures_9d")}
    assert (nine[("fivetran", "warehouse_pg")]["failures"], nine[("fivetran", "warehouse_pg")]["outcomes"]) == (2, 3)
    assert nine[("dbt_cloud", "daily build")]["failures_9d"] == 1


def test_external_job_runs_view_gives_each_jobs_latest_status_and_its_9_day_failures(sink):
    sink.write(tl.external_failing())
    jobs = {(r["source"], r["job_name"]): r for r in rows(sink, "vw_external_job_runs")}
    assert set(jobs) == {("fivetran", "warehouse_pg"), ("dbt_cloud", "daily build")}
    ft = jobs[("fivetran", "warehouse_pg")]
    assert (ft["last_status"], ft["failed"], ft["failures_9d"], ft["runs_9d"]) == ("failed", True, 2, 2)
    assert ft["message"] == "permission denied for table loans" and ft["owners"] == "team:data-eng"
    sink.write(tl.external_recovered())
    ft = {(r["source"], r["job_name"]): r for r in rows(sink, "vw_external_job_runs")}[("fivetran", "warehouse_pg")]
    assert (ft["last_status"], ft["failed"], ft["failures_9d"], ft["runs_9d"]) == ("succeeded", False, 2, 3)


def test_rows_older_than_the_views_window_are_left_out(sink):
    [old] = external_job_records([tl.dbt_cloud_run(1, 20, -24 * 40)])
    assert old.event_ts < tl.DAY - timedelta(days=30)
    sink.write([old])
    assert rows(sink, "vw_recent_failures") == [] and rows(sink, "vw_run_summary") == []
    assert rows(sink, "vw_external_job_runs") == []
