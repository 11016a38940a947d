from __future__ import annotations

import pytest

from dagster_monitoring.example.demo import DemoResult, run_demo

from ..transports.test_teams import FakeTeamsWorkflow

TEAMS_URL_ENV = "DM_DEMO_TEAMS_WEBHOOK_URL"


@pytest.fixture(scope="session")
def demo_teams() -> FakeTeamsWorkflow:
    """A local Teams Workflows endpoint that checks the contract; the demo's ``--config`` sends
    to it, as a user's config sends to their channel. Its requests stay readable after it stops."""
    server = FakeTeamsWorkflow().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, demo_teams) -> tuple[DemoResult, list[str]]:
    """``dagster-monitoring demo --config monitoring.yaml`` once per session, for real, in a
    temporary Dagster home: what it returned and what it printed. The config names a Teams
    receiver (the local server above); the demo adds its file receiver in front. The webserver
    test browses the same home afterwards; the fresh-clone test runs the demo with no config."""
    tmp = tmp_path_factory.mktemp("demo")
    config = tmp / "monitoring.yaml"
    config.write_text(
        "receivers:\n"
        f"  - {{name: teams-data-eng, type: teams, webhook_url: {{env: {TEAMS_URL_ENV}}}}}\n"
        "routes:\n  - {min_severity: warn, receivers: [teams-data-eng]}\n",
        encoding="utf-8",
    )
    return run_demo_in(tmp / "home", config, demo_teams)


def run_demo_in(home, config, teams) -> tuple[DemoResult, list[str]]:
    printed: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
        mp.setenv(TEAMS_URL_ENV, teams.webhook_url)
        result = run_demo(home, config, echo=printed.append)
    return result, printed
