"""Shared test builders: events, a simulated clock, routers on a temp SQLite store."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Mapping

from dagster_monitoring.alerting import AlertEvent, AlertingConfig, AlertRouter, Severity, Status
from dagster_monitoring.config import config_from_dict

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)


class SimClock:
    """A clock tests move by hand; the router reads it through ``clock=``."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


def make_event(
    entity: str = "loans_daily",
    status: Status | str = Status.FAILING,
    at: datetime | None = None,
    *,
    source: str = "dagster",
    kind: str = "run",
    severity: Severity | str = Severity.ERROR,
    **extra: Any,
) -> AlertEvent:
    return AlertEvent(
        source=source, kind=kind, entity=entity, status=Status(status), severity=Severity.parse(severity),
        occurred_at=at or T0, summary=extra.pop("summary", f"{kind} {entity} is {Status(status).value}"),
        owners=tuple(extra.pop("owners", ("team:data-eng",))), **extra,
    )


def file_config(tmp_path: Path, **overrides: Any) -> AlertingConfig:
    data: dict[str, Any] = {
        "receivers": [{"type": "file", "name": "file", "path": str(tmp_path / "sent.jsonl")}],
        "routes": [{"receivers": ["file"]}],
        "policy": {"repeat_interval": "4h", "flap_window": "0s"},
        "state": {"path": str(tmp_path / "state.db")},
    }
    data.update(overrides)
    return config_from_dict(data)


def make_router(config: AlertingConfig | Mapping[str, Any], clock: SimClock | None = None, **kwargs: Any) -> AlertRouter:
    if not isinstance(config, AlertingConfig):
        config = config_from_dict(config)
    kwargs.setdefault("sleep", lambda seconds: None)
    return AlertRouter(config, clock=clock or SimClock(), **kwargs)
