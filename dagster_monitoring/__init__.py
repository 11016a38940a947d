"""dagster-monitoring: stateful alerts, an audit trail and data-quality checks for Dagster.

``from dagster_monitoring import build_monitoring_defs, MonitoringComponent`` imports Dagster;
the alert core (``dagster_monitoring.alerting``) does not, so these names load lazily.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["MonitoringComponent", "build_monitoring_defs", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "build_monitoring_defs":
        from .definitions import build_monitoring_defs

        return build_monitoring_defs
    if name == "MonitoringComponent":
        from .component import MonitoringComponent

        return MonitoringComponent
    raise AttributeError(f"module 'dagster_monitoring' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
