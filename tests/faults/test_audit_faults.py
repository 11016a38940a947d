"""Audit-sink outages, real ones: nothing written during the outage may be lost or doubled, and
the trail never raises. The scenarios live in ``audit_harness`` (the benchmark prints them too);
each test is bounded by an alarm as well as by the helpers' own timeouts."""

from __future__ import annotations

import logging
import os
import signal

import dagster as dg
import pytest

from dagster_monitoring.audit.alert_records import decision_records
from dagster_monitoring.audit.sinks.base import AuditSinkError
from dagster_monitoring.audit.sinks.duckdb import DuckDBSink
from dagster_monitoring.audit.spool import Spool
from dagster_monitoring.audit.trail import AuditTrail
from dagster_monitoring.sensors.audit_capture import build_audit_sensor

from ..dagster.jobs import run_loans
from ..dagster.test_alert_sensor import runtime_for, tick
from ..helpers.bigquery import bq_emulator_factory  # noqa: F401
from ..helpers.factories import make_event, make_router
from . import audit_harness as h

ROWS, CALLS = 1200, 6


@pytest.fixture(autouse=True)
def time_bound(request):
    """Fail a test that runs past its bound instead of hanging the suite."""
    seconds = 240 if "bigquery" in request.node.name else 120

    def expired(*_):
        raise TimeoutError(f"{request.node.name} ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def assert_nothing_lost_or_doubled(result, rows=ROWS):
    assert result["trail_raised"] == 0, result.get("during")
    assert result["rows_written"] == rows
    assert (result["rows_lost"], result["rows_doubled"]) == (0, 0), result


def test_file_locked_by_another_process_spools_every_call_and_replays_once(tmp_path):
    result = h.duckdb_locked(tmp_path, ROWS, CALLS)
    assert [d["spooled"] for d in result["during"]] == [ROWS // CALLS] * CALLS
    assert result["spooled_files"] == CALLS and result["left_in_spool"] == 0
    assert any("kept in" in m and str(tmp_path / "locked" / "spool") in m for m in result["logs"])
    assert_nothing_lost_or_doubled(result)


def test_a_write_behind_session_on_a_locked_file_spools_each_flush_whole_and_replays_once(tmp_path):
    result = h.duckdb_locked_write_behind(tmp_path, ROWS, CALLS)
    during = result["during"]
    assert during[0] == {"buffered": ROWS // CALLS, "spooled": 0, "held": 0}  # nothing written yet
    assert any(d["spooled"] for d in during)  # a table's buffer filled mid-session: refused, spooled
    assert result["session"] == {"spooled": ROWS, "held": 0, "requests": 0}  # every row, the rest at the end
    assert result["spooled_files"] >= 2 and result["left_in_spool"] == 0
    assert_nothing_lost_or_doubled(result)


@pytest.mark.skipif(os.geteuid() != 0, reason="switches to the unprivileged user nobody, which needs root")
def test_no_permission_on_the_folder_holds_rows_in_memory_until_it_is_writable(tmp_path):
    result = h.duckdb_permission_denied(rows=ROWS, calls=CALLS)
    # the spool is in the same folder, so every call's rows wait in the writer's memory
    assert [d["held"] for d in result["during"]] == [ROWS // CALLS] * CALLS
    assert result["flushed"]["replayed"] == ROWS and result["flushed"]["held"] == 0
    assert any("Permission denied" in m and f"spool folder {result['folder']}/spool" in m for m in result["logs"])
    assert result["file_uid"] == h.NOBODY  # really written by the unprivileged user
    assert_nothing_lost_or_doubled(result)


def test_a_file_where_the_folder_should_be_holds_rows_in_memory_then_writes_them(tmp_path):
    result = h.duckdb_folder_is_a_file(tmp_path, ROWS, CALLS)
    assert result["held_during"] == ROWS and result["held_after"] == 0
    assert all(d["spooled"] == 0 and d["held"] == ROWS // CALLS for d in result["during"])
    assert any(f"spool folder {tmp_path / 'blocked' / 'audit' / 'spool'} is not writable" in m for m in result["logs"])
    assert_nothing_lost_or_doubled(result)


def test_the_folder_deleted_under_a_running_trail_is_created_again_with_its_schema(tmp_path):
    result = h.duckdb_folder_removed(tmp_path, ROWS, CALLS)
    assert all(d["spooled"] == 0 and d["held"] == 0 for d in result["during"])
    assert_nothing_lost_or_doubled(result)


def test_bigquery_emulator_stopped_mid_way_then_started_again(bq_emulator_factory, tmp_path):  # noqa: F811
    emulator = bq_emulator_factory.start(persistent=True)
    result = h.bigquery_emulator_stopped(emulator, tmp_path, rows=600, calls=CALLS)
    assert [d["spooled"] for d in result["during"]] == [0] + [100] * (CALLS - 1)
    assert result["spooled_files"] == CALLS - 1 and result["left_in_spool"] == 0
    assert result["view_entity_rows"] == result["expected_entity_rows"] > 0  # what dashboards read: once each
    assert_nothing_lost_or_doubled(result, rows=600)


def test_bigquery_a_table_failing_mid_batch_spools_the_whole_batch_and_the_views_count_once(bq_emulator_factory, tmp_path):  # noqa: F811
    """A partial failure, for real: the first tables of a batch go in, then one answers HTTP 500
    (a text column declared INT64). The whole batch is spooled; its replay re-sends the tables that
    had gone in, and the views count every event once."""
    from google.cloud import bigquery

    from dagster_monitoring.audit import schema
    from dagster_monitoring.audit.sinks.bigquery import BigQuerySink

    emulator = bq_emulator_factory.start()
    sink = BigQuerySink("faults_partial", project=emulator.project, api_endpoint=emulator.endpoint, retry_deadline=1, timeout=10)
    sink.init()
    sink.client.delete_table(sink.table_id("dlt_loads"))  # mixed_records writes it fifth of six
    wrong = [bigquery.SchemaField(c.name, "INT64" if c.name == "pipeline_name" else c.bq_type) for c in schema.table("dlt_loads").columns]
    sink.client.create_table(bigquery.Table(sink.table_id("dlt_loads"), schema=wrong))
    trail = AuditTrail(sink, Spool(tmp_path / "spool"))
    records = h.mixed_records(60, "partial-")
    assert trail.write(records).spooled == 60
    assert sink.query(f"SELECT COUNT(*) FROM `{sink.table_id('runs')}`")[1] == [(10,)]  # went in before the failure

    sink.client.delete_table(sink.table_id("dlt_loads"))
    sink.init()  # the table as the DDL declares it
    assert trail.flush().replayed == 60 and trail.spool.pending_files() == 0
    counts, raw, entity_rows = h.bigquery_counts(sink)
    assert h.tally(records, counts) == (0, 0)
    assert raw == 60 + 40  # runs, materializations, checks and dbt results went in twice ...
    assert entity_rows == h.expected_entity_events(records)  # ... and the views show each once
    sink.close()


def test_bigquery_rows_rejected_in_a_200_response_are_spooled_and_the_error_is_redacted(tmp_path, caplog):
    """insertAll can answer 200 with ``insertErrors``; the emulator never does, so a local HTTP
    server plays that one response to the real client."""
    from dagster_monitoring.alerting.redact import register_secret
    from dagster_monitoring.audit.sinks.bigquery import BigQuerySink

    from ..helpers.http_server import LocalHTTPServer, Response

    secret = "tok-9f8e7d6c5b4a"
    register_secret(secret)
    rejected = {"insertErrors": [{"index": 0, "errors": [{"reason": "invalid", "message": f"bad value near {secret}"}]}]}
    with LocalHTTPServer(default=Response(200, rejected)) as server:
        sink = BigQuerySink("d", project="p", api_endpoint=server.base_url, retry_deadline=1, timeout=5)
        trail = AuditTrail(sink, Spool(tmp_path / "spool"))
        records = h.mixed_records(6, "rejected-")
        with pytest.raises(AuditSinkError, match="rejected rows of runs") as raised:
            sink.write(records)
        with caplog.at_level(logging.WARNING):
            result = trail.write(records)
        sink.close()
    assert result.spooled == 6 and trail.spool.pending_rows() == 6
    assert secret not in str(raised.value) and "***" in str(raised.value)
    assert caplog.records and all(secret not in r.getMessage() for r in caplog.records)


def test_held_rows_are_bounded_and_the_oldest_go_first(tmp_path, caplog):
    folder = tmp_path / "audit"
    folder.write_text("a file, not a folder")
    trail = AuditTrail(DuckDBSink(folder / "audit.duckdb"), Spool(folder / "spool"), max_held_rows=300)
    records = h.mixed_records(600, "bound-")
    with caplog.at_level(logging.ERROR):
        results = [trail.write(records[i : i + 200]) for i in range(0, 600, 200)]
    assert [(r.held, r.dropped) for r in results] == [(200, 0), (200, 100), (200, 200)]
    assert trail.held_rows == 300
    assert [r.getMessage().split(": ")[1] for r in caplog.records if "oldest were dropped" in r.getMessage()] == [
        "the 100 oldest were dropped (sink and spool folder " + str(folder / "spool") + " both unavailable)",
        "the 200 oldest were dropped (sink and spool folder " + str(folder / "spool") + " both unavailable)",
    ]
    folder.unlink()
    assert trail.flush().replayed == 300
    counts = h.duckdb_counts(folder / "audit.duckdb")
    assert h.tally(records[300:], counts) == (0, 0)  # the newest 300 are all there ...
    assert h.tally(records[:300], counts)[0] == 300  # ... and the dropped oldest are not


def test_router_decisions_survive_an_outage_of_sink_and_spool(tmp_path, clock):
    """The router's audit hook swallows exceptions, so a raise would have lost these rows."""
    folder = tmp_path / "audit"
    folder.write_text("a file, not a folder")
    trail = AuditTrail(DuckDBSink(folder / "audit.duckdb"), Spool(folder / "spool"))
    router = make_router(
        {
            "receivers": [{"type": "file", "name": "file", "path": str(tmp_path / "sent.jsonl")}],
            "routes": [{"receivers": ["file"]}],
            "policy": {"flap_window": "0s"},
            "state": {"path": str(tmp_path / "state.db")},
        },
        clock,
    )
    results = []
    router.on_decision = lambda ds: results.append(trail.write(decision_records(ds)))
    router.process([make_event("loans_daily", at=clock.now, run_id="r1")])
    assert results and results[0].held == 1
    folder.unlink()
    trail.flush()
    rows = trail.sink.query("SELECT record_type, fingerprint, observation FROM dagster_audit.alert_notifications")[1]
    assert rows == [("decision", "dagster:run:loans_daily", "opened")]


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst


def test_audit_sensor_keeps_its_cursor_while_rows_are_only_in_memory(tmp_path, instance):
    folder = tmp_path / "audit"
    folder.write_text("a file, not a folder")
    runtime = runtime_for(tmp_path, audit={"duckdb_path": str(folder / "audit.duckdb"), "spool_dir": str(folder / "spool")})
    sensor = build_audit_sensor(runtime=runtime)
    run_loans(instance, fail=True)
    cursor, result = tick(sensor, instance, None)
    assert "held in memory" in result.skip_message and cursor is None  # not durable: read again next tick

    folder.unlink()  # the outage ends
    cursor, result = tick(sensor, instance, cursor)
    assert cursor is not None and "held in memory" not in result.skip_message
    runs = runtime.trail.sink.query("SELECT status, count(*) FROM dagster_audit.runs GROUP BY status ORDER BY status")[1]
    assert runs == [("FAILURE", 1), ("STARTED", 1)]  # read twice, written once
