"""A real instance and a user's code location (tests/instance/user_code.py) loaded the way the
daemon loads it, so schedule and sensor ticks are recorded by Dagster's own daemon functions."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget, create_test_daemon_workspace_context
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._daemon.sensor import execute_sensor_iteration
from dagster._scheduler.scheduler import launch_scheduled_runs

USER_CODE = Path(__file__).with_name("user_code.py")
LOG = logging.getLogger("dagster-monitoring-tests")


class Daemon:
    """One iteration of the sensor daemon and of the scheduler, in process."""

    def __init__(self, context, flag: Path) -> None:
        self.context = context
        self.flag = flag
        self.schedule_minutes = 0

    def break_code(self, broken: bool) -> None:
        if broken:
            self.flag.touch()
        else:
            self.flag.unlink(missing_ok=True)

    def sensors(self) -> None:
        list(execute_sensor_iteration(self.context, LOG, None, None))

    def scheduler(self) -> None:
        """The scheduler one cron minute further on (the schedule runs every minute). Its first
        iteration only records when the schedule started, as the daemon's does."""
        if self.schedule_minutes == 0:
            list(launch_scheduled_runs(self.context, LOG, datetime.now(timezone.utc), {}))
        self.schedule_minutes += 1
        end = datetime.now(timezone.utc) + timedelta(minutes=self.schedule_minutes)
        list(launch_scheduled_runs(self.context, LOG, end, {}))


@pytest.fixture
def daemon(tmp_path, monkeypatch):
    flag = tmp_path / "broken"
    monkeypatch.setenv("DM_TEST_BREAK", str(flag))
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        target = InProcessTestWorkspaceLoadTarget(
            InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=str(USER_CODE), attribute="defs"), location_name="partner")
        )
        with create_test_daemon_workspace_context(target, instance) as context:
            yield Daemon(context, flag)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty DAGSTER_HOME (the instance watch reads) and a monitoring.yaml alerting to alerts.jsonl."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    config = {
        "dagster_base_url": "http://dagster.local:3000",
        "default_owner": "team:platform",
        "receivers": [{"type": "file", "name": "file", "path": str(tmp_path / "alerts.jsonl")}],
        "routes": [{"receivers": ["file"]}],
        "policy": {"flap_window": "0s", "group_by": []},
        "state": {"path": str(tmp_path / "state.db")},
        "audit": {"enabled": False},
    }
    (tmp_path / "monitoring.yaml").write_text(yaml.safe_dump(config))
    return home
