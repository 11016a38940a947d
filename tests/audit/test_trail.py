"""AuditTrail: spool on outage, replay on recovery, nothing lost, nothing doubled; router hooks."""

from __future__ import annotations

import logging

import pytest

from dagster_monitoring.audit import schema
from dagster_monitoring.audit.alert_records import decision_records, delivery_records
from dagster_monitoring.audit.sinks.duckdb import DuckDBSink
from dagster_monitoring.audit.spool import Spool
from dagster_monitoring.audit.trail import AuditTrail

from ..faults.audit_harness import FileLockedByAnotherProcess, mixed_records
from ..helpers.factories import make_event, make_router
from . import timeline as tl


@pytest.fixture
def trail(tmp_path):
    sink = DuckDBSink(tmp_path / "audit.duckdb", dataset="audit_test")
    sink.init()
    return AuditTrail(sink, Spool(tmp_path / "spool"))


ALL_TABLES = [t.name for t in schema.tables()]


def count(trail, table):
    return trail.sink.query(f"SELECT count(*) FROM audit_test.{table}")[1][0][0]


def test_outage_spools_and_the_next_write_replays_exactly_once(trail, tmp_path, caplog):
    first, second = tl.before_recovery(), tl.recovery()
    with FileLockedByAnotherProcess(tmp_path / "audit.duckdb"), caplog.at_level(logging.WARNING):
        result = trail.write(first)
        assert result.spooled == len(first) and result.inserted is None
        again = trail.write(second)  # still down: both batches wait, in order
        assert again.spooled == len(second)
    assert trail.spool.pending_rows() == len(first) + len(second) and trail.spool.pending_files() == 2
    assert any("kept in" in r.getMessage() for r in caplog.records)

    recovered = trail.flush()
    assert recovered.replayed == len(first) + len(second)
    assert trail.spool.pending_rows() == 0
    assert count(trail, "runs") == 6 and count(trail, "dbt_test_results") == 5
    # a replay of already-written rows (an ambiguous failure) doubles nothing
    trail.spool.put(second)
    trail.flush()
    assert count(trail, "runs") == 6 and count(trail, "dbt_test_results") == 5
    failing = {r[1] for r in trail.sink.query("SELECT * FROM audit_test.vw_recent_failures")[1]}
    assert failing == {"loans/fct_loans:row_count_ok", "unique_fct_loans_loan_id"}


def test_spooled_records_survive_a_new_process_object(trail, tmp_path):
    with FileLockedByAnotherProcess(tmp_path / "audit.duckdb"):
        trail.write(tl.before_recovery())
    fresh = AuditTrail(DuckDBSink(tmp_path / "audit.duckdb", dataset="audit_test"), Spool(tmp_path / "spool"))
    assert fresh.flush().replayed == len(tl.before_recovery())
    assert count(fresh, "asset_check_evaluations") == 4


def test_router_decisions_and_deliveries_land_in_alert_notifications(trail, tmp_path, clock):
    router = make_router(
        {
            "receivers": [{"type": "file", "name": "file", "path": str(tmp_path / "sent.jsonl")}],
            "routes": [{"receivers": ["file"]}],
            "policy": {"flap_window": "0s"},
            "state": {"path": str(tmp_path / "state.db")},
        },
        clock,
    )
    router.on_decision = lambda ds: trail.write(decision_records(ds))
    router.on_delivery = lambda os_: trail.write(delivery_records(os_))
    clock.now = tl.at(1)
    router.process([make_event("loans_daily", at=clock.now, run_id="r1")])
    clock.now = tl.at(2)
    router.process([make_event("loans_daily", at=clock.now, run_id="r2")])
    clock.now = tl.at(2.5)
    router.process([make_event("repayments_sync", at=clock.now, severity="critical")])

    open_alerts = {
        r[0]: r
        for r in trail.sink.query(
            "SELECT fingerprint, state, opened_at, failures_seen, notifications, severity FROM audit_test.vw_open_alerts"
        )[1]
    }
    assert set(open_alerts) == {"dagster:run:loans_daily", "dagster:run:repayments_sync"}
    assert open_alerts["dagster:run:loans_daily"][1:5] == ("continued", tl.at(1), 2, 1)
    assert open_alerts["dagster:run:repayments_sync"][5] == "critical"

    clock.now = tl.at(3)
    router.process([make_event("loans_daily", "passing", at=clock.now)])
    assert {r[0] for r in trail.sink.query("SELECT fingerprint FROM audit_test.vw_open_alerts")[1]} == {"dagster:run:repayments_sync"}
    deliveries = trail.sink.query(
        "SELECT transition, delivered, delivery_status FROM audit_test.alert_notifications "
        "WHERE record_type = 'delivery' AND fingerprint = 'dagster:run:loans_daily' ORDER BY event_ts"
    )[1]
    assert deliveries == [("new", True, "delivered"), ("recovered", True, "delivered")]
    decisions = trail.sink.query(
        "SELECT observation, transition FROM audit_test.alert_notifications "
        "WHERE record_type = 'decision' AND fingerprint = 'dagster:run:loans_daily' ORDER BY event_ts"
    )[1]
    assert decisions == [("opened", "new"), ("continued", "ongoing"), ("recovered", "recovered")]


