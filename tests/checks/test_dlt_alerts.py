"""End to end: real dlt loads into DuckDB, a schema change between loads, the alert sensor, the
card that reaches a local Teams server, and the dlt loads in the audit views."""

from typing import Any

import dagster as dg

from dagster_monitoring.checks.dlt import build_dlt_checks
from dagster_monitoring.config import config_from_dict
from dagster_monitoring.runtime import MonitoringRuntime
from dagster_monitoring.sensors.alerts import build_alert_sensor

from ..helpers.http_server import LocalHTTPServer, Response
from .test_dlt import Lending, drifted_rows, lending, loan_rows  # noqa: F401


def card_of(request: Any) -> dict:
    return request.json["attachments"][0]["content"]


def test_schema_drift_reaches_teams_and_recovers_on_the_next_load(lending: Lending, tmp_path) -> None:  # noqa: F811
    checks = build_dlt_checks(lending.assets, min_rows=5)
    with LocalHTTPServer(default=Response(202)) as teams:
        runtime = MonitoringRuntime(config_from_dict({
            "receivers": [{"type": "teams", "name": "teams", "webhook_url": teams.url("/workflows/x?sig=s3cr3tsig")}],
            "routes": [{"receivers": ["teams"]}],
            "policy": {"flap_window": "0s"},
            "state": {"path": str(tmp_path / "state.db")},
            "audit": {"duckdb_path": str(lending.audit_path), "spool_dir": str(lending.spool_dir)},
        }))
        sensor = build_alert_sensor(runtime=runtime)

        def tick(cursor: Any) -> Any:
            context = dg.build_sensor_context(instance=lending.instance, cursor=cursor)
            sensor(context)
            return context.cursor

        cursor = tick(None)
        lending.load(loan_rows(20), checks)  # baseline
        lending.load(drifted_rows(20), checks)  # a new column, principal arrives as text
        cursor = tick(cursor)
        cards = [card_of(r) for r in teams.settled() if r.accepted]
        drift = [c for c in cards if "dlt_schema_drift" in str(c)]
        assert len(drift) == 1
        text = str(drift[0])
        assert "WARN · NEW" in text and "Schema changed: " in text
        assert "currency" in text and "principal" in text  # the drift itself is on the card

        lending.load(drifted_rows(20), checks)  # same shape again: no new drift
        tick(cursor)
        transitions = [card_of(r)["body"][0]["items"][0]["text"] for r in teams.settled() if r.accepted and "dlt_schema_drift" in str(card_of(r))]
        assert transitions == ["WARN · NEW", "RECOVERED"]

    trail = runtime.trail
    rows = trail.sink.query("SELECT table_name, rows_loaded FROM dagster_audit.dlt_loads ORDER BY event_ts")[1]
    assert [r for r in rows if r[0] == "loans"] == [("loans", 20)] * 3
