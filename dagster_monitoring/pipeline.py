"""The router and audit trail a process outside Dagster builds: ``serve`` and the AWS Lambda handler.

The same wiring as a code location's :class:`~dagster_monitoring.runtime.MonitoringRuntime`
(decisions and deliveries to ``alert_notifications``), without importing Dagster, so ``serve``
starts in a second and a Lambda cold start does not load it.
"""

from __future__ import annotations

from .alerting.router import AlertRouter
from .audit.alert_records import attach_audit
from .audit.trail import AuditTrail
from .config import MonitoringConfig


def build_pipeline(config: MonitoringConfig) -> tuple[AlertRouter, AuditTrail | None]:
    """The router with its audit hooks, and the trail (None when ``audit.enabled`` is false)."""
    router = AlertRouter(config)
    trail = AuditTrail.from_config(config.audit) if config.audit.enabled else None
    if trail is not None:
        attach_audit(router, trail)
    return router, trail
