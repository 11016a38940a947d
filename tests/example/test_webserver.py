"""``dagster dev -w workspace.yaml`` as a user starts it, on a free port, over the demo's Dagster
home: its GraphQL API lists the example's assets, the dbt checks with their severities, the
freshness and dlt checks and the monitoring sensors; headless Chromium loads an asset's Checks
page and the DOM and screenshot show them (docs/img/dagster_checks.png with DM_SAVE_SCREENSHOTS=1)."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dagster_monitoring.card_preview import chromium

from ..helpers.smtp_server import free_port

REPO = Path(__file__).resolve().parents[2]
LOCATION = "lender_example"
DBT_CHECKS = {  # check on stg_loans -> (blocking, severity of its evaluations)
    "not_null_stg_loans_principal_amount": (True, "ERROR"),
    "not_null_stg_loans_loan_id": (True, "ERROR"),
    "unique_stg_loans_loan_id": (True, "ERROR"),
}
ASSETS_QUERY = """
{ assetNodes {
    assetKey { path }
    owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
    assetChecksOrError { ... on AssetChecks { checks {
        name blocking
        executionForLatestMaterialization { status evaluation { severity success } }
    } } }
} }"""
SENSORS_QUERY = """
query($selector: RepositorySelector!) { sensorsOrError(repositorySelector: $selector) {
  __typename ... on Sensors { results { name sensorState { status } } } } }"""
LOCATION_QUERY = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    assert "errors" not in payload, payload["errors"]
    return payload["data"]


def wait_for_location(port: int, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"dagster dev exited {proc.returncode}:\n{log.read_text()[-3000:]}"
        try:
            entries = graphql(port, LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
            continue
        entry = next((e for e in entries if e["name"] == LOCATION), None)
        if entry and entry["loadStatus"] == "LOADED":
            assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
            return
        time.sleep(1)
    raise AssertionError(f"{LOCATION} did not load in {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def dagster_dev(demo_run, tmp_path_factory):
    """``dagster dev`` on the demo's home; yields the port."""
    result, _ = demo_run
    port = free_port()
    log = tmp_path_factory.mktemp("dagster_dev") / "dagster_dev.log"
    env = {**os.environ, "DAGSTER_HOME": str(result.home), "RUNTIME__DLTHUB_TELEMETRY": "false"}
    env.pop("DAGSTER_MONITORING_CONFIG", None)
    dagster = Path(sys.executable).parent / "dagster"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_for_location(port, proc, log)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does; dagster dev stops its children
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_graphql_lists_assets_checks_with_severities_and_owners(dagster_dev):
    nodes = {"/".join(n["assetKey"]["path"]): n for n in graphql(dagster_dev, ASSETS_QUERY)["assetNodes"]}
    assert {"raw/loans", "raw/repayments", "stg_loans", "stg_repayments", "fct_repayments", "fct_loan_balances"} <= set(nodes)
    checks = {(key, c["name"]): c for key, n in nodes.items() for c in n["assetChecksOrError"]["checks"]}

    for name, (blocking, severity) in DBT_CHECKS.items():
        check = checks[("stg_loans", name)]
        assert check["blocking"] is blocking, name
        evaluation = check["executionForLatestMaterialization"]["evaluation"]
        assert (evaluation["severity"], evaluation["success"]) == (severity, True), name  # the fix's run
    warn = next(c for (key, name), c in checks.items() if key == "stg_loans" and name.startswith("accepted_values_stg_loans_status"))
    assert warn["blocking"] is False
    assert warn["executionForLatestMaterialization"]["evaluation"]["severity"] == "WARN"

    for key in ("raw/loans", "fct_loan_balances"):
        assert (key, "freshness") in checks
    for name in ("dlt_row_count", "dlt_schema_drift"):
        assert ("raw/loans", name) in checks and ("raw/repayments", name) in checks

    assert {"team": "data-eng"} in nodes["stg_loans"]["owners"]
    assert {"team": "data-eng"} in nodes["raw/loans"]["owners"]


def test_graphql_lists_the_monitoring_sensors_running(dagster_dev):
    selector = {"repositoryName": "__repository__", "repositoryLocationName": LOCATION}
    sensors = graphql(dagster_dev, SENSORS_QUERY, {"selector": selector})["sensorsOrError"]
    assert sensors["__typename"] == "Sensors", sensors
    status = {s["name"]: s["sensorState"]["status"] for s in sensors["results"]}
    for name in ("dagster_monitoring_alerts", "dagster_monitoring_audit", "dagster_monitoring_watchdog"):
        assert status.get(name) == "RUNNING", status


@pytest.mark.chromium
def test_chromium_shows_the_checks_page(dagster_dev, tmp_path):
    from ..test_card_render import require_renderer

    exe = require_renderer()
    url = f"http://127.0.0.1:{dagster_dev}/assets/stg_loans?view=checks&checkDetail=not_null_stg_loans_principal_amount"
    budget = "--virtual-time-budget=30000"  # let the UI fetch and render before the DOM is read
    dom = chromium(exe, "--window-size=1400,900", budget, "--dump-dom", url, timeout=180).stdout
    for name in DBT_CHECKS:
        assert name in dom, f"{name} not on the Checks page"
    out = REPO / "docs" / "img" if os.environ.get("DM_SAVE_SCREENSHOTS") == "1" else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    png = out / "dagster_checks.png"
    png.unlink(missing_ok=True)
    chromium(exe, "--window-size=1400,900", budget, f"--screenshot={png}", url, timeout=180)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24]) == (1400, 900)
    assert len(data) > 30_000  # a rendered page, not a blank one
