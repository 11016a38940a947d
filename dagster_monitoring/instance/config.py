"""The ``instance:`` section: alerts about the Dagster instance itself, not about one run.

instance:
  tick_failures: {min_failures: 2}           # the dagster_monitoring_ticks sensor
  daemons: {stale_after: 3m}                 # `dagster-monitoring watch`
  code_locations: {severity: error}          # `dagster-monitoring watch --workspace ...`
  asset_health: {warning: warn, degraded: error}
  workspace: /opt/dagster/workspace.yaml     # what `watch` loads (its --workspace wins)
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..alerting.durations import Duration
from ..alerting.events import Severity


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _severity(value: object) -> Severity:
    return Severity.parse(value)  # type: ignore[arg-type]


class TickFailuresConfig(_Strict):
    """Every schedule and sensor of the instance (not only ours): failing ticks are an alert."""

    enabled: bool = Field(default=True, description="build the dagster_monitoring_ticks sensor")
    min_failures: int = Field(default=1, ge=1, description="failed ticks in a row before the alert opens")
    severity: Severity = Field(default=Severity.ERROR, description="severity of a failing schedule or sensor")

    _sev = field_validator("severity", mode="before")(classmethod(lambda cls, v: _severity(v)))


class DaemonsConfig(_Strict):
    """The daemon's heartbeats, read by `dagster-monitoring watch` (a sensor cannot see its own daemon die)."""

    stale_after: Duration = Field(
        default=timedelta(minutes=3), description="a daemon whose last heartbeat is older than this is down (it beats every 30s)"
    )
    severity: Severity = Field(default=Severity.CRITICAL, description="severity of a daemon that is down")
    monitoring_sensors: bool = Field(
        default=True, description="also alert on silent or failing monitoring sensors (their heartbeats in the state DB)"
    )

    _sev = field_validator("severity", mode="before")(classmethod(lambda cls, v: _severity(v)))

    @field_validator("stale_after")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive")
        return value


class CodeLocationsConfig(_Strict):
    """Code locations of the workspace that `watch` loads: a load error is an alert."""

    enabled: bool = Field(default=True, description="report code locations whose load raised")
    severity: Severity = Field(default=Severity.ERROR, description="severity of a code location that fails to load")

    _sev = field_validator("severity", mode="before")(classmethod(lambda cls, v: _severity(v)))


class AssetHealthConfig(_Strict):
    """Dagster's asset health (checks, freshness, materializations) of every asset the workspace defines."""

    enabled: bool = Field(default=True, description="alert when an asset's health changes (read by `watch`)")
    warning: Severity = Field(default=Severity.WARN, description="severity of an asset in WARNING health")
    degraded: Severity = Field(default=Severity.ERROR, description="severity of an asset in DEGRADED health")

    _sev = field_validator("warning", "degraded", mode="before")(classmethod(lambda cls, v: _severity(v)))


class InstanceConfig(_Strict):
    tick_failures: TickFailuresConfig = Field(default=TickFailuresConfig(), description="failing schedule and sensor ticks (a sensor)")
    daemons: DaemonsConfig = Field(default=DaemonsConfig(), description="stale daemon heartbeats (`watch`)")
    code_locations: CodeLocationsConfig = Field(default=CodeLocationsConfig(), description="code locations that fail to load (`watch`)")
    asset_health: AssetHealthConfig = Field(default=AssetHealthConfig(), description="asset health changes (`watch`)")
    workspace: str | None = Field(
        default=None, description="workspace.yaml that `watch` loads for code locations and asset health (its --workspace wins)"
    )
