"""Microsoft Teams through a Workflows (Power Automate) webhook.

The webhook URL carries its own signature, so it is a secret: it is never logged and never
appears in an error. Workflows answer 202 Accepted. A 413 means the card was still too big for
this tenant: the transport retries once at once with a minimal card (header, facts, links).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..notification import Notification
from ..redact import redact_url
from ._config import ReceiverConfigBase, SecretValue
from .base import DeliveryResult, HttpJsonPoster, post_and_classify
from .teams_card import DEFAULT_MAX_BYTES, build_card, build_message, wrap_message
from .teams_mentions import TeamsUser


class TeamsConfig(ReceiverConfigBase):
    """A Teams channel reached through a Workflows webhook."""

    type: Literal["teams"] = "teams"
    webhook_url: SecretValue = Field(description="Workflows webhook URL; from an env var: {env: TEAMS_WEBHOOK_URL}")
    max_payload_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=4_000, le=100_000)
    mentions: dict[str, TeamsUser] = Field(
        default={},
        description="owner -> Teams user ({id: UPN or Entra object id, name: display name}): failing alerts @mention their owners",
    )


class TeamsTransport:
    def __init__(self, config: TeamsConfig, *, poster: HttpJsonPoster | None = None) -> None:
        self.config = config
        self.name = config.name
        self.poster = poster or HttpJsonPoster(timeout=config.timeout.total_seconds())

    def render(self, notification: Notification) -> dict[str, Any]:
        return build_message(notification, self.config.max_payload_bytes, self.config.mentions)

    def send(self, notification: Notification) -> DeliveryResult:
        url = self.config.webhook_url.get_secret_value()
        result = post_and_classify(self.poster, url, self.render(notification))
        if result.status_code == 413:
            minimal = wrap_message(
                build_card(notification, detail_limit=0, include_details=False, members_shown=3, mentions=self.config.mentions)
            )
            result = post_and_classify(self.poster, url, minimal)
        if not result.ok:
            return DeliveryResult.failure(
                f"Teams webhook {redact_url(url)}: {result.error}",
                retryable=result.retryable,
                status_code=result.status_code,
                retry_after=result.retry_after,
            )
        return result
