"""The alert core: plain Python, no Dagster import (a test proves it).

Sources adapt what they see into :class:`AlertEvent`; :class:`AlertRouter` keeps per-fingerprint
state (new / ongoing / recovered), applies policy and routes, and delivers through transports
via a durable outbox.
"""

from .config import AlertingConfig, ConfigError, DeliveryConfig, StateConfig, load_alerting_config
from .events import AlertEvent, Severity, Status, make_fingerprint, short_hash
from .lifecycle import IncidentState, Observation, Phase, Transition
from .notification import IncidentSnapshot, Notification
from .outbox import DeliveryOutcome
from .policy import EscalationRule, PolicyConfig, Route, Silence
from .router import AlertRouter, Decision, RouterResult
from .state import SqlStateStore
from .transports import DeliveryResult, Transport, build_transports

__all__ = [
    "AlertEvent",
    "AlertRouter",
    "AlertingConfig",
    "ConfigError",
    "Decision",
    "DeliveryConfig",
    "DeliveryOutcome",
    "DeliveryResult",
    "EscalationRule",
    "IncidentSnapshot",
    "IncidentState",
    "Notification",
    "Observation",
    "Phase",
    "PolicyConfig",
    "Route",
    "RouterResult",
    "Severity",
    "Silence",
    "SqlStateStore",
    "StateConfig",
    "Status",
    "Transition",
    "Transport",
    "build_transports",
    "load_alerting_config",
    "make_fingerprint",
    "short_hash",
]
