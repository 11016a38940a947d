"""Demo wall time: `dagster-monitoring demo` end to end in a new temporary Dagster home.

Loading the example (definitions, a `dbt parse`), then per phase: the two jobs run for real
(dlt load, `dbt build`, the partner import), one tick of the alert and audit sensors and the
`vw_recent_failures` query; card previews (Chromium) are counted in the total only. Goal: under
two minutes on this machine.

Run: python benchmarks/demo_time.py
"""

import os
import tempfile
from pathlib import Path

from dagster_monitoring.example.demo import run_demo


def main() -> None:
    os.environ.pop("DAGSTER_MONITORING_CONFIG", None)
    with tempfile.TemporaryDirectory(prefix="dm-bench-demo-") as tmp:
        result = run_demo(Path(tmp) / "home", echo=lambda _text: None)
    phases = " ".join(f"{name}_s={phase.seconds:.1f}" for name, phase in result.phases.items())
    alerts = sum(len(phase.alerts) for phase in result.phases.values())
    print(f"demo_total_s={result.seconds:.1f} {phases} alerts_sent={alerts} goal_s=120")


if __name__ == "__main__":
    main()