def test_successes_with_no_incident_open_write_no_decision_rows(trail, tmp_path, clock):
    router = make_router(
        {
            "receivers": [{"type": "file", "name": "file", "path": str(tmp_path / "sent.jsonl")}],
            "routes": [{"receivers": ["file"]}],
            "state": {"path": str(tmp_path / "state.db")},
        },
        clock,
    )
    router.on_decision = lambda ds: trail.write(decision_records(ds))
    for hour in range(5):  # a job that keeps succeeding
        clock.now = tl.at(hour)
        assert [d.observation.value for d in router.process([make_event("loans_daily", "passing", at=clock.now)]).decisions] == ["healthy"]
    assert count(trail, "alert_notifications") == 0


def rows_of(trail, view, where=""):
    columns, rows = trail.sink.query(f"SELECT * FROM audit_test.{view} {where}")
    return [dict(zip(columns, row, strict=True)) for row in rows]


def test_a_dbt_test_recorded_as_check_and_as_dbt_result_is_one_row(trail):
    """Dagster records a dbt test twice (asset check + dbt result, same run and name): the views
    show it once, with the alert's severity and entity, the test's owner, dbt's message, the run URL."""
    trail.write(tl.dbt_in_dagster_failing())
    failing = rows_of(trail, "vw_recent_failures")
    assert len(failing) == 2 and {r["entity_type"] for r in failing} == {"dbt_test"}
    by_entity = {r["entity"]: r for r in failing}
    critical = by_entity[f"stg_loans:{tl.CRITICAL_DBT}"]  # the alert's entity: asset key, test name
    assert critical["severity"] == "CRITICAL"  # the alert's severity, not the check's ERROR
    assert critical["owners"] == "team:lending"  # the dbt test's owner (the check row has none)
    assert critical["last_error"] == "Got 1 results, configured to fail if != 0"  # dbt's message
    assert critical["last_run_url"] == tl.URL + "d1" and critical["last_run_id"] == "d1"  # dbt's row has no URL: the check's
    warn = by_entity[f"stg_loans:{tl.WARN_DBT}"]
    assert warn["severity"] == "WARN" and warn["owners"] == "team:lending-ops"  # a non-critical test alerts as WARN

    trail.write(tl.dbt_in_dagster_fixed())
    failing = {r["entity"]: r for r in rows_of(trail, "vw_recent_failures")}
    assert set(failing) == {f"stg_loans:{tl.WARN_DBT}"}  # the fixed test disappeared, as one
    assert failing[f"stg_loans:{tl.WARN_DBT}"]["failures_in_streak"] == 2
    events = rows_of(trail, "vw_entity_events", f"WHERE entity LIKE '%{tl.CRITICAL_DBT}' ORDER BY event_ts")
    assert [(e["entity_type"], e["failed"], e["run_id"]) for e in events] == [("dbt_test", True, "d1"), ("dbt_test", False, "d2")]
    nine_days = rows_of(trail, "vw_failures_9d", f"WHERE entity LIKE '%{tl.CRITICAL_DBT}'")
    assert [(r["entity"], r["outcomes"], r["failures"]) for r in nine_days] == [(f"stg_loans:{tl.CRITICAL_DBT}", 2, 1)]


def test_a_dbt_result_before_its_check_is_captured_then_folds(trail):
    """dbt writes its rows during the run, the audit sensor the check after it: in between the
    test shows once under its test name, then once under the alert's entity."""
    dbt_rows = [r for r in tl.dbt_in_dagster_failing() if r.TABLE == "dbt_test_results"]
    check_rows = [r for r in tl.dbt_in_dagster_failing() if r.TABLE == "asset_check_evaluations"]
    trail.write(dbt_rows)
    before = {r["entity"]: r["severity"] for r in rows_of(trail, "vw_recent_failures")}
    assert before == {tl.CRITICAL_DBT: "CRITICAL", tl.WARN_DBT: "ERROR"}  # dbt's own rule without the check
    trail.write(check_rows)
    after = {r["entity"]: r["severity"] for r in rows_of(trail, "vw_recent_failures")}
    assert after == {f"stg_loans:{tl.CRITICAL_DBT}": "CRITICAL", f"stg_loans:{tl.WARN_DBT}": "WARN"}


def test_asset_checks_that_are_not_dbt_tests_stay_checks(trail):
    trail.write(tl.before_recovery() + tl.dbt_in_dagster_failing())
    checks = rows_of(trail, "vw_entity_events", "WHERE entity_type = 'asset_check'")
    assert {r["entity"] for r in checks} == {"loans/fct_loans:row_count_ok"} and len(checks) == 4


