"""The alert sensor against a real Dagster instance: real runs, Dagster's own sensor context."""

from __future__ import annotations

import json

import dagster as dg

from dagster_monitoring.config import config_from_dict
from dagster_monitoring.runtime import MonitoringRuntime
from dagster_monitoring.sensors.alerts import build_alert_sensor

from .jobs import materialize_loans, run_loans


def runtime_for(tmp_path, **extra):
    config = {
        "dagster_base_url": "http://dagster.local:3000",
        "receivers": [{"type": "file", "name": "file", "path": str(tmp_path / "alerts.jsonl")}],
        "routes": [{"receivers": ["file"]}],
        "policy": {"flap_window": "0s"},
        "state": {"path": str(tmp_path / "state.db")},
        "audit": {"duckdb_path": str(tmp_path / "audit.duckdb"), "spool_dir": str(tmp_path / "spool")},
    }
    config.update(extra)
    return MonitoringRuntime(config_from_dict(config))


def sent(tmp_path):
    path = tmp_path / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def tick(sensor, instance, cursor):
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    result = sensor(context)
    return context.cursor, result


def test_job_failing_three_times_then_succeeding_is_one_new_and_one_recovered(tmp_path, instance):
    runtime = runtime_for(tmp_path)
    sensor = build_alert_sensor(runtime=runtime)
    cursor, first = tick(sensor, instance, None)
    assert "first tick" in first.skip_message
    for _ in range(3):
        assert not run_loans(instance, fail=True).success
        cursor, _ = tick(sensor, instance, cursor)
    assert run_loans(instance, fail=False).success
    cursor, _ = tick(sensor, instance, cursor)

    alerts = sent(tmp_path)
    assert [a["transition"] for a in alerts] == ["new", "recovered"]
    new = alerts[0]
    assert new["event"]["entity"] == "loans_daily" and new["event"]["source"] == "dagster"
    assert new["event"]["details"]["error"] == "ValueError: negative principal on loan 1042"
    assert new["event"]["owners"] == ["team:data-eng"]
    assert new["event"]["links"]["run"].startswith("http://dagster.local:3000/runs/")
    assert new["event"]["links"]["runbook"] == "https://wiki.example/runbooks/loans"
    assert alerts[1]["incident"]["failures"] == 3


def test_history_before_the_first_tick_is_not_replayed(tmp_path, instance):
    run_loans(instance, fail=True)
    runtime = runtime_for(tmp_path)
    sensor = build_alert_sensor(runtime=runtime)
    cursor, _ = tick(sensor, instance, None)
    cursor, _ = tick(sensor, instance, cursor)
    assert sent(tmp_path) == []


def test_a_failed_non_blocking_check_on_a_green_run_alerts_and_recovers(tmp_path, instance):
    runtime = runtime_for(tmp_path)
    sensor = build_alert_sensor(runtime=runtime)
    cursor, _ = tick(sensor, instance, None)
    result = materialize_loans(instance, minimum=100)
    assert result.success  # the run is green ...
    cursor, _ = tick(sensor, instance, cursor)
    alerts = sent(tmp_path)
    assert [(a["event"]["kind"], a["transition"]) for a in alerts] == [("asset_check", "new")]  # ... and still alerts
    event = alerts[0]["event"]
    assert event["entity"] == "fct_loans:row_count_ok" and event["severity"] == "error"
    assert event["details"]["row_count"] == 12 and event["details"]["result"] == "row count 12 vs minimum 100"
    assert event["links"]["asset_check"] == "http://dagster.local:3000/assets/fct_loans?view=checks&checkDetail=row_count_ok"

    materialize_loans(instance, minimum=10)
    cursor, _ = tick(sensor, instance, cursor)
    assert [a["transition"] for a in sent(tmp_path)] == ["new", "recovered"]


def test_decisions_land_in_the_audit_trail(tmp_path, instance):
    runtime = runtime_for(tmp_path)
    sensor = build_alert_sensor(runtime=runtime)
    cursor, _ = tick(sensor, instance, None)
    run_loans(instance, fail=True)
    tick(sensor, instance, cursor)
    rows = runtime.trail.sink.query("SELECT record_type, transition, entity FROM dagster_audit.alert_notifications ORDER BY record_type")[1]
    assert ("decision", "new", "loans_daily") in rows and ("delivery", "new", "loans_daily") in rows
    assert runtime.trail.sink.query("SELECT entity FROM dagster_audit.vw_open_alerts")[1] == [("loans_daily",)]
