"""The audit-capture and watchdog sensors against a real instance."""

from __future__ import annotations


from dagster_monitoring.sensors.alerts import build_alert_sensor
from dagster_monitoring.sensors.audit_capture import build_audit_sensor
from dagster_monitoring.sensors.watchdog import build_watchdog_sensor

from ..faults.audit_harness import mixed_records
from .jobs import materialize_loans, run_loans
from .test_alert_sensor import runtime_for, sent, tick


def test_audit_sensor_writes_runs_materializations_and_checks(tmp_path, instance):
    runtime = runtime_for(tmp_path)
    sensor = build_audit_sensor(runtime=runtime)
    run_loans(instance, fail=True)
    run_loans(instance, fail=False)
    materialize_loans(instance, minimum=100)
    cursor, result = tick(sensor, instance, None)  # backfills history from the beginning
    assert "0 spooled" not in result.skip_message
    sink = runtime.trail.sink
    runs = sink.query("SELECT job_name, status, error_class, error_message, duration_s IS NOT NULL FROM dagster_audit.runs ORDER BY event_ts")[1]
    assert [(r[0], r[1]) for r in runs if r[0] == "loans_daily"] == [
        ("loans_daily", "STARTED"), ("loans_daily", "FAILURE"), ("loans_daily", "STARTED"), ("loans_daily", "SUCCESS")]
    failure = next(r for r in runs if r[1] == "FAILURE")
    assert failure[2:] == ("ValueError", "negative principal on loan 1042", True)
    assert sink.query("SELECT asset_key, row_count FROM dagster_audit.asset_materializations")[1] == [("fct_loans", None)]
    checks = sink.query("SELECT asset_key, check_name, passed, severity, blocking FROM dagster_audit.asset_check_evaluations")[1]
    assert checks == [("fct_loans", "row_count_ok", False, "ERROR", False)]
    recent = {r[1] for r in sink.query("SELECT * FROM dagster_audit.vw_recent_failures")[1]}
    assert recent == {"fct_loans:row_count_ok"}  # loans_daily failed, then succeeded

    opened = []
    real_open = sink._open
    sink._open = lambda *args, **kwargs: (opened.append(args), real_open(*args, **kwargs))[1]
    again_cursor, again = tick(sensor, instance, cursor)  # nothing new: nothing written twice
    assert again.skip_message.startswith("0 run status change(s)")
    assert opened == []  # an idle tick does not open (and checkpoint) the DuckDB file
    sink._open = real_open
    assert sink.query("SELECT count(*) FROM dagster_audit.runs")[1] == [(6,)]
    # rows an outage left in the spool are written by the next tick, even one with nothing new
    left = mixed_records(12, prefix="outage-")
    runtime.trail.spool.put(left)
    _, replayed = tick(sensor, instance, again_cursor)
    assert "12 replayed from the spool" in replayed.skip_message and runtime.trail.spool.pending_files() == 0
    assert sink.query("SELECT count(*) FROM dagster_audit.runs")[1] == [(6 + sum(r.TABLE == "runs" for r in left),)]


def test_a_sensor_forced_to_raise_makes_the_watchdog_alert_and_then_recover(tmp_path, instance):
    runtime = runtime_for(tmp_path)

    class Broken(type(runtime.translator)):
        def to_run_event(self, *args, **kwargs):
            raise RuntimeError("translator bug")

    good_translator = runtime.translator
    runtime.translator = Broken(good_translator.settings)
    alerts = build_alert_sensor(runtime=runtime, minimum_interval_seconds=30)
    watchdog = build_watchdog_sensor(runtime=runtime)
    cursor, _ = tick(alerts, instance, None)
    run_loans(instance, fail=True)
    try:
        tick(alerts, instance, cursor)
    except Exception as exc:  # the sensor really raised (Dagster would show a failed tick)
        assert "translator bug" in str(exc)
    else:
        raise AssertionError("the sensor should have raised")
    tick(watchdog, instance, None)
    [alert] = sent(tmp_path)
    assert alert["transition"] == "new" and alert["event"]["kind"] == "heartbeat"
    assert alert["event"]["entity"] == "dagster_monitoring_alerts"
    assert "RuntimeError: translator bug" in alert["event"]["details"]["Error"]
    assert alert["event"]["next_action"].startswith("Run failures and asset-check results are not alerted")

    runtime.translator = good_translator  # fixed: the next tick works, the watchdog announces it
    tick(alerts, instance, cursor)
    tick(watchdog, instance, None)
    assert [a["transition"] for a in sent(tmp_path) if a["event"]["kind"] == "heartbeat"] == ["new", "recovered"]
    # the failed run was not lost while the sensor was broken: its cursor had not moved
    assert [a["event"]["entity"] for a in sent(tmp_path) if a["event"]["kind"] == "run"] == ["loans_daily"]


def test_watchdog_alerts_on_a_silent_sensor(tmp_path, instance):
    from datetime import datetime, timedelta, timezone

    runtime = runtime_for(tmp_path, default_owner="team:data-platform")
    build_audit_sensor(runtime=runtime)  # built with the watchdog, as build_monitoring_defs does
    runtime.router.store.record_heartbeat("dagster_monitoring_audit", datetime.now(timezone.utc) - timedelta(minutes=47), 30)
    tick(build_watchdog_sensor(runtime=runtime), instance, None)
    [alert] = sent(tmp_path)
    event = alert["event"]
    assert event["summary"] == "Monitoring sensor dagster_monitoring_audit stopped ticking 47m ago"
    assert event["details"]["Expected every"] == "30s"
    assert event["owners"] == ["team:data-platform"]  # default_owner: someone owns the monitoring itself
    assert event["links"]["sensor"] == "http://dagster.local:3000/automation"  # no code location in a test context
    # true for the audit sensor: its work is not lost, only delayed
    assert "not written to the audit trail" in event["next_action"] and "not alerted" not in event["next_action"]
