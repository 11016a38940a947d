"""The same drop-in as a ``dg`` Component, configured in YAML.

``defs/monitoring/defs.yaml``::

    type: dagster_monitoring.components.MonitoringComponent
    attributes:
      config_file: monitoring.yaml        # relative to this folder, or
      # config: {receivers: [...], routes: [...]}   # the same keys inline

A thin shell: ``build_defs`` calls ``build_monitoring_defs`` exactly as Python users do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from .definitions import build_monitoring_defs


class MonitoringComponent(dg.Component, dg.Resolvable, dg.Model):
    """Stateful alerts (Teams, e-mail, Jira, ServiceNow, ...), the audit trail and a watchdog for this project."""

    config_file: str | None = None
    config: dict[str, Any] | None = None
    alert_interval_seconds: int = 30
    audit_interval_seconds: int = 60

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        if self.config_file and self.config:
            raise ValueError("MonitoringComponent: give config_file or config, not both")
        source: Any = None
        if self.config_file:
            path = Path(self.config_file)
            source = path if path.is_absolute() else context.path / path
        elif self.config is not None:
            source = self.config
        return build_monitoring_defs(
            source, alert_interval_seconds=self.alert_interval_seconds, audit_interval_seconds=self.audit_interval_seconds
        )
