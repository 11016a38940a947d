"""build_monitoring_defs: everything the package adds to a project, as one ``dg.Definitions``.

    import dagster as dg
    from dagster_monitoring import build_monitoring_defs

    defs = dg.Definitions.merge(my_project_defs, build_monitoring_defs("monitoring.yaml"))

The sensors (alerts, audit capture, watchdog, schedule / sensor tick failures) start RUNNING by default, so merging is enough;
the ``audit`` resource lets dbt and dlt assets write their test results and loads. A ``digest:``
section adds the digest job and its schedule (RUNNING too).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import dagster as dg

from .audit.resource import AuditResource
from .checks.freshness import build_freshness_checks
from .config import MonitoringConfig, config_from_dict, load_config
from .runtime import MonitoringRuntime
from .sensors.alerts import build_alert_sensor
from .sensors.audit_capture import build_audit_sensor
from .sensors.sources import build_aws_eventbridge_sensor, build_dbt_cloud_sensor, build_elementary_sensor, build_fivetran_sensor
from .sensors.ticks import build_tick_failure_sensor
from .sensors.watchdog import build_watchdog_sensor
from .translator import DagsterAlertTranslator

ConfigSource = Union[MonitoringConfig, Mapping[str, Any], str, os.PathLike]


def resolve_config(config: ConfigSource | None) -> MonitoringConfig:
    """A config object, a mapping, a YAML path, or None for $DAGSTER_MONITORING_CONFIG / defaults."""
    if config is None:
        env = os.environ.get("DAGSTER_MONITORING_CONFIG")
        return load_config(env) if env else config_from_dict({})
    if isinstance(config, MonitoringConfig):
        return config
    if isinstance(config, (str, os.PathLike)):
        return load_config(Path(config))
    return config_from_dict(config)


def build_monitoring_defs(
    config: ConfigSource | None = None,
    *,
    translator: DagsterAlertTranslator | None = None,
    alert_interval_seconds: int = 30,
    audit_interval_seconds: int = 60,
    watchdog_interval_seconds: int = 60,
    source_interval_seconds: int = 60,
    tick_interval_seconds: int = 60,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
    audit_resource_key: str = "audit",
) -> dg.Definitions:
    """Sensors and resources to ``dg.Definitions.merge`` into a project. Invalid config fails
    here, at load time, with every bad field named."""
    resolved = resolve_config(config)
    runtime = MonitoringRuntime(resolved, translator)
    sensors = [
        build_alert_sensor(runtime=runtime, minimum_interval_seconds=alert_interval_seconds, default_status=default_status),
        build_watchdog_sensor(runtime=runtime, minimum_interval_seconds=watchdog_interval_seconds, default_status=default_status),
    ]
    if resolved.instance.tick_failures.enabled:
        sensors.append(
            build_tick_failure_sensor(runtime=runtime, minimum_interval_seconds=tick_interval_seconds, default_status=default_status)
        )
    sources = resolved.sources
    if sources.fivetran is not None and sources.fivetran.polls:
        sensors.append(
            build_fivetran_sensor(runtime=runtime, minimum_interval_seconds=source_interval_seconds, default_status=default_status)
        )
    if sources.dbt_cloud is not None and sources.dbt_cloud.polls:
        sensors.append(
            build_dbt_cloud_sensor(runtime=runtime, minimum_interval_seconds=source_interval_seconds, default_status=default_status)
        )
    if sources.aws_eventbridge is not None and sources.aws_eventbridge.polls:
        sensors.append(
            build_aws_eventbridge_sensor(runtime=runtime, minimum_interval_seconds=source_interval_seconds, default_status=default_status)
        )
    if sources.elementary is not None:
        sensors.append(
            build_elementary_sensor(runtime=runtime, minimum_interval_seconds=source_interval_seconds, default_status=default_status)
        )
    resources: dict[str, Any] = {}
    if resolved.audit.enabled:
        sensors.append(build_audit_sensor(runtime=runtime, minimum_interval_seconds=audit_interval_seconds, default_status=default_status))
        resources[audit_resource_key] = AuditResource.from_audit_config(resolved.audit)
    extra = configured_checks(resolved)
    if resolved.digest is not None:
        from .report.schedule import build_digest_defs

        extra.append(build_digest_defs(runtime=runtime, default_status=dg.DefaultScheduleStatus(default_status.value)))
    if resolved.export is not None:
        from .report.schedule import build_export_defs

        extra.append(build_export_defs(runtime=runtime, default_status=dg.DefaultScheduleStatus(default_status.value)))
    return dg.Definitions.merge(dg.Definitions(sensors=sensors, resources=resources), *extra)


def configured_checks(config: MonitoringConfig) -> list[dg.Definitions]:
    """Freshness and dlt checks declared in the config's ``checks:`` section."""
    out = []
    for i, fresh in enumerate(config.checks.freshness):
        out.append(
            build_freshness_checks(
                list(fresh.assets),
                warn_after=fresh.warn_after,
                fail_after=fresh.fail_after,
                cron_schedule=fresh.cron_schedule,
                name=fresh.name or ("dagster_monitoring_freshness" + (f"_{i}" if i else "")),
            )
        )
    for spec in config.checks.dlt:
        from .checks.dlt import build_dlt_checks

        out.append(
            dg.Definitions(
                asset_checks=build_dlt_checks(
                    list(spec.assets),
                    min_rows=spec.min_rows,
                    max_drop=spec.max_drop,
                    trailing_loads=spec.trailing_loads,
                    drift_severity=dg.AssetCheckSeverity(spec.drift_severity),
                    row_count_severity=dg.AssetCheckSeverity(spec.row_count_severity),
                    checks=spec.checks,
                )
            )
        )
    return out
