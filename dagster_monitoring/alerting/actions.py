"""Signed card links: "Acknowledge" and "Silence 4 h" as plain ``Action.OpenUrl`` buttons.

Teams Workflows webhooks post cards that cannot run ``Action.Submit`` (nothing would receive
it), so a card's buttons are links to ``dagster-monitoring serve``: ``{base_url}/actions/{token}``.

A token is ``base64url(payload JSON) + "." + base64url(HMAC-SHA256(signing_key, first part))``;
the payload names the action, the incidents it acts on (fingerprint and incident id each), its
expiry and a random nonce. The endpoint checks the signature (constant-time), the expiry, and
that the nonce was not used (one row per used nonce in the state DB), so a link acts once, until
it expires, and only as signed. Tokens are bearer links: whoever holds one can acknowledge or
silence those incidents, nothing else; they sit in the outbox and in the sent card, never in logs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .durations import Duration, human_duration
from .lifecycle import Transition
from .notification import Notification
from .silences import ACK, SILENCE
from .transports._config import BaseUrl, SecretValue

ACTIONS = (ACK, SILENCE)  # what a link does: acknowledge the incidents, or silence them
MAX_LINK_INCIDENTS = 10  # a bigger group gets no action buttons (its URL would not fit a card); use the CLI
MAX_TOKEN_CHARS = 4096
MIN_KEY_CHARS = 32


class ActionsConfig(BaseModel):
    """Acknowledge / silence buttons on failing Teams cards (and links in e-mails), served by
    ``dagster-monitoring serve`` at ``{base_url}/actions/...``. Off when absent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: BaseUrl = Field(description="public https URL where `dagster-monitoring serve` is reachable, e.g. https://alerts.example.com")
    signing_key: SecretValue = Field(description=f"HMAC key for the links, {{env: NAME}}; at least {MIN_KEY_CHARS} characters")
    link_ttl: Duration = Field(default=timedelta(days=7), description="a link works this long after its card was made")
    silence_duration: Duration = Field(default=timedelta(hours=4), description="how long the Silence button silences the incident")

    @field_validator("signing_key")
    @classmethod
    def _key(cls, value: object) -> object:
        secret = getattr(value, "get_secret_value", lambda: "")()
        if len(secret) < MIN_KEY_CHARS and not secret.startswith("unset-"):  # a placeholder when checking without the env
            raise ValueError(
                f"must be at least {MIN_KEY_CHARS} characters (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return value

    @model_validator(mode="after")
    def _positive(self) -> ActionsConfig:
        for name in ("link_ttl", "silence_duration"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be longer than 0s")
        return self


class ActionRefused(Exception):
    """A link that must not act; ``status`` is the HTTP answer (403 forged, 410 expired, 409 used)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class ActionToken:
    action: str
    incidents: tuple[tuple[str, str], ...]  # (fingerprint, incident id)
    expires_at: datetime
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: str, body: str) -> bytes:
    return hmac.new(key.encode("utf-8"), body.encode("ascii"), hashlib.sha256).digest()


def sign_token(key: str, action: str, incidents: Sequence[tuple[str, str]], expires_at: datetime, nonce: str | None = None) -> str:
    payload = {
        "action": action,
        "incidents": [[fp, incident_id] for fp, incident_id in incidents],
        "exp": int(expires_at.timestamp()),
        "nonce": nonce or secrets.token_urlsafe(12),
    }
    body = _b64(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
    return f"{body}.{_b64(_mac(key, body))}"


def verify_token(key: str, token: str, now: datetime) -> ActionToken:
    """The token's payload, or :class:`ActionRefused`: a bad signature (or a malformed token) is
    403, an expired one 410. The signature is checked before the payload is even parsed."""
    body, sep, signature = token.partition(".")
    if not sep or not body or not signature or len(token) > MAX_TOKEN_CHARS:
        raise ActionRefused(403, "malformed link")
    try:
        given = _unb64(signature)
        if not body.isascii():
            raise ValueError
    except (ValueError, binascii.Error):
        raise ActionRefused(403, "malformed link") from None
    if not hmac.compare_digest(given, _mac(key, body)):
        raise ActionRefused(403, "bad signature")
    try:
        data = json.loads(_unb64(body))
        action, exp, nonce = data["action"], data["exp"], data["nonce"]
        incidents = tuple((str(fp), str(incident)) for fp, incident in data["incidents"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ActionRefused(403, "malformed link") from None
    if action not in ACTIONS or not incidents or not isinstance(exp, int) or not isinstance(nonce, str) or not nonce:
        raise ActionRefused(403, "malformed link")
    expires_at = datetime.fromtimestamp(exp, tz=timezone.utc)
    if now >= expires_at:
        raise ActionRefused(410, "link expired")
    return ActionToken(action, incidents, expires_at, nonce)


class ActionLinks:
    """Makes the two links of a failing notification (not of recoveries)."""

    def __init__(self, config: ActionsConfig) -> None:
        self.config = config
        self._key = config.signing_key.get_secret_value()
        self.silence_title = f"Silence {human_duration(config.silence_duration)}"

    def url(self, token: str) -> str:
        return f"{self.config.base_url}/actions/{token}"

    def for_notification(self, notification: Notification, now: datetime) -> tuple[tuple[str, str], ...]:
        incidents = [
            (m.incident.fingerprint, m.incident.incident_id) for m in notification.group if m.transition is not Transition.RECOVERED
        ]
        if not incidents or notification.transition is Transition.RECOVERED or len(incidents) > MAX_LINK_INCIDENTS:
            return ()
        expires_at = now + self.config.link_ttl
        n = len(incidents)
        ack_title = f"Acknowledge all {n}" if n > 1 else "Acknowledge"
        silence_title = f"Silence all {n} for {human_duration(self.config.silence_duration)}" if n > 1 else self.silence_title
        return (
            (ack_title, self.url(sign_token(self._key, ACK, incidents, expires_at))),
            (silence_title, self.url(sign_token(self._key, SILENCE, incidents, expires_at))),
        )
