"""dbt overhead: `dbt build` of the example project through dagster-dbt, with and without the
package's dbt integration.

plain:     @dbt_assets(manifest) + `yield from dbt.cli(["build"], context=context).stream()`
monitored: @dbt_assets(manifest, MonitoringDbtTranslator()) + monitor_dbt_events(..., audit=AuditResource)
           (severity rewrite, run_results.json read, one dbt_test_results row per test into DuckDB)

Both run in `dg.materialize` on a copy of dbt_project/ (parsed once) against the same DuckDB
warehouse, alternating plain / monitored so machine load hits both alike; the figure is the median
wall time of N repetitions each. Because a dbt build here is seconds of process start-up and the
integration is milliseconds, the wall-time difference is mostly noise: the script also measures the
integration's own time inside the monitored runs (time in monitor_dbt_events minus time waiting for
dagster-dbt's stream), which is the overhead without the noise.

Run: python benchmarks/dbt_overhead.py [--repetitions 5]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
DBT = BIN / "dbt"

import dagster as dg  # noqa: E402
from dagster_dbt import DbtCliResource, dbt_assets  # noqa: E402

from dagster_monitoring.audit.resource import AuditResource  # noqa: E402
from dagster_monitoring.checks.dbt import MonitoringDbtTranslator, monitor_dbt_events  # noqa: E402


class Timed:
    """Wraps an iterable and adds up the time spent inside its ``next()``."""

    def __init__(self, iterable: Any, invocation: Any = None) -> None:
        self.iterable = iterable
        self._dbt_cli_invocation = invocation  # what monitor_dbt_events looks for on a stream
        self.seconds = 0.0

    def __iter__(self) -> Iterator[Any]:
        iterator = iter(self.iterable)
        while True:
            started = time.perf_counter()
            try:
                event = next(iterator)
            except StopIteration:
                return
            finally:
                self.seconds += time.perf_counter() - started
            yield event


def build_assets(manifest: dict[str, Any], own_times: list[float]) -> tuple[dg.AssetsDefinition, dg.AssetsDefinition]:
    @dbt_assets(manifest=manifest, name="plain")
    def plain(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        yield from dbt.cli(["build"], context=context).stream()

    @dbt_assets(manifest=manifest, name="monitored", dagster_dbt_translator=MonitoringDbtTranslator())
    def monitored(context: dg.AssetExecutionContext, dbt: DbtCliResource, audit: AuditResource):
        invocation = dbt.cli(["build"], context=context)
        dbt_stream = Timed(invocation.stream(), invocation)
        monitored_stream = Timed(monitor_dbt_events(dbt_stream, context=context, audit=audit))
        yield from monitored_stream
        # Time inside the integration's generator minus the time it waited for dagster-dbt's
        # stream: the integration's own cost (event rewrite, run_results.json, audit write).
        own_times.append(monitored_stream.seconds - dbt_stream.seconds)

    return plain, monitored


def run(assets: dg.AssetsDefinition, resources: dict[str, Any]) -> float:
    started = time.perf_counter()
    result = dg.materialize([assets], resources=resources, instance=dg.DagsterInstance.ephemeral())
    elapsed = time.perf_counter() - started
    if not result.success:
        raise SystemExit(f"{assets.node_def.name}: the dbt build failed")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dbt_overhead_") as tmp:
        project = Path(tmp) / "lender"
        shutil.copytree(ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs", "*.duckdb", ".user.yml"))
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        subprocess.run([str(DBT), "parse", "--quiet"], cwd=project, env=env, check=True)
        manifest = json.loads((project / "target" / "manifest.json").read_text())

        own_times: list[float] = []
        plain, monitored = build_assets(manifest, own_times)
        dbt = DbtCliResource(project_dir=str(project), dbt_executable=str(DBT))
        audit = AuditResource(duckdb_path=str(Path(tmp) / "audit.duckdb"), spool_dir=str(Path(tmp) / "spool"))

        run(plain, {"dbt": dbt})  # warm-up: creates the raw tables and the warehouse file
        plain_times, monitored_times = [], []
        for _ in range(args.repetitions):
            plain_times.append(run(plain, {"dbt": dbt}))
            monitored_times.append(run(monitored, {"dbt": dbt, "audit": audit}))

    plain_s = statistics.median(plain_times)
    monitored_s = statistics.median(monitored_times)
    own_s = statistics.median(own_times)
    print(f"plain_s={plain_s:.3f} monitored_s={monitored_s:.3f} overhead_pct={(monitored_s - plain_s) / plain_s * 100:.1f}")
    print(
        f"integration_own_ms={own_s * 1000:.0f} integration_own_pct={own_s / plain_s * 100:.2f} "
        f"repetitions={args.repetitions} plain_runs={','.join(f'{t:.2f}' for t in plain_times)} "
        f"monitored_runs={','.join(f'{t:.2f}' for t in monitored_times)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
