"""``dagster-monitoring watch``: a stopped daemon, a code location that fails to load, asset
health changes, against a real instance in DAGSTER_HOME and a real workspace.yaml."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import yaml
from click.testing import CliRunner
from dagster._daemon.types import DaemonHeartbeat

from dagster_monitoring.cli import main
from dagster_monitoring.config import load_config
from dagster_monitoring.watch import Watcher, run_watch

from . import health_code
from .cards import assert_card

HERE = Path(__file__).parent


def sent(tmp_path):
    path = tmp_path / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def watch_once(tmp_path, *extra):
    result = CliRunner().invoke(main, ["watch", "--config", str(tmp_path / "monitoring.yaml"), "--once", *extra])
    assert result.exit_code == 0, result.output
    return result.output


def beat(instance, daemon_type, age):
    at = datetime.now(timezone.utc) - age
    instance.add_daemon_heartbeat(DaemonHeartbeat(at.timestamp(), daemon_type, "daemon-1", None))


def test_a_stopped_daemon_alerts_once_and_a_fresh_heartbeat_recovers_once(tmp_path, home):
    with dg.DagsterInstance.get() as instance:
        required = instance.get_required_daemon_types()
        assert "SENSOR" in required and "SCHEDULER" in required
        for daemon_type in required:
            beat(instance, daemon_type, timedelta(seconds=10))
        out = watch_once(tmp_path)
        assert f"read {len(required) + 1} daemon; failing: none; 0 notification(s)" in out  # each, and the process

        beat(instance, "SCHEDULER", timedelta(minutes=12))  # the daemon died 12 minutes ago
        out = watch_once(tmp_path)
        assert "failing: daemon:SCHEDULER; 1 notification(s)" in out
        watch_once(tmp_path)  # still down: not announced again
        [alert] = sent(tmp_path)
        event = alert["event"]
        assert alert["transition"] == "new" and event["kind"] == "daemon" and event["entity"] == "SCHEDULER"
        assert event["severity"] == "critical" and event["owners"] == ["team:platform"]
        assert event["summary"] == "Dagster daemon SCHEDULER is down: no heartbeat for 12m"
        assert event["details"]["Tolerated"] == "3m" and event["links"] == {"daemons": "http://dagster.local:3000/health"}
        assert "no schedules or sensors tick" in event["next_action"]
        assert_card(
            alert, texts=("SCHEDULER is down", "Last heartbeat", "12m ago"), buttons={"Daemons": "http://dagster.local:3000/health"}
        )

        beat(instance, "SCHEDULER", timedelta(seconds=1))  # restarted
        watch_once(tmp_path)
        watch_once(tmp_path)
        assert [a["transition"] for a in sent(tmp_path)] == ["new", "recovered"]


def test_silent_monitoring_sensors_alert_unless_the_sensor_daemon_explains_it(tmp_path, home):
    config = load_config(tmp_path / "monitoring.yaml")
    with dg.DagsterInstance.get() as instance:
        watcher = Watcher(config, instance)
        store = watcher.runtime.router.store
        store.record_heartbeat("dagster_monitoring_ticks", datetime.now(timezone.utc) - timedelta(minutes=30), 60)
        for daemon_type in instance.get_required_daemon_types():
            beat(instance, daemon_type, timedelta(minutes=30))  # the whole daemon is down
        report = watcher.check()
        [down] = report.events  # the sensor's silence is the daemon's: one alert
        assert (down.kind, down.entity, down.is_failing) == ("daemon", "dagster-daemon", True)

        for daemon_type in instance.get_required_daemon_types():
            beat(instance, daemon_type, timedelta(seconds=1))  # the daemon is back, the sensor still silent
        report = watcher.check()
        [heartbeat] = [e for e in report.events if e.kind == "heartbeat"]
        assert heartbeat.is_failing and heartbeat.entity == "dagster_monitoring_ticks"
        assert heartbeat.next_action.startswith("Failing schedule and sensor ticks are not alerted")


def test_a_code_location_that_fails_to_load_alerts_and_recovers_once_fixed(tmp_path, home):
    code = tmp_path / "code"
    code.mkdir()
    shutil.copy(HERE / "health_code.py", code / "lending.py")
    broken = code / "partner.py"
    broken.write_text('raise RuntimeError("cannot reach postgresql://etl:hunter2@db.internal/partner")\n')
    workspace = code / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {"python_file": {"relative_path": "lending.py", "location_name": "lending"}},
                    {"python_file": {"relative_path": "partner.py", "location_name": "partner"}},
                ]
            }
        )
    )
    with dg.DagsterInstance.get() as instance:
        for daemon_type in instance.get_required_daemon_types():
            beat(instance, daemon_type, timedelta(seconds=1))
    out = watch_once(tmp_path, "--workspace", str(workspace))
    assert "2 code_location" in out and "failing: code_location:partner; 1 notification(s)" in out
    [alert] = sent(tmp_path)
    event = alert["event"]
    assert (event["kind"], event["entity"], alert["transition"]) == ("code_location", "partner", "new")
    assert event["details"]["Error"] == "RuntimeError: cannot reach postgresql://etl:***@db.internal/partner"
    assert "hunter2" not in json.dumps(alert)
    assert event["links"] == {"code_locations": "http://dagster.local:3000/locations"}
    assert_card(
        alert,
        texts=("Code location partner failed to load", "RuntimeError: cannot reach postgresql://etl:", "@db.internal/partner"),
        buttons={"Code locations": "http://dagster.local:3000/locations"},
    )

    broken.write_text("import dagster as dg\n\ndefs = dg.Definitions()\n")  # fixed and redeployed
    watch_once(tmp_path, "--workspace", str(workspace))
    watch_once(tmp_path, "--workspace", str(workspace))
    assert [(a["transition"], a["event"]["entity"]) for a in sent(tmp_path)] == [("new", "partner"), ("recovered", "partner")]


def _check(instance, warn_fails, error_fails, asset_fails=False):
    return dg.materialize(
        [health_code.loan_book, health_code.currency_known, health_code.principal_positive],
        instance=instance,
        raise_on_error=False,
        run_config={
            "ops": {
                "loan_book": {"config": {"fail": asset_fails}},
                "loan_book_currency_known": {"config": {"fail": warn_fails}},
                "loan_book_principal_positive": {"config": {"fail": error_fails}},
            }
        },
    )


def test_asset_health_changes_are_announced_once_each(tmp_path, home):
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump({"load_from": [{"python_file": {"relative_path": str(HERE / "health_code.py"), "location_name": "lending"}}]})
    )
    config = load_config(tmp_path / "monitoring.yaml")
    with dg.DagsterInstance.get() as instance, Watcher(config, instance, workspace=str(workspace), reload=False) as watcher:
        for daemon_type in instance.get_required_daemon_types():
            beat(instance, daemon_type, timedelta(seconds=1))

        def health():
            report = watcher.check()
            [event] = [e for e in report.events if e.kind == "asset_health"]
            return event

        assert watcher.check().events and not [e for e in watcher.check().events if e.kind == "asset_health"]  # never materialized: unknown
        steps = [  # WARN check fails, ERROR check fails, the asset itself fails -> health
            (False, False, False, "HEALTHY"),
            (True, False, False, "WARNING"),
            (True, False, False, "WARNING"),
            (True, True, False, "DEGRADED"),
            (False, False, False, "HEALTHY"),
            (False, False, False, "HEALTHY"),
            (False, False, True, "DEGRADED"),  # the latest materialization attempt failed
            (False, False, False, "HEALTHY"),
        ]
        for warn_fails, error_fails, asset_fails, expected in steps:
            run = _check(instance, warn_fails, error_fails, asset_fails)
            event = health()
            assert event.details["Health"] == expected
            if asset_fails:
                failed_run, failed_event = run.run_id, event
    alerts = [(a["transition"], a["severity"], a["event"]["details"]["Health"]) for a in sent(tmp_path)]
    assert alerts == [
        ("new", "warn", "WARNING"),
        ("escalated", "error", "DEGRADED"),
        ("recovered", "error", "DEGRADED"),
        ("new", "error", "DEGRADED"),
        ("recovered", "error", "DEGRADED"),
    ]
    # its checks did not run (their run failed): Dagster counts them as failed too
    assert failed_event.summary == "Asset loan_book is degraded (checks, materialization)"
    assert failed_event.details["Materialization"] == f"degraded (latest attempt failed in run {failed_run})"
    assert failed_event.links["run"] == f"http://dagster.local:3000/runs/{failed_run}" and failed_event.run_id == failed_run
    degraded = sent(tmp_path)[1]["event"]
    assert degraded["entity"] == "loan_book" and degraded["owners"] == ["team:credit"]
    assert degraded["summary"] == "Asset loan_book is degraded (checks)"
    assert degraded["details"]["Checks"] == "degraded (1 failed, 1 warning of 2 checks)"
    assert degraded["links"]["asset"] == "http://dagster.local:3000/assets/loan_book"
    assert_card(
        sent(tmp_path)[1],
        texts=("Asset loan_book is degraded (checks)", "1 failed, 1 warning of 2 checks", "team:credit"),
        buttons={"Asset": "http://dagster.local:3000/assets/loan_book"},
    )


def test_the_loop_checks_every_interval_and_the_cli_needs_dagster_home(tmp_path, home, monkeypatch):
    lines: list[str] = []
    config = load_config(tmp_path / "monitoring.yaml")
    run_watch(config, workspace=None, once=False, interval=1, echo=lines.append, iterations=2)
    assert len(lines) == 2 and all(line.startswith("watch: read ") for line in lines)
    assert "failing: daemon:" in lines[0]  # nothing ever ran the daemon in this home

    monkeypatch.delenv("DAGSTER_HOME")
    result = CliRunner().invoke(main, ["watch", "--config", str(tmp_path / "monitoring.yaml"), "--once"])
    assert result.exit_code == 2 and "DAGSTER_HOME is not set" in result.output
