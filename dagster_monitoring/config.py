"""MonitoringConfig: the one file a project writes, loaded from YAML or built in Python.

It is the alerting config (receivers, routes, owners, policy, silences, delivery, state) plus
the settings the Dagster side needs. Sections for the audit trail and the Dagster integration
are added by their modules; unknown keys are errors, named with their path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .alerting.config import AlertingConfig, ConfigError, read_yaml, validate_config
from .alerting.durations import Duration
from .audit.config import AuditConfig
from .instance.config import InstanceConfig
from .report.config import DigestConfig, ExportConfig
from .sources.config import SourcesConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FreshnessChecksConfig(_Strict):
    """Assets that must be updated within ``warn_after`` (WARN) / ``fail_after`` (ERROR)."""

    assets: tuple[str, ...] = Field(min_length=1, description="asset keys, e.g. loans/fct_loans")
    warn_after: Duration = Field(description="WARN when the last update is older than this")
    fail_after: Duration = Field(description="ERROR when the last update is older than this")
    cron_schedule: str = Field(default="*/15 * * * *", description="when the checks are evaluated")
    name: str | None = Field(default=None, description="name of the job and schedule; default dagster_monitoring_freshness")

    @model_validator(mode="after")
    def _order(self) -> FreshnessChecksConfig:
        if not timedelta(0) < self.warn_after <= self.fail_after:
            raise ValueError("need 0 < warn_after <= fail_after")
        return self


class DltChecksConfig(_Strict):
    """Row-count and schema-drift checks on dagster-dlt assets."""

    assets: tuple[str, ...] = Field(min_length=1, description="asset keys of dlt tables, e.g. dlt_lending_loans")
    min_rows: int | None = Field(default=None, ge=0, description="fail when a load has fewer rows")
    max_drop: float | None = Field(
        default=0.5, ge=0, le=1, description="fail when a load drops by more than this fraction against the trailing average"
    )
    trailing_loads: int = Field(default=5, ge=1, description="loads in the trailing average")
    drift_severity: Literal["WARN", "ERROR"] = Field(default="WARN", description="severity of a schema change")
    row_count_severity: Literal["WARN", "ERROR"] = Field(default="ERROR", description="severity of a row-count failure")
    checks: tuple[Literal["schema_drift", "row_count"], ...] = Field(
        default=("schema_drift", "row_count"), description="which checks to build"
    )


class ChecksConfig(_Strict):
    freshness: tuple[FreshnessChecksConfig, ...] = ()
    dlt: tuple[DltChecksConfig, ...] = ()


class RunDurationConfig(_Strict):
    """Runs still in progress past their limit alert (kind `run_too_long`, one incident per job) and
    recover when they end; the alert sensor looks at the in-progress runs every tick. A run's limit
    is its tag `dagster-monitoring/max_runtime` (`30m`; `off`: none), else `limits`, else
    `default_limit`, else `p95_multiplier` × the p95 duration of the job's last `history_runs`
    successful runs once there are `min_history_runs` of them."""

    enabled: bool = Field(default=True, description="check the runs in progress on every alert-sensor tick")
    limits: dict[str, Duration] = Field(
        default_factory=dict, description="longest run per job name or glob (`loans_daily: 30m`, `'nightly_*': 2h`)"
    )
    default_limit: Duration | None = Field(default=None, description="longest run of any other job; null: only the history")
    p95_multiplier: float | None = Field(
        default=2.0, gt=1.0, description="a run is too long past this many times the job's p95 duration; null: no limit from history"
    )
    min_history_runs: int = Field(default=5, ge=1, description="successful runs a job needs before its p95 sets a limit")
    history_runs: int = Field(default=20, ge=1, description="latest successful runs the p95 is taken over")
    severity: Literal["WARN", "ERROR", "CRITICAL"] = Field(default="WARN", description="severity of a run-too-long alert")

    @field_validator("limits")
    @classmethod
    def _positive_limits(cls, value: dict[str, timedelta]) -> dict[str, timedelta]:
        bad = [job for job, limit in value.items() if limit <= timedelta(0)]
        if bad:
            raise ValueError(f"every limit must be longer than 0s, not that of {', '.join(map(repr, bad))}")
        return value

    @field_validator("default_limit")
    @classmethod
    def _positive_default(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value

    @model_validator(mode="after")
    def _history(self) -> RunDurationConfig:
        if self.history_runs < self.min_history_runs:
            raise ValueError(f"history_runs ({self.history_runs}) must be at least min_history_runs ({self.min_history_runs})")
        return self


class MonitoringConfig(AlertingConfig):
    audit: AuditConfig = Field(default=AuditConfig(), description="the audit trail: DuckDB (default) or BigQuery")
    checks: ChecksConfig = Field(default=ChecksConfig(), description="freshness and dlt checks the drop-in adds")
    sources: SourcesConfig = Field(
        default=SourcesConfig(), description="external job systems (Fivetran, dbt Cloud) polled by sensors or pushed to `serve`"
    )
    dagster_base_url: str | None = Field(
        default=None,
        description="webserver URL used for run and asset-check links, e.g. https://dagster.example.com",
    )
    instance: InstanceConfig = Field(
        default=InstanceConfig(),
        description="alerts about the instance: schedule / sensor tick failures, code locations, daemons, asset health",
    )
    run_duration: RunDurationConfig = Field(
        default=RunDurationConfig(), description="runs in progress for longer than their limit (tag, per job, or the p95 of past runs)"
    )
    digest: DigestConfig | None = Field(
        default=None, description="the on-call report on a schedule: e-mailed, and a summary card in Teams; off when absent"
    )

    export: ExportConfig | None = Field(
        default=None, description="the weekly BI export: Parquet / CSV files of the audit tables to a folder or bucket; off when absent"
    )

    @field_validator("dagster_base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _export_needs_audit(self) -> MonitoringConfig:
        if self.export is not None and not self.audit.enabled:
            raise ValueError("export: needs the audit trail (audit.enabled: true)")
        return self

    @model_validator(mode="after")
    def _digest_receivers(self) -> MonitoringConfig:
        digest = self.digest
        if digest is None:
            return self
        problems = []
        if not self.audit.enabled:
            problems.append("digest: needs the audit trail (audit.enabled: true)")
        by_name = {r.name: r for r in self.receivers}
        for where, name, kind in (
            ("digest.email.receiver", digest.email.receiver if digest.email else None, "email"),
            ("digest.teams.receiver", digest.teams.receiver if digest.teams else None, "teams"),
        ):
            if name is None:
                continue
            if name not in by_name:
                problems.append(f"{where}: unknown receiver {name!r} (known: {sorted(by_name) or 'none'})")
            elif by_name[name].type != kind:
                problems.append(f"{where}: receiver {name!r} is of type {by_name[name].type}, not {kind}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def load_config(path: str | os.PathLike[str], *, missing_env: list[str] | None = None) -> MonitoringConfig:
    """Load and validate a YAML file; raises :class:`ConfigError` naming every bad field.
    ``missing_env``: collect unset ``{env: NAME}`` secrets there instead of failing (checks only)."""
    return validate_config(MonitoringConfig, read_yaml(path), str(path), missing_env=missing_env)


def config_from_dict(data: Mapping[str, Any]) -> MonitoringConfig:
    """Validate a Python mapping (plain-string secrets allowed here, unlike in files)."""
    return validate_config(MonitoringConfig, data, "python mapping", from_file=False)


__all__ = ["ConfigError", "MonitoringConfig", "config_from_dict", "load_config"]
