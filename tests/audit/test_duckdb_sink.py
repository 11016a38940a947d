"""The DuckDB sink: real DuckDB file, the crafted timeline, every view, idempotent writes."""

from __future__ import annotations

from datetime import datetime

import pytest

from dagster_monitoring.audit.records import AuditRecordError, RunRecord
from dagster_monitoring.audit.sinks.base import AuditSinkError
from dagster_monitoring.audit.sinks.duckdb import DuckDBSink

from . import timeline as tl


@pytest.fixture
def sink(tmp_path):
    sink = DuckDBSink(tmp_path / "audit.duckdb", dataset="audit_test")
    sink.init()
    return sink


def rows(sink, view, order_by=None):
    cols, data = sink.query(f"SELECT * FROM audit_test.{view}" + (f" ORDER BY {order_by}" if order_by else ""))
    return [dict(zip(cols, r)) for r in data]


def test_file_is_created_on_first_write(tmp_path):
    sink = DuckDBSink(tmp_path / "nested" / "audit.duckdb")
    result = sink.write(tl.before_recovery())
    assert (tmp_path / "nested" / "audit.duckdb").exists()
    assert result.inserted == len(tl.before_recovery())


def test_writing_the_same_batch_twice_adds_nothing(sink):
    first = sink.write(tl.before_recovery())
    second = sink.write(tl.before_recovery())
    assert first.inserted == 13 and second.inserted == 0
    assert sink.query("SELECT count(*) FROM audit_test.runs")[1] == [(5,)]
    assert first.per_table == {"runs": 5, "asset_check_evaluations": 4, "dbt_test_results": 4}


def test_recent_failures_before_and_after_recovery(sink):
    sink.write(tl.before_recovery())
    failing = {r["entity"]: r for r in rows(sink, "vw_recent_failures")}
    assert set(failing) == {"loans_daily", "loans/fct_loans:row_count_ok", "not_null_fct_repayments_amount", "unique_fct_loans_loan_id"}

    job = failing["loans_daily"]
    assert job["entity_type"] == "job"
    assert job["failing_since"] == tl.at(1) and job["last_failure_at"] == tl.at(2)
    assert job["failures_in_streak"] == 2 and job["last_success_at"] is None
    assert job["last_error"] == "ValueError: negative principal on loan 1187"
    assert job["last_run_url"] == tl.URL + "r2" and job["owners"] == "team:data-eng"

    flaky = failing["loans/fct_loans:row_count_ok"]
    assert flaky["failing_since"] == tl.at(4) and flaky["failures_in_streak"] == 1 and flaky["last_success_at"] == tl.at(3)
    assert flaky["last_error"] == "row count 12 < minimum 100" and flaky["severity"] == "ERROR"

    warn_then_fail = failing["not_null_fct_repayments_amount"]
    assert warn_then_fail["failing_since"] == tl.at(1) and warn_then_fail["failures_in_streak"] == 2
    assert warn_then_fail["severity"] == "ERROR"  # the latest result (fail), not the first (warn)
    assert failing["unique_fct_loans_loan_id"]["severity"] == "CRITICAL"

    sink.write(tl.recovery())
    after = {r["entity"] for r in rows(sink, "vw_recent_failures")}
    assert after == {"loans/fct_loans:row_count_ok", "unique_fct_loans_loan_id"}  # the fixed ones disappeared


