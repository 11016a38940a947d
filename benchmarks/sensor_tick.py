"""Sensor tick cost versus history: an instance with 100 and with 10,000 past runs, then 1,000
new run status changes (500 runs: a start and an end each; half fail; half are asset runs, whose
check evaluations the alert sensor reads with one query per run); prints the tick time of the
alert and the audit sensors for each, and the ratio between the two histories.

Goal: the cost depends on what is new, not on history; < 1 s per 1,000 new events.
Runs and their status events are written straight into a real Dagster instance (consolidated
SQLite event log, like one Postgres database) with the instance's own APIs; the sensors are
evaluated through Dagster's sensor context, with the file receiver and a DuckDB audit file.
Run: python benchmarks/sensor_tick.py [--history 100 10000] [--new 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dagster_monitoring.config import config_from_dict  # noqa: E402
from dagster_monitoring.runtime import MonitoringRuntime  # noqa: E402
from dagster_monitoring.sensors.alerts import build_alert_sensor  # noqa: E402
from dagster_monitoring.sensors.audit_capture import build_audit_sensor  # noqa: E402


def add_runs(instance: dg.DagsterInstance, n: int, offset: int) -> None:
    for i in range(n):
        job = f"job_{(offset + i) % 100:03d}"
        # every other run is an asset run (its check evaluations are read: one query each)
        selection = frozenset({dg.AssetKey(f"asset_{(offset + i) % 50}")}) if (offset + i) % 4 < 2 else None
        run = instance.add_run(
            dg.DagsterRun(job_name=job, run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED, asset_selection=selection)
        )
        instance.report_dagster_event(DagsterEvent(DagsterEventType.RUN_START.value, job_name=job), run.run_id)
        if (offset + i) % 2 == 0:
            instance.report_run_failed(run, message="boom")
        else:
            instance.report_dagster_event(DagsterEvent(DagsterEventType.RUN_SUCCESS.value, job_name=job), run.run_id)


def tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None) -> tuple[str | None, float]:
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    start = time.perf_counter()
    sensor(context)
    return context.cursor, time.perf_counter() - start


@contextmanager
def consolidated_instance() -> Iterator[tuple[str, dg.DagsterInstance]]:
    """A temporary folder and a real instance in it with one event log (consolidated SQLite, like
    one Postgres database), not a SQLite file per run."""
    with (
        tempfile.TemporaryDirectory() as d,
        dg.instance_for_test(
            temp_dir=d,
            overrides={
                "event_log_storage": {
                    "module": "dagster._core.storage.event_log",
                    "class": "ConsolidatedSqliteEventLogStorage",
                    "config": {"base_dir": d + "/events"},
                }
            },
        ) as instance,
    ):
        yield d, instance


def file_runtime(d: str, **config: Any) -> MonitoringRuntime:
    """The runtime the benchmarks tick: the file receiver, SQLite state and DuckDB audit in ``d``."""
    base = {
        "receivers": [{"type": "file", "name": "file", "path": f"{d}/alerts.jsonl"}],
        "routes": [{"receivers": ["file"]}],
        "state": {"path": f"{d}/state.db"},
        "audit": {"duckdb_path": f"{d}/audit.duckdb", "spool_dir": f"{d}/spool"},
    }
    return MonitoringRuntime(config_from_dict({**base, **config}))


def measure(history: int, new: int) -> tuple[float, float]:
    with consolidated_instance() as (d, instance):
        add_runs(instance, history, 0)
        runtime = file_runtime(d)
        alerts = build_alert_sensor(runtime=runtime)
        audit = build_audit_sensor(runtime=runtime, start_from_beginning=False)
        alert_cursor, _ = tick(alerts, instance, None)
        audit_cursor, _ = tick(audit, instance, None)
        runtime.trail.sink.init()
        add_runs(instance, new // 2, history)  # each run: a START and a FAILURE or SUCCESS
        _, alert_s = tick(alerts, instance, alert_cursor)
        _, audit_s = tick(audit, instance, audit_cursor)
        return alert_s, audit_s


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--history", type=int, nargs="+", default=[100, 10_000])
    parser.add_argument("--new", type=int, default=1000, help="new status changes (half of them run ends)")
    args = parser.parse_args()
    results = {}
    for history in args.history:
        alert_s, audit_s = measure(history, args.new)
        results[history] = (alert_s, audit_s)
        print(f"history_runs={history} new_status_changes={args.new} alert_tick_s={alert_s:.3f} audit_tick_s={audit_s:.3f}")
    if len(results) >= 2:
        lo, hi = min(results), max(results)
        print(f"ratio_{hi}_vs_{lo}: alert={results[hi][0] / results[lo][0]:.2f} audit={results[hi][1] / results[lo][1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
