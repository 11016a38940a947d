"""What the alert sensor's new kinds cost per tick: the check of the runs in progress (run too
long) and the read of check evaluations reported without a run.

An instance (consolidated SQLite event log, like one Postgres database) gets ``--history``
finished runs of 50 jobs (60-120 s each) and ``--runless-history`` runless check evaluations
before the sensor's first tick; then ``--in-progress`` runs of those jobs are started (a third of
them past twice their job's p95) and ``--runless`` new evaluations are reported. Printed: the
tick that reads the new evaluations and finds the long runs (the jobs' history is read then),
a quiet tick afterwards (nothing new; the runs still in progress are checked again, history
cached), and a tick with the same number of new evaluations on an instance with ten times the
runless history (the ratio says whether history costs).
Everything is written with Dagster's own instance APIs; the sensor is evaluated through
Dagster's sensor context, with the file receiver.
Run: python benchmarks/alert_kinds.py [--history 1000] [--in-progress 150] [--runless 1000] [--runless-history 2000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sensor_tick import consolidated_instance, file_runtime  # noqa: E402  (benchmarks/ is the script's folder)

from dagster_monitoring.sensors.alerts import build_alert_sensor  # noqa: E402

JOBS = 50


def run_event(instance: dg.DagsterInstance, run_id: str, job: str, event_type: DagsterEventType, at: float) -> None:
    instance.report_dagster_event(DagsterEvent(event_type.value, job_name=job), run_id, timestamp=at)


def add_history(instance: dg.DagsterInstance, runs: int, now: float) -> None:
    for i in range(runs):
        job = f"job_{i % JOBS:02d}"
        run = instance.add_run(dg.DagsterRun(job_name=job, run_id=f"h{i:07d}", status=dg.DagsterRunStatus.NOT_STARTED))
        start = now - 86_400 + i
        run_event(instance, run.run_id, job, DagsterEventType.RUN_START, start)
        run_event(instance, run.run_id, job, DagsterEventType.RUN_SUCCESS, start + 60 + (i * 7) % 60)


def start_runs(instance: dg.DagsterInstance, runs: int, now: float) -> None:
    for i in range(runs):
        job = f"job_{i % JOBS:02d}"
        run = instance.add_run(dg.DagsterRun(job_name=job, run_id=f"p{i:07d}", status=dg.DagsterRunStatus.NOT_STARTED))
        too_long = i % 3 == 0  # p95 is under 120 s; twice that is under 240 s
        run_event(instance, run.run_id, job, DagsterEventType.RUN_START, now - (600 if too_long else 30))


def report_evaluations(instance: dg.DagsterInstance, n: int, offset: int) -> None:
    for i in range(n):
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey(f"asset_{(offset + i) % 200:03d}"),
                check_name="reconciliation",
                passed=(offset + i) % 5 != 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"diff": (offset + i) % 7},
            )
        )


def tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None) -> tuple[str | None, float, str]:
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    start = time.perf_counter()
    result = sensor(context)
    return context.cursor, time.perf_counter() - start, getattr(result, "skip_message", "") or ""


def measure(history: int, in_progress: int, runless: int, runless_history: int) -> tuple[float, float, str]:
    now = time.time()
    with consolidated_instance() as (d, instance):
        add_history(instance, history, now)
        report_evaluations(instance, runless_history, 0)
        runtime = file_runtime(d, audit={"enabled": False}, policy={"group_by": []})
        sensor = build_alert_sensor(runtime=runtime)
        cursor, _, _ = tick(sensor, instance, None)
        start_runs(instance, in_progress, time.time())
        report_evaluations(instance, runless, runless_history)
        cursor, busy_s, message = tick(sensor, instance, cursor)
        _, quiet_s, _ = tick(sensor, instance, cursor)
        return busy_s, quiet_s, message


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--history", type=int, default=1_000, help="finished runs before the first tick")
    parser.add_argument("--in-progress", type=int, default=150, help="runs in progress (a third too long)")
    parser.add_argument("--runless", type=int, default=1_000, help="new runless check evaluations")
    parser.add_argument("--runless-history", type=int, default=2_000, help="runless evaluations before the first tick")
    args = parser.parse_args()
    busy, quiet, message = measure(args.history, args.in_progress, args.runless, args.runless_history)
    print(f"history_runs={args.history} in_progress={args.in_progress} new_runless={args.runless} runless_history={args.runless_history}")
    print(f"  busy tick: {busy:.3f} s ({message})")
    print(f"  quiet tick (runs still in progress, nothing new): {quiet:.3f} s")
    busy10, _, _ = measure(args.history, args.in_progress, args.runless, args.runless_history * 10)
    print(f"  busy tick with runless_history={args.runless_history * 10}: {busy10:.3f} s (ratio {busy10 / busy:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
