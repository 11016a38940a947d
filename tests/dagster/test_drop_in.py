"""Adopting the package: build_monitoring_defs merged into a project (Python), and the same
as a dg Component in YAML, loaded by Dagster's own component machinery."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster.components.testing import create_defs_folder_sandbox

from dagster_monitoring import MonitoringComponent, build_monitoring_defs
from dagster_monitoring.alerting.config import ConfigError

from .jobs import fct_loans, loans_daily, row_count_ok

SENSORS = {"dagster_monitoring_alerts", "dagster_monitoring_watchdog", "dagster_monitoring_audit", "dagster_monitoring_ticks"}


def config_file(tmp_path):
    path = tmp_path / "monitoring.yaml"
    path.write_text(
        f"receivers:\n  - {{name: file, type: file, path: {tmp_path / 'alerts.jsonl'}}}\n"
        f"routes:\n  - {{receivers: [file]}}\n"
        f"state: {{path: {tmp_path / 'state.db'}}}\n"
        f"audit: {{duckdb_path: {tmp_path / 'audit.duckdb'}, spool_dir: {tmp_path / 'spool'}}}\n"
    )
    return path


def test_python_drop_in_is_one_merge(tmp_path):
    my_defs = dg.Definitions(assets=[fct_loans], asset_checks=[row_count_ok], jobs=[loans_daily])
    defs = dg.Definitions.merge(my_defs, build_monitoring_defs(config_file(tmp_path)))  # the whole adoption
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) == SENSORS
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    assert "audit" in defs.resources
    assert defs.resolve_job_def("loans_daily") is not None  # the project's own definitions are intact
    defs.get_repository_def()  # validates as a whole


def test_invalid_config_fails_at_load_naming_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - {receivers: [teams]}\n")
    with pytest.raises(ConfigError, match=r"routes\[0\].receivers: unknown receiver 'teams'"):
        build_monitoring_defs(bad)


def test_component_in_yaml(tmp_path):
    path = config_file(tmp_path)
    with create_defs_folder_sandbox() as sandbox:
        defs_path = sandbox.scaffold_component(
            component_cls=MonitoringComponent,
            defs_yaml_contents={
                "type": "dagster_monitoring.components.MonitoringComponent",
                "attributes": {"config_file": str(path), "alert_interval_seconds": 45},
            },
        )
        with sandbox.load_component_and_build_defs(defs_path=defs_path) as (component, defs):
            assert isinstance(component, MonitoringComponent)
            sensors = {s.name: s for s in defs.sensors}
            assert set(sensors) == SENSORS
            assert sensors["dagster_monitoring_alerts"].minimum_interval_seconds == 45


def test_checks_declared_in_the_config_come_with_the_drop_in(tmp_path):
    path = config_file(tmp_path)
    path.write_text(path.read_text() + (
        "checks:\n"
        "  freshness:\n"
        "    - {assets: [fct_loans], warn_after: 26h, fail_after: 30h}\n"
        "  dlt:\n"
        "    - {assets: [raw/loans], min_rows: 100}\n"
    ))
    defs = dg.Definitions.merge(dg.Definitions(assets=[fct_loans]), build_monitoring_defs(path))
    check_specs = {(s.asset_key.to_user_string(), s.name) for c in defs.asset_checks for s in c.check_specs}
    assert {("fct_loans", "freshness"), ("raw/loans", "dlt_row_count"), ("raw/loans", "dlt_schema_drift")} <= check_specs
    assert [s.name for s in defs.schedules] == ["dagster_monitoring_freshness_schedule"]


def test_bad_check_config_is_named(tmp_path):
    path = config_file(tmp_path)
    path.write_text(path.read_text() + "checks:\n  freshness:\n    - {assets: [a], warn_after: 30h, fail_after: 1h}\n")
    with pytest.raises(ConfigError, match=r"checks.freshness\[0\]: need 0 < warn_after <= fail_after"):
        build_monitoring_defs(path)
