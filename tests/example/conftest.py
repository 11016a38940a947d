from __future__ import annotations

import pytest

from dagster_monitoring.example.demo import DemoResult, run_demo


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> tuple[DemoResult, list[str]]:
    """``dagster-monitoring demo`` once per session, for real, in a temporary Dagster home: what it
    returned and what it printed. The webserver test browses the same home afterwards."""
    home = tmp_path_factory.mktemp("demo") / "home"
    printed: list[str] = []
    with pytest.MonkeyPatch.context() as mp:  # run_demo sets DAGSTER_HOME for the process
        mp.delenv("DAGSTER_HOME", raising=False)
        mp.delenv("DAGSTER_MONITORING_CONFIG", raising=False)
        mp.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
        result = run_demo(home, echo=printed.append)
    return result, printed
