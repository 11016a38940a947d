"""The alert state DB broken in every way found in the fault probe: the loss is named and told,
alerting goes on, nothing queued is lost."""

from __future__ import annotations

import pytest

from ..helpers.postgres import postgres_cluster  # noqa: F401 - fixture
from . import state_harness as h


def test_deleted_at_rest_is_announced_naming_the_file(tmp_path):
    result = h.deleted_at_rest(tmp_path)
    assert result.lost == 0
    [message] = result.notes["fallback_messages"]
    assert message.startswith("new: alert state DB ") and "alert_state.db was missing (deleted?)" in message
    assert "forgotten" in message  # says what it means: this recovery will not be announced
    assert result.notes["recovery_announced"] is False


def test_deleted_at_rest_with_an_audit_trail_is_rebuilt_and_the_recovery_announced(tmp_path):
    result = h.deleted_at_rest(tmp_path, audit_trail=True)
    assert (result.lost, result.duplicates) == (0, 0), result
    assert result.notes["recovery_announced"] is True
    [message] = result.notes["fallback_messages"]
    assert "alert_state.db was missing (deleted?)" in message and "1 open incident(s) it held were restored from the audit trail" in message


def test_deleted_while_running_is_copied_back_and_the_recovery_still_announced(tmp_path):
    result = h.deleted_while_running(tmp_path)
    assert (result.lost, result.duplicates) == (0, 0), result
    assert result.notes["file_back"] and result.notes["incident_kept_after_restart"]
    [message] = result.notes["fallback_messages"]
    assert "deleted while the monitoring was running" in message and "copied back" in message


def test_corrupt_file_is_moved_aside_named_and_alerting_goes_on(tmp_path):
    result = h.corrupt(tmp_path)
    assert (result.lost, result.duplicates) == (0, 0), result
    [aside] = result.notes["moved_aside"]
    [message] = result.notes["fallback_messages"]
    assert "was not a readable SQLite database" in message and aside in message


def test_locked_file_fails_the_tick_naming_it_tells_a_human_and_loses_nothing(tmp_path):
    result = h.locked(tmp_path, hold_s=4.0, lock_timeout="1s")
    assert result.notes["failed_ticks"] >= 1
    assert "alert_state.db is locked by another process" in result.notes["error"]
    assert (result.lost, result.duplicates) == (0, 0), result
    transitions = [m.split(":", 1)[0] for m in result.notes["fallback_messages"]]
    assert transitions == ["new", "recovered"]  # told once (not every tick), and told when it is over
    assert result.max_tick_s < 4.0  # a failed tick waits lock_timeout, not the whole outage


@pytest.mark.postgres
def test_postgres_restarted_mid_delivery_loses_nothing(tmp_path, postgres_cluster):  # noqa: F811
    result = h.postgres_restarted_mid_delivery(tmp_path, postgres_cluster)
    assert result.notes["restarts"] == 1
    assert result.lost == 0, result
    assert result.duplicates <= result.duplicate_bound, result


def test_real_sensors_with_a_locked_state_db_tell_a_human_and_catch_up(tmp_path):
    """The alert sensor and the watchdog on a real instance while another process holds the state
    DB: both ticks fail naming the file, one fallback alert goes out (the watchdog, whose
    heartbeats are in that DB, cannot), and the run that finished meanwhile is alerted afterwards."""
    import subprocess
    import sys

    import dagster as dg

    from dagster_monitoring.alerting.state_health import StateStoreError
    from dagster_monitoring.sensors.alerts import build_alert_sensor
    from dagster_monitoring.sensors.watchdog import build_watchdog_sensor

    from ..dagster.jobs import run_loans
    from ..dagster.test_alert_sensor import runtime_for, sent, tick

    home = tmp_path / "dagster_home"
    home.mkdir()
    runtime = runtime_for(tmp_path, state={"path": str(tmp_path / "state.db"), "lock_timeout": "1s"})
    alerts = build_alert_sensor(runtime=runtime)
    watchdog = build_watchdog_sensor(runtime=runtime)
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        cursor, _ = tick(alerts, instance, None)
        holder = subprocess.Popen([sys.executable, "-c", h.HOLD_LOCK, str(tmp_path / "state.db"), "30"], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            run_loans(instance, fail=True)
            for sensor, sensor_cursor in ((alerts, cursor), (watchdog, None)):
                with pytest.raises(StateStoreError, match=r"state\.db is locked by another process"):
                    tick(sensor, instance, sensor_cursor)
            fallback = [a for a in sent(tmp_path) if a["event"]["kind"] == "state_store"]
            assert [a["transition"] for a in fallback] == ["new"]  # once, not once per failing tick
            assert fallback[0]["severity"] == "critical" and "state.db" in fallback[0]["event"]["entity"]
        finally:
            holder.kill()
            holder.wait(10)
        tick(alerts, instance, cursor)  # the cursor did not move: the failed run is read again
    kinds = [(a["event"]["kind"], a["transition"]) for a in sent(tmp_path)]
    assert ("run", "new") in kinds and kinds[-1] == ("state_store", "recovered")
