"""AuditResource: the audit trail as a Dagster resource.

Configured like any ``ConfigurableResource`` (secrets through ``dg.EnvVar``); ``get_trail()``
returns the plain :class:`~.trail.AuditTrail`, so Dagster code writes records the same way
scripts do, and a sink outage spools instead of failing the run.
"""

from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import Field, PrivateAttr

from .config import AuditConfig
from .trail import AuditTrail


class AuditResource(dg.ConfigurableResource):
    """Where audit rows go: DuckDB (a local file, the default) or BigQuery."""

    backend: Literal["duckdb", "bigquery"] = Field(default="duckdb", description="duckdb | bigquery")
    dataset: str = Field(default="dagster_audit", description="BigQuery dataset / DuckDB schema")
    duckdb_path: str | None = Field(default=None, description="default: $DAGSTER_HOME/dagster_monitoring/audit.duckdb")
    project: str | None = Field(default=None, description="BigQuery project")
    location: str | None = Field(default=None, description="BigQuery dataset location, e.g. EU")
    api_endpoint: str | None = Field(default=None, description="BigQuery endpoint override (an emulator)")
    gcp_credentials_json: str | None = Field(default=None, description="service-account key JSON; pass dg.EnvVar('GCP_CREDENTIALS_JSON')")
    spool_dir: str | None = Field(default=None, description="where unwritable batches wait")
    batch_rows: int = Field(default=500, description="rows per BigQuery insertAll request")

    _trail: AuditTrail | None = PrivateAttr(default=None)

    def to_config(self) -> AuditConfig:
        return AuditConfig.model_validate(
            {
                "backend": self.backend,
                "dataset": self.dataset,
                "duckdb_path": self.duckdb_path,
                "project": self.project,
                "location": self.location,
                "api_endpoint": self.api_endpoint,
                "credentials_json": self.gcp_credentials_json,
                "spool_dir": self.spool_dir,
                "batch_rows": self.batch_rows,
            },
            context={"source": "python"},
        )

    def get_trail(self) -> AuditTrail:
        if self._trail is None:
            self._trail = AuditTrail.from_config(self.to_config())
        return self._trail

    @classmethod
    def from_audit_config(cls, config: AuditConfig) -> AuditResource:
        return cls(
            backend=config.backend,
            dataset=config.dataset,
            duckdb_path=config.duckdb_path,
            project=config.project,
            location=config.location,
            api_endpoint=config.api_endpoint,
            gcp_credentials_json=config.credentials_json.get_secret_value() if config.credentials_json else None,
            spool_dir=config.spool_dir,
            batch_rows=config.batch_rows,
        )
