"""The Fivetran and dbt Cloud poll sensors, ticked like the daemon ticks them, against local API servers."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from dagster_monitoring import build_monitoring_defs
from dagster_monitoring.config import config_from_dict
from dagster_monitoring.runtime import MonitoringRuntime
from dagster_monitoring.sensors.sources import build_dbt_cloud_sensor, build_fivetran_sensor

from ..helpers.http_server import Response
from ..sources.fakes import DBT_TOKEN, FIVETRAN_KEY, FIVETRAN_SECRET, FakeDbtCloud, FakeFivetran, connection


def runtime_for(tmp_path, fivetran_url: str | None = None, dbt_url: str | None = None) -> MonitoringRuntime:
    sources: dict = {}
    if fivetran_url:
        sources["fivetran"] = {"api_key": FIVETRAN_KEY, "api_secret": FIVETRAN_SECRET, "base_url": fivetran_url, "settle": "0s"}
    if dbt_url:
        sources["dbt_cloud"] = {"account_id": 43, "api_token": DBT_TOKEN, "base_url": dbt_url, "jobs": [10]}
    return MonitoringRuntime(
        config_from_dict(
            {
                "receivers": [{"type": "file", "name": "file", "path": str(tmp_path / "alerts.jsonl")}],
                "routes": [{"receivers": ["file"]}],
                "policy": {"flap_window": "0s"},
                "state": {"path": str(tmp_path / "state.db")},
                "audit": {"enabled": False},
                "sources": sources,
            }
        )
    )


def sent(tmp_path) -> list[tuple[str, str]]:
    path = tmp_path / "alerts.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(m["transition"], m["event"]["entity"]) for m in map(json.loads, lines)]


class Ticker:
    def __init__(self, sensor: dg.SensorDefinition, instance: dg.DagsterInstance) -> None:
        self.sensor, self.instance, self.cursor = sensor, instance, None

    def __call__(self) -> str:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor)
        result = self.sensor(context)
        self.cursor = context.cursor
        return result.skip_message if isinstance(result, dg.SkipReason) else str(result)


def test_fivetran_sensor_fails_once_suppresses_repeats_recovers_once(tmp_path, instance):
    with FakeFivetran() as api:
        api.connections["a"] = connection("a", "warehouse_pg", succeeded_at="2026-11-25T06:00:00Z", failed_at="2026-11-25T08:00:00Z")
        api.connections["b"] = connection("b", "crm", succeeded_at="2026-11-25T08:00:00Z", failed_at=None)
        runtime = runtime_for(tmp_path, fivetran_url=api.base_url)
        tick = Ticker(build_fivetran_sensor(runtime=runtime), instance)
        assert "2 event(s), 1 failing" in tick()
        tick()
        api.connections["a"]["failed_at"] = "2026-11-25T09:00:00Z"  # failed again
        api.enqueue(Response(429, headers={"Retry-After": "0"}))
        tick()
        assert sent(tmp_path) == [("new", "warehouse_pg")]
        api.connections["a"].update(succeeded_at="2026-11-25T10:00:00Z")
        api.enqueue(Response(503, "maintenance"))
        assert "HTTP 503" in tick()  # an outage skips the tick
        tick()
        assert sent(tmp_path) == [("new", "warehouse_pg"), ("recovered", "warehouse_pg")]
        assert api.violations == []
    assert {b.name for b in runtime.router.store.heartbeats()} == {"dagster_monitoring_fivetran"}


def test_refused_credentials_fail_the_tick_for_the_watchdog(tmp_path, instance):
    with FakeFivetran() as api:
        runtime = runtime_for(tmp_path, fivetran_url=api.base_url)
        api.enqueue(Response(401, {"code": "AuthFailed"}))
        with pytest.raises(Exception, match="HTTP 401"):
            Ticker(build_fivetran_sensor(runtime=runtime), instance)()
    [beat] = runtime.router.store.heartbeats()
    assert "HTTP 401" in beat.last_error and FIVETRAN_SECRET not in beat.last_error


def test_dbt_cloud_sensor(tmp_path, instance):
    with FakeDbtCloud() as api:
        api.add_run(1, 10, "daily build", 20, finished_at="2026-11-25 08:01:00+00:00")
        runtime = runtime_for(tmp_path, dbt_url=api.base_url)
        tick = Ticker(build_dbt_cloud_sensor(runtime=runtime), instance)
        tick()
        api.add_run(2, 10, "daily build", 20, finished_at="2026-11-25 09:01:00+00:00")
        tick()
        api.add_run(3, 10, "daily build", 10, finished_at="2026-11-25 10:01:00+00:00")
        tick()
        assert sent(tmp_path) == [("new", "daily build"), ("recovered", "daily build")]
        assert json.loads(tick.cursor) == {"runs": {"10": 3}} and api.violations == []


def test_drop_in_adds_the_poll_sensors_only_for_polling_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("FT_KEY", "k" * 8)
    monkeypatch.setenv("FT_SECRET", "s" * 12)
    monkeypatch.setenv("DBT_HOOK", "h" * 12)
    path = tmp_path / "monitoring.yaml"
    path.write_text(
        f"state: {{path: {tmp_path / 'state.db'}}}\naudit: {{enabled: false}}\n"
        "sources:\n  fivetran: {api_key: {env: FT_KEY}, api_secret: {env: FT_SECRET}}\n"
        "  dbt_cloud: {account_id: 1, webhook_secret: {env: DBT_HOOK}}\n"
    )
    names = {s.name for s in build_monitoring_defs(path).sensors}
    assert "dagster_monitoring_fivetran" in names and "dagster_monitoring_dbt_cloud" not in names