def test_run_summary(sink):
    sink.write(tl.before_recovery() + tl.recovery())
    summary = {r["job_name"]: r for r in rows(sink, "vw_run_summary")}
    loans = summary["loans_daily"]
    assert loans["run_date"] == tl.DAY.date()
    assert (loans["runs"], loans["failures"], loans["canceled"]) == (3, 2, 0)  # STARTED rows are not runs
    assert loans["success_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert loans["p50_duration_s"] == pytest.approx(90.0)
    assert loans["p95_duration_s"] == pytest.approx(117.0)  # linear interpolation of 60, 90, 120
    assert loans["last_status"] == "SUCCESS" and loans["last_run_url"] == tl.URL + "r3"
    assert summary["repayments_sync"]["success_rate"] == 1.0


def test_failures_9d_dbt_latest_and_flaky(sink):
    sink.write(tl.before_recovery() + tl.recovery())
    by_entity = {r["entity"]: r for r in rows(sink, "vw_failures_9d")}
    assert by_entity["loans_daily"]["failures"] == 2 and by_entity["loans_daily"]["outcomes"] == 3
    assert by_entity["loans_daily"]["failures_9d"] == 2 and by_entity["loans_daily"]["days_with_failures_9d"] == 1
    assert by_entity["repayments_sync"]["failures"] == 0

    dbt = {r["test_name"]: r for r in rows(sink, "vw_dbt_test_results")}
    assert (dbt["not_null_fct_repayments_amount"]["status"], dbt["not_null_fct_repayments_amount"]["previous_status"]) == ("pass", "fail")
    assert dbt["unique_fct_loans_loan_id"]["status"] == "fail" and dbt["unique_fct_loans_loan_id"]["is_critical"] is True

    flaky = rows(sink, "vw_flaky_checks")
    assert [(r["entity"], r["flips"], r["failures"]) for r in flaky] == [("loans/fct_loans:row_count_ok", 3, 2)]


def test_views_are_empty_on_an_empty_trail(sink):
    for view in ("vw_recent_failures", "vw_run_summary", "vw_failures_9d", "vw_dbt_test_results", "vw_flaky_checks", "vw_open_alerts", "vw_open_alert_receivers"):
        assert rows(sink, view) == []


def test_missing_field_and_naive_timestamp_are_named():
    with pytest.raises(AuditRecordError, match=r"invalid runs record: job_name: field required"):
        RunRecord.build(event_ts=tl.at(0), run_id="r", status="FAILURE")
    with pytest.raises(AuditRecordError, match=r"invalid runs record: event_ts: event_ts must be timezone-aware"):
        RunRecord.build(event_ts=datetime(2026, 11, 25, 3), run_id="r", job_name="j", status="FAILURE")
    with pytest.raises(AuditRecordError, match=r"status: must be one of"):
        RunRecord.build(event_ts=tl.at(0), run_id="r", job_name="j", status="EXPLODED")


def test_a_folder_that_cannot_be_created_is_an_audit_sink_error(tmp_path):
    (tmp_path / "audit").write_text("a file where the folder should be")
    sink = DuckDBSink(tmp_path / "audit" / "audit.duckdb", dataset="audit_test")
    with pytest.raises(AuditSinkError, match=r"cannot open DuckDB audit file .*FileExistsError"):
        sink.write(tl.before_recovery())
    with pytest.raises(AuditSinkError):
        sink.init()


def test_a_batch_mixing_written_and_new_rows_inserts_only_the_new_ones(sink):
    sink.write(tl.before_recovery())
    result = sink.write(tl.before_recovery() + tl.recovery())  # the key check fails, ON CONFLICT takes over
    assert result.inserted == len(tl.recovery()) == 2
    assert sink.query("SELECT count(*), count(DISTINCT event_id) FROM audit_test.runs")[1] == [(6, 6)]


def test_the_same_fact_twice_in_one_batch_is_one_row(sink):
    result = sink.write(tl.recovery() + tl.recovery())
    assert result.inserted == 2
    assert sink.query("SELECT count(*) FROM audit_test.dbt_test_results")[1] == [(1,)]


def test_rows_are_the_same_as_from_the_record_dicts(sink):
    """The Arrow batch is built column by column; it must hold what ``to_row`` describes."""
    import pyarrow as pa

    from dagster_monitoring.audit import schema
    from dagster_monitoring.audit.records import group_by_table
    from dagster_monitoring.audit.sinks.duckdb import arrow_schema, arrow_table

    at = tl.at(9)
    for name, batch in group_by_table(tl.before_recovery() + tl.recovery()).items():
        target = arrow_schema(schema.table(name))
        assert arrow_table(batch, at, target).equals(pa.Table.from_pylist([r.to_row(at) for r in batch], schema=target)), name


def test_json_columns_are_the_text_json_dumps_gives():
    """json_text builds its C encoder once; the text must stay what json.dumps wrote before."""
    import json
    from datetime import date

    from dagster_monitoring.audit.records import json_text

    values = [{"b": [1, 2.5, None, True], "a": {"z": "é"}}, {"when": date(2026, 11, 25)}, {"nan": float("nan")}, ["x", 1], "text", 3]
    assert [json_text(v) for v in values] == [json.dumps(v, default=str, sort_keys=True) for v in values]
    assert json_text(None) is None


def test_a_trail_made_by_an_earlier_version_gets_the_new_views_and_keeps_its_rows(tmp_path):
    """An existing file skips the tables' DDL, but a changed view definition must still arrive:
    the views carry the version of the SQL they were made from."""
    import duckdb

    path = tmp_path / "audit.duckdb"
    DuckDBSink(path, dataset="audit_test").write(tl.before_recovery())
    with duckdb.connect(str(path)) as con:  # what an earlier release left: another view body, no version
        con.execute("CREATE OR REPLACE VIEW audit_test.vw_recent_failures AS SELECT 1 AS stale")
        con.execute("CREATE OR REPLACE VIEW audit_test.vw_run_summary AS SELECT 1 AS stale")
    sink = DuckDBSink(path, dataset="audit_test")
    sink.init()
    columns, rows = sink.query_view("vw_recent_failures")
    assert "stale" not in columns and "failing_since" in columns and rows  # the current view, over the old rows
    assert "stale" not in sink.query_view("vw_run_summary")[0]
    assert sink.query("SELECT count(*) FROM audit_test.runs")[1] == [(sum(1 for r in tl.before_recovery() if r.TABLE == "runs"),)]
    again = DuckDBSink(path, dataset="audit_test")
    again.init()  # already current: one version mark, not a second one
    with duckdb.connect(str(path), read_only=True) as con:
        [(comment,)] = con.execute(
            "SELECT comment FROM duckdb_views() WHERE schema_name = 'audit_test' AND comment IS NOT NULL"
        ).fetchall()
    assert comment.startswith("dagster-monitoring views ")


# -- the file is attached to the process's in-memory database, and released after ---------------

_OTHER_PROCESS_COUNT = "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); print(c.execute('SELECT count(*) FROM audit_test.runs').fetchone()[0])"


def _count_from_another_process(path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _OTHER_PROCESS_COUNT, str(path)], capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout.strip(), done.stderr


def test_another_process_reads_the_file_between_writes_and_not_during_a_session(sink):
    sink.write(tl.before_recovery())
    assert _count_from_another_process(sink.path)[:2] == (0, "5")  # the write released the file
    with sink.session():
        sink.write(tl.recovery())
        code, _, err = _count_from_another_process(sink.path)
        assert code != 0 and "lock" in err.lower()  # held for the tick, as a DuckDB writer holds it
    code, out, _ = _count_from_another_process(sink.path)
    assert code == 0 and int(out) > 5


def test_two_sinks_of_one_file_in_one_process_share_it_and_reads_work_during_a_session(tmp_path):
    """DuckDB refuses to attach one file twice in a process: the sinks share one attachment."""
    path = tmp_path / "audit.duckdb"
    first, second = DuckDBSink(path, dataset="audit_test"), DuckDBSink(path, dataset="audit_test")
    with first.session():
        first.write(tl.before_recovery())
        assert second.write(tl.recovery()).inserted == len(tl.recovery())
        assert second.query("SELECT count(*) FROM audit_test.runs")[1] == first.query("SELECT count(*) FROM audit_test.runs")[1]
        assert second.query_view("vw_run_summary")[1]  # a view made while attached reads the same
    assert _count_from_another_process(path)[0] == 0


def test_a_failed_write_releases_the_file(sink, tmp_path):
    sink.write(tl.before_recovery())
    with sink.session():
        sink.write(tl.recovery())
        sink.dataset = "no_such_dataset"  # every statement fails from here
        sink._plans.clear()
        with pytest.raises(AuditSinkError):
            sink.write(tl.before_recovery())
        # the failed connection was given back: the file is free even before the session ends
        assert _count_from_another_process(sink.path)[0] == 0
    sink.dataset = "audit_test"
    sink._plans.clear()
    assert sink.write(tl.before_recovery()).inserted == 0  # attached again, nothing doubled


# -- exactly once without a primary key on the tables a sensor tick writes ----------------------


def _keyed_tables(sink):
    return {r[0] for r in sink.query("SELECT table_name FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'")[1]}


def test_the_tables_a_tick_writes_have_no_primary_key_and_the_others_keep_theirs(sink):
    from dagster_monitoring.audit.records import BY_TABLE

    by_time = {name for name, record in BY_TABLE.items() if record.DEDUPE_BY_TIME}
    assert by_time == {"runs", "asset_materializations", "asset_check_evaluations", "alert_notifications"}
    assert _keyed_tables(sink) == set(BY_TABLE) - by_time


def test_a_fact_seen_again_with_another_time_inside_the_window_is_one_row_and_outside_two(sink):
    """A by-time table finds the earlier row within DEDUPE_WINDOW of the new row's event_ts; a
    writer that gave one fact times further apart would get two rows (the documented limit)."""
    from dagster_monitoring.audit.records import DEDUPE_WINDOW

    first = tl.run("r1", "loans_daily", "FAILURE", 1, 60)
    near = first.model_copy(update={"event_ts": first.event_ts + DEDUPE_WINDOW / 2})  # same event_id
    far = first.model_copy(update={"event_ts": first.event_ts + DEDUPE_WINDOW * 3})
    assert near.event_id == far.event_id == first.event_id
    assert sink.write([first]).inserted == 1
    assert sink.write([near, tl.run("r2", "loans_daily", "SUCCESS", 9, 60)]).inserted == 1
    assert sink.query("SELECT count(*), count(DISTINCT event_id) FROM audit_test.runs")[1] == [(2, 2)]
    assert sink.write([far]).inserted == 1
    assert sink.query("SELECT count(*), count(DISTINCT event_id) FROM audit_test.runs")[1] == [(3, 2)]


def test_two_sinks_writing_the_same_rows_at_once_write_each_row_once(tmp_path):
    """Writers of one file take turns: neither misses the other's rows."""
    import threading

    path = tmp_path / "audit.duckdb"
    DuckDBSink(path, dataset="audit_test").init()
    batch = [tl.run(f"r{i}", "loans_daily", "SUCCESS", i / 100, 5) for i in range(300)]
    sinks = [DuckDBSink(path, dataset="audit_test") for _ in range(4)]
    results = []
    threads = [threading.Thread(target=lambda s=s: results.append(s.write(batch))) for s in sinks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r.inserted for r in results) == [0, 0, 0, 300]
    assert sinks[0].query("SELECT count(*), count(DISTINCT event_id) FROM audit_test.runs")[1] == [(300, 300)]


def test_a_trail_made_with_primary_keys_everywhere_loses_them_on_the_by_time_tables_and_keeps_its_rows(tmp_path):
    """Trails made before the by-time tables are rebuilt once, rows kept, views still reading them."""
    import duckdb

    from dagster_monitoring.audit import schema
    from dagster_monitoring.audit.records import BY_TABLE

    path = tmp_path / "audit.duckdb"
    with duckdb.connect(str(path)) as con:  # what an earlier release made
        con.execute("CREATE SCHEMA audit_test")
        for table in schema.tables():
            con.execute(schema.duckdb_sql(table.ast, "audit_test", primary_key=True))
        for view in schema.views():
            con.execute(schema.duckdb_sql(view.ast, "audit_test"))
    old = DuckDBSink(path, dataset="audit_test")
    old._keyed = frozenset(t.name for t in schema.tables())
    old._initialised = True  # an earlier release: it writes with the keys, no rebuild
    assert old.write(tl.before_recovery()).inserted == 13
    sink = DuckDBSink(path, dataset="audit_test")
    assert sink.write(tl.before_recovery() + tl.recovery()).inserted == 2
    assert _keyed_tables(sink) == {name for name, record in BY_TABLE.items() if not record.DEDUPE_BY_TIME}
    assert sink.query("SELECT count(*), count(DISTINCT event_id) FROM audit_test.runs")[1] == [(6, 6)]
    assert sink.query("SELECT count(*) FROM audit_test.asset_check_evaluations")[1] == [(4,)]
    assert sink.query_view("vw_run_summary")[1]
    assert "runs__keyed" not in {r[0] for r in sink.query("SELECT table_name FROM information_schema.tables")[1]}


def test_a_forked_child_writes_with_a_database_of_its_own(tmp_path):
    """A run worker started with fork must not use the parent's in-memory DuckDB database."""
    import os

    from dagster_monitoring.audit.sinks import duckdb as duckdb_sink

    parent = DuckDBSink(tmp_path / "parent.duckdb", dataset="audit_test")
    parent.write(tl.before_recovery())  # the parent's database exists now
    inherited = duckdb_sink._attachments
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 only if it wrote with a new database
        try:
            child = DuckDBSink(tmp_path / "child.duckdb", dataset="audit_test")
            ok = duckdb_sink._attachments is not inherited and child.write(tl.recovery()).inserted == 2
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert duckdb_sink._attachments is inherited
    assert DuckDBSink(tmp_path / "child.duckdb", dataset="audit_test").query("SELECT count(*) FROM audit_test.runs")[1] == [(1,)]
    assert parent.write(tl.recovery()).inserted == 2
