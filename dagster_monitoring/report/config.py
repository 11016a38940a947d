"""``digest:``: when the on-call report is mailed (and summarised in Teams), to whom, about what.

Fields are checked here; receiver names (and their types) are checked by ``MonitoringConfig``,
which knows the receivers, so every problem is reported at load time with its path.
"""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..alerting.transports.email import EmailConfig

DEFAULT_SCHEDULE = "0 6,10,14,18 * * *"


def valid_cron(value: str, example: str) -> str:
    from dagster._utils.schedules import is_valid_cron_string

    if not is_valid_cron_string(value):
        raise ValueError(f"not a valid cron expression: {value!r} (e.g. {example!r})")
    return value


def valid_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (e.g. UTC, Europe/Berlin)") from None
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DigestSmtpConfig(EmailConfig):
    """An SMTP server for the digest alone (the fields of an e-mail receiver; no name needed)."""

    name: str = Field(default="digest", description="shown in logs")
    to: tuple[str, ...] = Field(default=(), description="recipients (or digest.email.to)")


class DigestEmailConfig(_Strict):
    receiver: str | None = Field(default=None, description="an e-mail receiver's name: its server and sender are used")
    smtp: DigestSmtpConfig | None = Field(default=None, description="or an SMTP server of its own: host, port, security, from, ...")
    to: tuple[str, ...] = Field(default=(), description="recipients; default: the receiver's (or smtp's) to")

    @model_validator(mode="after")
    def _one_server(self) -> DigestEmailConfig:
        if (self.receiver is None) == (self.smtp is None):
            raise ValueError("give either receiver (an e-mail receiver's name) or smtp, not both")
        if self.smtp is not None and not (self.to or self.smtp.to):
            raise ValueError("to: give at least one recipient")
        return self


class DigestTeamsConfig(_Strict):
    receiver: str = Field(description="a teams receiver's name: the summary card goes to its webhook")


class DigestConfig(_Strict):
    """The on-call report on a schedule: mailed (HTML + text), and a summary card in Teams."""

    schedule: str = Field(default=DEFAULT_SCHEDULE, description="cron; default 4 times a day")
    timezone: str = Field(default="UTC", description="the schedule's time zone, e.g. Europe/Berlin")
    email: DigestEmailConfig | None = Field(default=None, description="mail the report")
    teams: DigestTeamsConfig | None = Field(default=None, description="post a summary card")
    min_severity: Literal["WARN", "ERROR", "CRITICAL"] = Field(default="WARN", description="failures and alerts at least this severe")
    owners: tuple[str, ...] = Field(default=(), description="only entities with one of these owners; empty: all")
    sources: tuple[str, ...] = Field(default=(), description="only these entity types (job, asset_check, dbt_test) or alert sources")
    title: str = Field(default="Dagster on-call digest", description="the mail's subject and the card's title start with this")
    send_when_empty: bool = Field(default=False, description="also send when nothing is failing and no alert is open")
    name: str = Field(default="dagster_monitoring_digest", description="the job's name; its schedule is this name + _schedule")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return valid_cron(value, DEFAULT_SCHEDULE)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return valid_zone(value)

    @model_validator(mode="after")
    def _somewhere(self) -> DigestConfig:
        if self.email is None and self.teams is None:
            raise ValueError("give email, teams or both: where the digest goes")
        return self


DEFAULT_EXPORT_CRON = "0 6 * * 1"


class ExportConfig(_Strict):
    """The weekly BI export: the last ``days`` days of runs, asset-check evaluations, dbt tests and
    external jobs as Parquet / CSV files under ``url`` (see docs/bi_export.md)."""

    url: str = Field(
        description="a folder or fsspec URL: ./exports, /data/exports, gs://bucket/path (gcsfs), s3://bucket/path (s3fs), memory://x"
    )
    formats: tuple[Literal["parquet", "csv"], ...] = Field(default=("parquet", "csv"), min_length=1, description="file formats to write")
    cron: str = Field(default=DEFAULT_EXPORT_CRON, description="when the schedule exports; default Mondays 06:00")
    timezone: str = Field(default="UTC", description="the schedule's time zone")
    days: int = Field(default=7, ge=1, le=400, description="days of history in each export, ending at the schedule's tick")
    tables: tuple[Literal["runs", "asset_check_evaluations", "dbt_test_results", "external_job_runs"], ...] = Field(
        default=("runs", "asset_check_evaluations", "dbt_test_results", "external_job_runs"), min_length=1, description="tables to export"
    )
    name: str = Field(default="dagster_monitoring_export", description="the job's name; its schedule is this name + _schedule")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return valid_cron(value, DEFAULT_EXPORT_CRON)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return valid_zone(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        import fsspec

        value = value.strip()
        if not value:
            raise ValueError("give a folder or a URL such as gs://bucket/path")
        protocol = value.split("://", 1)[0] if "://" in value else "file"
        if protocol not in fsspec.available_protocols():
            raise ValueError(f"unknown storage protocol {protocol!r} (e.g. a folder, gs://, s3://, az://, memory://)")
        return value
