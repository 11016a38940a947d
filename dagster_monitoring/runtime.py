"""MonitoringRuntime: the router, the audit trail and the translator a code location shares.

Sensors are evaluated again and again in one long-lived process (the code server); building a
router opens a database and HTTP sessions, so it is built once, on first use, and reused. The
router's decisions and deliveries are written to the audit trail (``alert_notifications``).
"""

from __future__ import annotations

import threading
from functools import cached_property

from .alerting.router import AlertRouter
from .audit.alert_records import attach_audit, external_job_writer
from .audit.trail import AuditTrail
from .config import MonitoringConfig
from .sources.ingest import SourceIngest
from .translator import DagsterAlertTranslator, DagsterAlertTranslatorSettings


class MonitoringRuntime:
    def __init__(self, config: MonitoringConfig, translator: DagsterAlertTranslator | None = None) -> None:
        self.config = config
        self.translator = translator or DagsterAlertTranslator(
            DagsterAlertTranslatorSettings(
                base_url=config.dagster_base_url, default_owners=(config.default_owner,) if config.default_owner else ()
            )
        )
        self._lock = threading.Lock()
        self.sensor_kinds: dict[str, str] = {}  # monitoring sensors built on this runtime: name -> kind (alerts, audit)

    @cached_property
    def trail(self) -> AuditTrail | None:
        return AuditTrail.from_config(self.config.audit) if self.config.audit.enabled else None

    @cached_property
    def router(self) -> AlertRouter:
        with self._lock:
            router = AlertRouter(self.config)
            trail = self.trail
            if trail is not None:
                attach_audit(router, trail)
            return router

    @cached_property
    def source_ingest(self) -> SourceIngest:
        """External sources' events go through here: their settle delay, then the router, then
        ``external_job_runs`` rows in the audit trail."""
        trail = self.trail
        return SourceIngest(self.router, self.config.sources, on_events=external_job_writer(trail) if trail is not None else None)
