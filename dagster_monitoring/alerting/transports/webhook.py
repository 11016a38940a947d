"""A generic JSON webhook: the notification as a stable, versioned JSON document."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..notification import Notification
from ..redact import redact_url
from ._config import ReceiverConfigBase, SecretValue
from .base import DeliveryResult, HttpJsonPoster, post_and_classify

PAYLOAD_VERSION = 1


class WebhookConfig(ReceiverConfigBase):
    type: Literal["webhook"] = "webhook"
    url: SecretValue
    headers: dict[str, SecretValue] = Field(default_factory=dict, description="e.g. Authorization: {env: HOOK_TOKEN}")


def build_payload(notification: Notification) -> dict[str, Any]:
    """The notification's JSON, so ``Notification.from_dict(payload)`` rebuilds it, plus a title,
    facts and next action. For a group the top level is the lead and ``members`` holds the other
    members (each in the same shape, with its own incident and transition); ``also_affected`` the
    downstream alerts inhibition folded in; ``group_size`` counts the lead and its members."""
    data = notification.to_dict()
    data.setdefault("members", [])
    data.setdefault("also_affected", [])
    data["group_size"] = len(notification.group)
    data["version"] = PAYLOAD_VERSION
    data["title"] = notification.title
    data["facts"] = dict(notification.facts())
    data["next_action"] = notification.next_action
    return data


class WebhookTransport:
    def __init__(self, config: WebhookConfig, *, poster: HttpJsonPoster | None = None) -> None:
        self.config = config
        self.name = config.name
        headers = {k: v.get_secret_value() for k, v in config.headers.items()}
        self.poster = poster or HttpJsonPoster(timeout=config.timeout.total_seconds(), headers=headers)

    def render(self, notification: Notification) -> dict[str, Any]:
        return build_payload(notification)

    def send(self, notification: Notification) -> DeliveryResult:
        url = self.config.url.get_secret_value()
        result = post_and_classify(self.poster, url, self.render(notification))
        if result.ok:
            return result
        return DeliveryResult.failure(
            f"webhook {redact_url(url)}: {result.error}",
            retryable=result.retryable,
            status_code=result.status_code,
            retry_after=result.retry_after,
        )
