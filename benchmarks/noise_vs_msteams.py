"""The same job, failing 100 times and then succeeding once, watched by dagster-msteams'
``make_teams_on_run_failure_sensor`` and by this package's alert sensor, both posting to local
Teams-like HTTP servers. Prints ``msteams_messages=N this_messages=M``.

Real runs in a real temporary instance; both sensors are evaluated after every run through
Dagster's own sensor context, as the daemon would between runs.
Run: python benchmarks/noise_vs_msteams.py [--failures 100]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

import dagster as dg
from dagster_msteams import make_teams_on_run_failure_sensor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dagster_monitoring.config import config_from_dict  # noqa: E402
from dagster_monitoring.runtime import MonitoringRuntime  # noqa: E402
from dagster_monitoring.sensors.alerts import build_alert_sensor  # noqa: E402
from tests.dagster.jobs import loans_daily, run_loans  # noqa: E402
from tests.helpers.http_server import LocalHTTPServer, Response  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--failures", type=int, default=100)
    args = parser.parse_args()
    logging.getLogger("dagster").setLevel(logging.ERROR)
    with (
        LocalHTTPServer(default=Response(200)) as msteams_srv,
        LocalHTTPServer(default=Response(202)) as our_srv,
        tempfile.TemporaryDirectory() as d,
        dg.instance_for_test(temp_dir=d) as instance,
    ):
        msteams = make_teams_on_run_failure_sensor(
            hook_url=msteams_srv.url("/webhook"), monitored_jobs=[loans_daily], default_status=dg.DefaultSensorStatus.RUNNING
        )
        repo = dg.Definitions(jobs=[loans_daily], sensors=[msteams]).get_repository_def()
        runtime = MonitoringRuntime(
            config_from_dict(
                {
                    "receivers": [{"type": "teams", "name": "teams", "webhook_url": our_srv.url("/workflows/x?sig=abcdefgh")}],
                    "routes": [{"receivers": ["teams"]}],
                    "state": {"path": f"{d}/state.db"},
                    "audit": {"enabled": False},
                    "policy": {"flap_window": "0s"},
                }
            )
        )
        ours = build_alert_sensor(runtime=runtime)
        cursors: dict[str, str | None] = {"msteams": None, "ours": None}

        def tick_both() -> None:
            result = msteams.evaluate_tick(dg.build_sensor_context(instance=instance, repository_def=repo, cursor=cursors["msteams"]))
            cursors["msteams"] = result.cursor
            context = dg.build_sensor_context(instance=instance, cursor=cursors["ours"])
            ours(context)
            cursors["ours"] = context.cursor

        tick_both()
        for _ in range(args.failures):
            run_loans(instance, fail=True)
            tick_both()
        run_loans(instance, fail=False)
        tick_both()
        msteams_n = sum(1 for r in msteams_srv.settled() if r.answered)
        ours = our_srv.settled()
        ours_n = sum(1 for r in ours if r.accepted)
        badges = [r.json["attachments"][0]["content"]["body"][0]["items"][0]["text"] for r in ours if r.accepted]
    print(f"runs={args.failures + 1} (failures={args.failures}, then one success)")
    print(f"msteams_messages={msteams_n} this_messages={ours_n}")
    print(f"this package's cards: {badges}; dagster-msteams: one card per failed run and none on recovery")
    return 0


if __name__ == "__main__":
    sys.exit(main())
