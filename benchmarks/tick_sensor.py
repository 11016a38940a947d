"""The ticks sensor's cost versus the number of schedules and sensors on the instance.

An instance with N sensors (100 and 1,000), each with 20 recorded ticks (a tenth of them in a
failure streak, the rest skipping), written with the instance's own APIs (instigator states and
ticks in the schedule storage, SQLite, as ``dagster-daemon`` writes them); then the real
``dagster_monitoring_ticks`` sensor is evaluated through Dagster's sensor context, twice: the first
tick opens an incident per failing sensor, the second reads the same ticks again (replays,
nothing sent). Prints seconds per tick and per instigator.
Run: python benchmarks/tick_sensor.py [--sensors 100 1000] [--ticks 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteInstigatorOrigin, RemoteRepositoryOrigin
from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, InstigatorType, TickData, TickStatus
from dagster._utils.error import SerializableErrorInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dagster_monitoring.config import config_from_dict  # noqa: E402
from dagster_monitoring.runtime import MonitoringRuntime  # noqa: E402
from dagster_monitoring.sensors.ticks import build_tick_failure_sensor  # noqa: E402


def add_sensors(instance: dg.DagsterInstance, n: int, ticks: int) -> int:
    repo = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("bench"), "__repository__")
    now = time.time()
    failing = 0
    for i in range(n):
        origin = RemoteInstigatorOrigin(repo, f"sensor_{i:04d}")
        state = instance.add_instigator_state(InstigatorState(origin, InstigatorType.SENSOR, InstigatorStatus.RUNNING))
        broken = i % 10 == 0
        failing += broken
        for t in range(ticks):
            fails = broken and t >= ticks - 3  # the latest three ticks failed
            instance.create_tick(
                TickData(
                    instigator_origin_id=state.instigator_origin_id,
                    instigator_name=state.instigator_name,
                    instigator_type=InstigatorType.SENSOR,
                    status=TickStatus.FAILURE if fails else TickStatus.SKIPPED,
                    timestamp=now - (ticks - t) * 30,
                    selector_id=state.selector_id,
                    error=SerializableErrorInfo("ConnectionError: refused", [], "ConnectionError") if fails else None,
                )
            )
    return failing


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sensors", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--ticks", type=int, default=20)
    args = parser.parse_args()
    for n in args.sensors:
        with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test(temp_dir=tmp) as instance:
            failing = add_sensors(instance, n, args.ticks)
            runtime = MonitoringRuntime(
                config_from_dict(
                    {
                        "receivers": [{"type": "file", "name": "file", "path": f"{tmp}/alerts.jsonl"}],
                        "routes": [{"receivers": ["file"]}],
                        "state": {"path": f"{tmp}/state.db"},
                        "audit": {"enabled": False},
                    }
                )
            )
            sensor = build_tick_failure_sensor(runtime=runtime)
            figures = []
            for _ in range(2):
                started = time.perf_counter()
                sensor(dg.build_sensor_context(instance=instance))
                figures.append(time.perf_counter() - started)
            sent = sum(1 for _ in open(f"{tmp}/alerts.jsonl")) if Path(f"{tmp}/alerts.jsonl").exists() else 0
            print(
                f"sensors={n} ticks_each={args.ticks} failing={failing} first_tick_s={figures[0]:.2f} "
                f"second_tick_s={figures[1]:.2f} ms_per_instigator={figures[1] / n * 1000:.1f} notifications={sent}"
            )


if __name__ == "__main__":
    main()
