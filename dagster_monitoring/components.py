"""The module ``dg`` scans for components (entry point ``dagster_dg_cli.registry_modules``)."""

from .component import MonitoringComponent

__all__ = ["MonitoringComponent"]
