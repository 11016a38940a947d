"""Alerting config: receivers, routes, owners, policy, silences, delivery and state.

Validated in two layers, like Alertmanager: each receiver checks its own fields, then
:class:`AlertingConfig` checks cross-references (a route naming an unknown receiver) and reports
every problem at once. Unknown keys are errors, so a typo fails at load time, not at 03:00.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .actions import ActionsConfig
from .durations import Duration
from .policy import PolicyConfig, Route, Silence
from .transports import TRANSPORTS, EmailConfig, FileConfig, JiraConfig, ServiceNowConfig, TeamsConfig, WebhookConfig
from .transports._config import SecretValue

ReceiverConfig = Annotated[
    TeamsConfig | EmailConfig | WebhookConfig | FileConfig | JiraConfig | ServiceNowConfig,
    Field(discriminator="type"),
]


class ConfigError(ValueError):
    """Invalid configuration; the message names every offending field."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        where = f" in {source}" if source else ""
        super().__init__(f"invalid dagster-monitoring config{where}:\n" + "\n".join(f"  - {p}" for p in problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DeliveryConfig(_Strict):
    """How hard to try. Nothing is dropped before ``max_delivery_age``."""

    attempts_per_call: int = Field(default=3, ge=1, le=10, description="tries inside one router call")
    initial_backoff: Duration = Field(default=timedelta(seconds=1), description="first wait after a failed attempt; doubles per attempt")
    max_backoff: Duration = Field(default=timedelta(minutes=15), description="longest wait between attempts")
    max_inline_wait: Duration = Field(
        default=timedelta(seconds=5),
        description="longest pause inside one call (e.g. for Retry-After); longer waits go to the next call",
    )
    max_delivery_age: Duration = Field(default=timedelta(hours=24), description="then dead-lettered with a log line")
    lease: Duration = Field(default=timedelta(minutes=5), description="a claimed delivery is retried by others after this")
    ticket_wait: Duration = Field(
        default=timedelta(seconds=5),
        description="how long cards and e-mails wait for a ticket receiver of the same call, so the first card links the ticket",
    )
    tick_budget: Duration = Field(
        default=timedelta(seconds=10),
        description=(
            "longest a router call (a sensor tick) waits for deliveries; a slower receiver finishes its "
            "in-flight delivery in the background and the rest waits for the next call"
        ),
    )

    @model_validator(mode="after")
    def _budget_within_lease(self) -> DeliveryConfig:
        if self.tick_budget >= self.lease:
            raise ValueError("tick_budget must be shorter than lease (a delivery still running would be claimed twice)")
        return self


def default_home() -> Path:
    """Where the package keeps its files: ``$DAGSTER_HOME/dagster_monitoring``, else
    ``./.dagster_monitoring`` (alert state, the DuckDB audit file, the spool)."""
    home = os.environ.get("DAGSTER_HOME")
    return Path(home) / "dagster_monitoring" if home else Path.cwd() / ".dagster_monitoring"


def default_state_path() -> Path:
    return default_home() / "alert_state.db"


class StateConfig(_Strict):
    """Where alert memory lives: a SQLite file by default, or a database URL (e.g. the Postgres
    your Dagster instance uses) given through an environment variable because it holds a password."""

    path: str | None = Field(default=None, description="SQLite file; default $DAGSTER_HOME/dagster_monitoring/alert_state.db")
    url: SecretValue | None = Field(default=None, description="SQLAlchemy URL, e.g. {env: MONITORING_STATE_URL}")
    lock_timeout: Duration = Field(
        default=timedelta(seconds=10), description="how long to wait for a SQLite file another process holds, then fail the tick"
    )

    @model_validator(mode="after")
    def _one(self) -> StateConfig:
        if self.path and self.url:
            raise ValueError("give either path or url, not both")
        return self

    def sqlalchemy_url(self) -> str:
        if self.url is not None:
            return self.url.get_secret_value()
        path = Path(self.path) if self.path else default_state_path()
        return f"sqlite:///{path}"


class AlertingConfig(_Strict):
    receivers: tuple[ReceiverConfig, ...] = Field(default=(), description="where alerts can go; each has a unique name and a type")
    routes: tuple[Route, ...] = Field(default=(), description="which alerts go to which receivers; first match wins unless continue")
    owners: dict[str, tuple[str, ...]] = Field(default_factory=dict, description="owner (team:x, e-mail) -> receivers")
    default_receivers: tuple[str, ...] = Field(default=(), description="used when no route or owner matches")
    default_owner: str | None = Field(
        default=None,
        description="owner of alerts nothing else names an owner for (the watchdog, the monitoring itself), e.g. team:data-platform",
    )
    fallback_receivers: tuple[str, ...] = Field(
        default=(),
        description=(
            "told when the monitoring itself cannot work (its state DB broken), sent without the state DB; "
            "default: whoever the routes pick for a CRITICAL dagster-monitoring alert"
        ),
    )
    policy: PolicyConfig = Field(default=PolicyConfig(), description="reminders, flap damping, escalation")
    silences: tuple[Silence, ...] = Field(
        default=(),
        description="mute matching incidents until they expire (`dagster-monitoring silence add` keeps others in the state DB)",
    )
    actions: ActionsConfig | None = Field(
        default=None,
        description="signed Acknowledge / Silence links on failing cards, served by `dagster-monitoring serve`; off when absent",
    )
    delivery: DeliveryConfig = Field(default=DeliveryConfig(), description="retries and backoff per receiver")
    state: StateConfig = Field(default=StateConfig(), description="where incident state is kept")

    @model_validator(mode="after")
    def _cross_references(self) -> AlertingConfig:
        problems: list[str] = []
        names = [r.name for r in self.receivers]
        seen: set[str] = set()
        for name in names:
            if name in seen:
                problems.append(f"receivers: duplicate receiver name {name!r}")
            seen.add(name)
        known = set(names)

        def check(where: str, refs: tuple[str, ...]) -> None:
            for ref in refs:
                if ref not in known:
                    problems.append(f"{where}: unknown receiver {ref!r} (known: {sorted(known) or 'none'})")

        for i, route in enumerate(self.routes):
            check(f"routes[{i}].receivers", route.receivers)
        for owner, refs in self.owners.items():
            check(f"owners[{owner!r}]", refs)
        check("default_receivers", self.default_receivers)
        check("fallback_receivers", self.fallback_receivers)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def receiver(self, name: str) -> Any:
        for r in self.receivers:
            if r.name == name:
                return r
        raise KeyError(f"no receiver named {name!r}; configured: {[r.name for r in self.receivers]}")


def format_validation_error(error: ValidationError) -> list[str]:
    """``receivers[0].webhook_url: environment variable X is not set`` style lines."""
    lines = []
    for item in error.errors(include_url=False):
        parts: list[str] = []
        loc = list(item["loc"])
        for i, part in enumerate(loc):
            if isinstance(part, int):
                parts.append(f"[{part}]")
            elif i > 0 and isinstance(loc[i - 1], int) and part in TRANSPORTS:
                continue  # the discriminator tag pydantic adds for union members
            else:
                parts.append(("." if parts else "") + str(part))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        if not parts and ": " in message:  # cross-reference problems already name their field
            lines.extend(message.split("; "))
            continue
        lines.append(f"{''.join(parts) or '(top level)'}: {message}")
    return lines


def validate_config(
    model: type[BaseModel],
    data: Mapping[str, Any] | None,
    source: str | None = None,
    *,
    from_file: bool = True,
    missing_env: list[str] | None = None,
) -> Any:
    """Validate ``data`` against ``model``; raise :class:`ConfigError` naming every bad field.

    ``missing_env``: a list to collect the names of unset ``{env: NAME}`` secrets into, instead of
    failing on them (placeholders stand in; never for sending)."""
    context: dict[str, Any] = {"source": "yaml" if from_file else "python"}
    if missing_env is not None:
        context.update(allow_missing_env=True, missing_env=missing_env)
    try:
        return model.model_validate(data or {}, context=context)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc), source) from None


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read config file: {exc.strerror}"], str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(["the top level must be a mapping of keys"], str(path))
    return data


def load_alerting_config(path: str | os.PathLike[str]) -> AlertingConfig:
    return validate_config(AlertingConfig, read_yaml(path), str(path))
