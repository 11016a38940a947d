"""Schedule and sensor tick failures of a user's code location, recorded by Dagster's own daemon
functions, alert through the ticks sensor and recover once on the next good tick."""

from __future__ import annotations

import time

import dagster as dg

from dagster_monitoring.sensors.ticks import build_tick_failure_sensor

from ..dagster.test_alert_sensor import runtime_for, sent
from .cards import assert_card


def _tick(sensor, instance):
    return sensor(dg.build_sensor_context(instance=instance))


def test_a_raising_user_sensor_alerts_after_two_failed_ticks_and_recovers_once(tmp_path, daemon):
    instance = daemon.context.instance
    runtime = runtime_for(tmp_path, default_owner="team:platform", instance={"tick_failures": {"min_failures": 2}})
    ticks = build_tick_failure_sensor(runtime=runtime)

    daemon.break_code(True)
    daemon.sensors()  # first failed tick: under min_failures, nothing yet
    result = _tick(ticks, instance)
    assert "failing: none" in result.skip_message
    assert sent(tmp_path) == []

    time.sleep(1.1)  # the user sensor's minimum interval
    daemon.sensors()
    _tick(ticks, instance)
    _tick(ticks, instance)  # the same ticks read again: still one alert
    [alert] = sent(tmp_path)
    event = alert["event"]
    assert alert["transition"] == "new"
    assert (event["source"], event["kind"], event["entity"]) == ("dagster", "tick", "partner/partner_files")
    assert event["summary"] == "The sensor partner_files in partner is failing: 2 failed tick(s) in a row"
    assert event["details"]["Error"] == "ConnectionError: SFTP login failed: password=*** refused by sftp.partner.example"
    assert "hunter2" not in str(alert)
    assert event["details"]["Failed ticks in a row"] == "2" and event["details"]["Code location"] == "partner"
    assert event["links"]["sensor"] == "http://dagster.local:3000/locations/partner/sensors/partner_files"
    assert event["owners"] == ["team:platform"] and event["severity"] == "error"
    assert event["next_action"].startswith("Open the sensor's page (Automation > partner_files)")
    assert_card(
        alert,
        texts=("partner/partner_files", "SFTP login failed", "Failed ticks in a row", "Open the sensor's page"),
        buttons={"Open sensor": "http://dagster.local:3000/locations/partner/sensors/partner_files"},
    )

    daemon.break_code(False)
    time.sleep(1.1)
    daemon.sensors()  # a good (skipped) tick
    _tick(ticks, instance)
    _tick(ticks, instance)
    assert [a["transition"] for a in sent(tmp_path)] == ["new", "recovered"]


def test_a_failing_schedule_tick_alerts_and_a_skipped_tick_recovers(tmp_path, daemon):
    instance = daemon.context.instance
    runtime = runtime_for(tmp_path)
    ticks = build_tick_failure_sensor(runtime=runtime)
    daemon.break_code(True)
    daemon.scheduler()
    _tick(ticks, instance)
    [alert] = sent(tmp_path)
    event = alert["event"]
    assert event["entity"] == "partner/nightly_schedule" and event["tags"]["dagster/instigator_type"] == "schedule"
    assert event["details"]["Error"] == "KeyError: 'partition_date'"
    assert event["links"]["schedule"] == "http://dagster.local:3000/locations/partner/schedules/nightly_schedule"
    assert event["summary"].startswith("The schedule nightly_schedule in partner is failing")
    assert_card(
        alert,
        texts=("KeyError: 'partition_date'", "Failing since"),
        buttons={"Open schedule": "http://dagster.local:3000/locations/partner/schedules/nightly_schedule"},
    )

    daemon.break_code(False)
    daemon.scheduler()
    _tick(ticks, instance)
    daemon.scheduler()
    _tick(ticks, instance)
    assert [(a["transition"], a["event"]["entity"]) for a in sent(tmp_path)] == [
        ("new", "partner/nightly_schedule"),
        ("recovered", "partner/nightly_schedule"),
    ]


def test_stopping_a_failing_sensor_resolves_its_alert(tmp_path, daemon):
    instance = daemon.context.instance
    runtime = runtime_for(tmp_path)
    ticks = build_tick_failure_sensor(runtime=runtime)
    daemon.break_code(True)
    daemon.sensors()
    _tick(ticks, instance)
    [state] = [s for s in instance.all_instigator_state() if s.instigator_name == "partner_files"]
    instance.stop_sensor(state.instigator_origin_id, state.selector_id, None)  # the user turns it off instead of fixing it
    _tick(ticks, instance)
    _tick(ticks, instance)
    alerts = [(a["transition"], a["event"]["entity"]) for a in sent(tmp_path) if a["event"]["entity"] == "partner/partner_files"]
    assert alerts == [("new", "partner/partner_files"), ("recovered", "partner/partner_files")]