def test_a_spool_file_that_cannot_be_parsed_is_set_aside_and_the_rest_replays(trail, tmp_path, caplog):
    with FileLockedByAnotherProcess(tmp_path / "audit.duckdb"):
        trail.write(tl.before_recovery())
    bad = tmp_path / "spool" / "00000000000000000001-garbage.jsonl"  # sorts first
    bad.write_text('{"table": "runs", "record": {"run_id": "no event_ts"}}\n')
    with caplog.at_level(logging.ERROR):
        result = trail.flush()
    assert result.replayed == len(tl.before_recovery())
    assert not bad.exists() and bad.with_name(bad.name + ".unreadable").exists()
    assert any("cannot be parsed" in r.getMessage() and str(bad) in r.getMessage() for r in caplog.records)
    assert count(trail, "runs") == 5


def test_a_session_on_a_locked_file_spools_instead_of_raising(trail, tmp_path):
    with FileLockedByAnotherProcess(tmp_path / "audit.duckdb"):
        with trail.session():
            first = trail.write(tl.before_recovery())
            second = trail.write(tl.recovery())
    assert (first.spooled, second.spooled) == (len(tl.before_recovery()), len(tl.recovery()))
    with trail.session():
        assert trail.flush().replayed == len(tl.before_recovery()) + len(tl.recovery())
    assert count(trail, "runs") == 6


def test_a_nested_session_shares_the_connection(trail):
    with trail.session():
        held = trail.sink._session
        with trail.session():
            trail.write(tl.before_recovery())
            assert trail.sink._session is held
        assert trail.sink._session is held  # the inner exit did not close the outer connection
        trail.write(tl.recovery())
    assert trail.sink._session is None and count(trail, "runs") == 6


def test_a_plain_session_writes_every_call_before_it_returns(trail):
    records = mixed_records(12, "plain-")
    with trail.session() as session:
        first = session.write(records[:6])
        assert first.buffered == 0 and first.inserted == 6 and count(trail, "runs") == 1  # durable at return
        trail.write(records[6:])
    assert session.result.inserted == 12 and session.result.requests == 12  # six tables, twice


def test_write_behind_writes_a_table_when_its_buffer_is_full_and_the_rest_at_the_end(trail):
    records = mixed_records(30, "wb-")  # the six tables in turn: five rows of each
    with trail.session(write_behind_rows=3) as session:
        first = session.write(records[:12])  # two rows of each table: all wait
        assert (first.buffered, first.inserted, first.requests) == (12, None, 0) and count(trail, "runs") == 0
        second = session.write(records[12:15])  # a third run, materialization, check: those three tables go
        assert (second.buffered, second.inserted, second.requests) == (0, 9, 3) and count(trail, "runs") == 3
        assert sorted(session.pending) == ["alert_notifications", "dbt_test_results", "dlt_loads"] and session.pending_rows == 6
        third = trail.write(records[15:30])  # the trail's own write buffers too inside the session
        assert (third.inserted, third.buffered) == (15, 6) and session.pending_rows == 6  # two runs, mats, checks wait
        assert session.write(records[:1]).inserted == 2  # runs full again; the one written already is kept once
    assert count(trail, "runs") == 5 and sum(count(trail, t) for t in ALL_TABLES) == 30
    assert (session.result.attempted, session.result.inserted) == (31, 30) and session.pending_rows == 0
    assert trail.sink._session is None


def test_write_behind_keeps_one_row_when_a_session_writes_a_fact_twice(trail):
    records = mixed_records(6, "twice-")
    with trail.session(write_behind_rows=100) as session:
        session.write(records)
        session.write(records[:2])
    assert sum(count(trail, t) for t in ALL_TABLES) == 6 and session.result.inserted == 6


def test_write_behind_still_writes_the_buffer_when_the_caller_fails(trail):
    records = mixed_records(6, "fail-")
    with pytest.raises(RuntimeError, match="caller bug"), trail.session(write_behind_rows=100) as session:
        session.write(records)
        raise RuntimeError("caller bug")
    assert sum(count(trail, t) for t in ALL_TABLES) == 6 and session.pending_rows == 0


def test_write_behind_with_sink_and_spool_down_reports_held_rows_at_the_end(tmp_path):
    folder = tmp_path / "audit"
    folder.write_text("a file, not a folder")  # neither the DuckDB file nor the spool can be written
    trail = AuditTrail(DuckDBSink(folder / "audit.duckdb"), Spool(folder / "spool"))
    with trail.session(write_behind_rows=100) as session:
        assert session.write(mixed_records(6, "held-")).held == 0  # buffered: nothing known yet
    assert session.result.held == 6 and trail.held_rows == 6  # a caller keeps its cursor on this
    folder.unlink()
    assert trail.flush().replayed == 6


def test_write_behind_rows_must_not_be_negative(trail):
    with pytest.raises(ValueError, match="write_behind_rows"), trail.session(write_behind_rows=-1):
        pass
