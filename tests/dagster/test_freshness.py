"""Freshness checks: thresholds as a table, and a stale asset alerting and recovering for real."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest

from dagster_monitoring.checks.freshness import build_freshness_checks, evaluate_freshness
from dagster_monitoring.sensors.alerts import build_alert_sensor

from .jobs import fct_loans
from .test_alert_sensor import runtime_for, sent, tick

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)
WARN, FAIL = timedelta(hours=26), timedelta(hours=30)


@pytest.mark.parametrize(
    "age, passed, severity",
    [
        (timedelta(hours=1), True, None),
        (timedelta(hours=26), True, None),
        (timedelta(hours=27), False, dg.AssetCheckSeverity.WARN),
        (timedelta(hours=31), False, dg.AssetCheckSeverity.ERROR),
        (None, False, dg.AssetCheckSeverity.ERROR),
    ],
)
def test_thresholds(age, passed, severity):
    got_passed, got_severity, description = evaluate_freshness(None if age is None else NOW - age, NOW, WARN, FAIL)
    assert got_passed is passed
    if severity is not None:
        assert got_severity == severity
    assert description


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="warn_after <= fail_after"):
        build_freshness_checks([fct_loans], warn_after="2h", fail_after="1h")
    with pytest.raises(ValueError, match="at least one asset"):
        build_freshness_checks([], warn_after="1h", fail_after="2h")


def test_checks_appear_on_the_asset_and_a_stale_asset_alerts_then_recovers(tmp_path, instance):
    freshness = build_freshness_checks([fct_loans], warn_after="1h", fail_after="2h", cron_schedule="*/5 * * * *")
    defs = dg.Definitions.merge(dg.Definitions(assets=[fct_loans]), freshness)
    spec = next(iter(freshness.asset_checks)).check_specs
    assert [(s.asset_key, s.name, s.blocking) for s in spec] == [(dg.AssetKey("fct_loans"), "freshness", False)]
    assert [s.cron_schedule for s in freshness.schedules] == ["*/5 * * * *"]

    runtime = runtime_for(tmp_path)
    sensor = build_alert_sensor(runtime=runtime)
    cursor, _ = tick(sensor, instance, None)
    job = defs.resolve_job_def("dagster_monitoring_freshness_job")
    assert job.execute_in_process(instance=instance).success  # fct_loans never materialized: stale
    cursor, _ = tick(sensor, instance, cursor)
    [alert] = sent(tmp_path)
    assert alert["event"]["kind"] == "freshness" and alert["event"]["entity"] == "fct_loans:freshness"
    assert alert["event"]["severity"] == "error" and "never materialized" in alert["event"]["summary"]
    assert alert["event"]["next_action"].startswith("Find why fct_loans stopped updating")

    assert dg.materialize([fct_loans], instance=instance).success
    job.execute_in_process(instance=instance)
    tick(sensor, instance, cursor)
    assert [a["transition"] for a in sent(tmp_path)] == ["new", "recovered"]
