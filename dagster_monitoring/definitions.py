"""build_monitoring_defs: everything the package adds to a project, as one ``dg.Definitions``.

    import dagster as dg
    from dagster_monitoring import build_monitoring_defs

    defs = dg.Definitions.merge(my_project_defs, build_monitoring_defs("monitoring.yaml"))

The sensors (alerts, audit capture, watchdog) start RUNNING by default, so merging is enough;
the ``audit`` resource lets dbt and dlt assets write their test results and loads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Union

import dagster as dg

from .audit.resource import AuditResource
from .config import MonitoringConfig, config_from_dict, load_config
from .runtime import MonitoringRuntime
from .sensors.alerts import build_alert_sensor
from .sensors.audit_capture import build_audit_sensor
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
    resources: dict[str, Any] = {}
    if resolved.audit.enabled:
        sensors.append(build_audit_sensor(runtime=runtime, minimum_interval_seconds=audit_interval_seconds, default_status=default_status))
        resources[audit_resource_key] = AuditResource.from_audit_config(resolved.audit)
    return dg.Definitions(sensors=sensors, resources=resources)
