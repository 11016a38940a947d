"""A real ``dagster-daemon run`` is started, killed and started again; ``watch --once`` alerts
once that the process is down and announces its recovery once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import yaml

from .test_watch import sent, watch_once

DAEMON = Path(sys.executable).with_name("dagster-daemon")
CODE = Path(__file__).with_name("health_code.py")


def start_daemon(home: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(DAEMON), "run", "-f", str(CODE)],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


def test_killing_dagster_daemon_alerts_and_restarting_it_recovers(tmp_path, home):
    config = yaml.safe_load((tmp_path / "monitoring.yaml").read_text())
    config["instance"] = {"daemons": {"stale_after": "8s"}}
    (tmp_path / "monitoring.yaml").write_text(yaml.safe_dump(config))
    with dg.DagsterInstance.get() as instance:
        required = set(instance.get_required_daemon_types())
        started_at = time.time()

        def all_beating_since(t: float) -> bool:
            beats = instance.get_daemon_heartbeats()
            return all(d in beats and beats[d].timestamp >= t for d in required)

        daemon = start_daemon(home)
        try:
            wait_for(lambda: all_beating_since(started_at))
            assert "failing: none" in watch_once(tmp_path)
        finally:
            os.killpg(daemon.pid, signal.SIGKILL)  # a crash: no goodbye
            daemon.wait(10)
        killed_at = time.time()
        time.sleep(max(0.0, 8.5 - (time.time() - max(b.timestamp for b in instance.get_daemon_heartbeats().values()))))
        out = watch_once(tmp_path)
        assert "failing: daemon:dagster-daemon; 1 notification(s)" in out, out  # one card for the process, not one per daemon
        [alert] = sent(tmp_path)
        assert alert["event"]["summary"].startswith("dagster-daemon is down: no daemon has sent a heartbeat for ")
        assert set(alert["event"]["details"]["Daemons"].split(", ")) == required

        daemon = start_daemon(home)
        try:
            wait_for(lambda: all_beating_since(killed_at))
            assert "failing: none" in watch_once(tmp_path)
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(20)
    assert [(a["event"]["entity"], a["transition"]) for a in sent(tmp_path)] == [("dagster-daemon", "new"), ("dagster-daemon", "recovered")]
