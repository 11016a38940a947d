"""Where the audit trail goes: DuckDB (default, a local file) or BigQuery."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..alerting.config import default_home
from ..alerting.transports._config import SecretValue

_DATASET = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")


class AuditConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="false: no audit rows are written")
    backend: Literal["duckdb", "bigquery"] = Field(default="duckdb", description="duckdb: a local file; bigquery: needs the bigquery extra")
    dataset: str = Field(default="dagster_audit", description="BigQuery dataset / DuckDB schema")
    duckdb_path: str | None = Field(default=None, description="default: $DAGSTER_HOME/dagster_monitoring/audit.duckdb")
    project: str | None = Field(default=None, description="BigQuery project (default: the client's)")
    location: str | None = Field(default=None, description="BigQuery dataset location, e.g. EU")
    api_endpoint: str | None = Field(default=None, description="BigQuery API endpoint override (emulators)")
    credentials_json: SecretValue | None = Field(
        default=None, description="service-account key JSON, {env: NAME}; default: application default credentials"
    )
    spool_dir: str | None = Field(default=None, description="default: next to the state, spool/")
    batch_rows: int = Field(default=500, ge=1, le=50_000, description="rows per insertAll request (BigQuery)")

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, value: str) -> str:
        if not _DATASET.match(value):
            raise ValueError("use letters, digits and underscores, starting with a letter or underscore")
        return value

    @model_validator(mode="after")
    def _backend_fields(self) -> AuditConfig:
        if self.backend == "duckdb" and (self.project or self.location or self.api_endpoint or self.credentials_json):
            raise ValueError("project, location, api_endpoint and credentials_json apply to backend: bigquery only")
        return self

    def resolved_duckdb_path(self) -> Path:
        return Path(self.duckdb_path) if self.duckdb_path else default_home() / "audit.duckdb"

    def resolved_spool_dir(self) -> Path:
        return Path(self.spool_dir) if self.spool_dir else default_home() / "audit_spool"
