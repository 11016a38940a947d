"""MonitoringConfig: the one file a project writes, loaded from YAML or built in Python.

It is the alerting config (receivers, routes, owners, policy, silences, delivery, state) plus
the settings the Dagster side needs. Sections for the audit trail and the Dagster integration
are added by their modules; unknown keys are errors, named with their path.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from pydantic import Field, field_validator

from .alerting.config import AlertingConfig, ConfigError, read_yaml, validate_config
from .audit.config import AuditConfig


class MonitoringConfig(AlertingConfig):
    audit: AuditConfig = AuditConfig()
    dagster_base_url: str | None = Field(
        default=None,
        description="webserver URL used for run and asset-check links, e.g. https://dagster.example.com",
    )

    @field_validator("dagster_base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


def load_config(path: str | os.PathLike[str]) -> MonitoringConfig:
    """Load and validate a YAML file; raises :class:`ConfigError` naming every bad field."""
    return validate_config(MonitoringConfig, read_yaml(path), str(path))


def config_from_dict(data: Mapping[str, Any]) -> MonitoringConfig:
    """Validate a Python mapping (plain-string secrets allowed here, unlike in files)."""
    return validate_config(MonitoringConfig, data, "python mapping", from_file=False)


__all__ = ["ConfigError", "MonitoringConfig", "config_from_dict", "load_config"]
