"""Receivers: one module each, one protocol (:class:`~.base.Transport`).

``build_transports`` turns validated receiver configs into transports through one registry,
so adding a receiver type is one entry here and one module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .base import DeliveryResult, Transport, classify_http
from .email import EmailConfig, EmailTransport
from .file import FileConfig, FileTransport
from .jira import JiraConfig, JiraTransport
from .servicenow import ServiceNowConfig, ServiceNowTransport
from .teams import TeamsConfig, TeamsTransport
from .webhook import WebhookConfig, WebhookTransport

TRANSPORTS: dict[str, Callable[[Any], Transport]] = {
    "teams": TeamsTransport,
    "email": EmailTransport,
    "webhook": WebhookTransport,
    "file": FileTransport,
    "jira": JiraTransport,
    "servicenow": ServiceNowTransport,
}


def build_transports(configs: Iterable[Any]) -> dict[str, Transport]:
    return {cfg.name: TRANSPORTS[cfg.type](cfg) for cfg in configs}


__all__ = [
    "DeliveryResult",
    "Transport",
    "classify_http",
    "build_transports",
    "TRANSPORTS",
    "EmailConfig",
    "EmailTransport",
    "FileConfig",
    "FileTransport",
    "JiraConfig",
    "JiraTransport",
    "ServiceNowConfig",
    "ServiceNowTransport",
    "TeamsConfig",
    "TeamsTransport",
    "WebhookConfig",
    "WebhookTransport",
]
