"""The one shape every receiver has.

A transport renders a :class:`Notification` into its payload and tries to send it once. It never
sleeps, loops, retries or picks receivers: it only says whether the attempt worked and, if not,
whether trying again could help (Alertmanager's ``(retry bool, err)``). The outbox owns backoff.
Exceptions out of ``send`` mean a bug; expected failures come back as a :class:`DeliveryResult`.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol, runtime_checkable

import requests

from ..notification import Notification
from ..redact import describe_error, protect_third_party_loggers, redact

# urllib3 quotes request URLs (path and query: a webhook's signature) in its DEBUG lines.
protect_third_party_loggers()

DEFAULT_RETRY_CODES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    retryable: bool = False
    retry_after: float | None = None  # seconds, from Retry-After
    external_id: str | None = None  # a ticket key, a message id
    external_url: str | None = None
    ticket: bool = False  # external_id is a ticket the incident keeps (later cards link it; updates reuse it)
    status_code: int | None = None
    error: str | None = None  # already redacted

    @classmethod
    def success(
        cls, status_code: int | None = None, external_id: str | None = None, external_url: str | None = None, *, ticket: bool = False
    ) -> DeliveryResult:
        return cls(ok=True, status_code=status_code, external_id=external_id, external_url=external_url, ticket=ticket)

    @classmethod
    def failure(cls, error: str, *, retryable: bool, status_code: int | None = None, retry_after: float | None = None) -> DeliveryResult:
        return cls(ok=False, retryable=retryable, status_code=status_code, retry_after=retry_after, error=redact(error))


@runtime_checkable
class Transport(Protocol):
    """What the router needs from a receiver."""

    name: str

    def render(self, notification: Notification) -> Any:
        """The exact payload ``send`` would deliver (used by ``send-test --dry-run``)."""

    def send(self, notification: Notification) -> DeliveryResult:
        """Attempt delivery once."""


def opens_tickets(transport: object | None) -> bool:
    """A ticket receiver (Jira, ServiceNow: ``opens_tickets = True``): delivered to first, never
    grouped, and the only kind whose tickets an incident remembers."""
    return bool(getattr(transport, "opens_tickets", False))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = now or datetime.now(timezone.utc)
    return max((when - now).total_seconds(), 0.0)


def classify_http(
    status: int,
    headers: Mapping[str, str],
    *,
    retry_codes: frozenset[int] = DEFAULT_RETRY_CODES,
    body_hint: str = "",
) -> DeliveryResult:
    """2xx succeeds; listed codes retry (429 honouring Retry-After); anything else is fatal."""
    if 200 <= status < 300:
        return DeliveryResult.success(status_code=status)
    retryable = status in retry_codes or status >= 500
    hint = f": {redact(body_hint)[:200]}" if body_hint else ""  # redact first: a cut secret is not masked
    return DeliveryResult.failure(
        f"HTTP {status}{hint}",
        retryable=retryable,
        status_code=status,
        retry_after=parse_retry_after(headers.get("Retry-After")) if retryable else None,
    )


PostJSON = Callable[..., requests.Response]


class HttpJsonPoster:
    """A requests session with the transport's timeout; one POST, no hidden retries."""

    def __init__(self, timeout: float, headers: Mapping[str, str] | None = None, verify: bool | str = True) -> None:
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"Content-Type": "application/json", "User-Agent": "dagster-monitoring"})
        if headers:
            self.session.headers.update(headers)
        self.verify = verify

    def request(self, method: str, url: str, payload: Any | None = None, **kwargs: Any) -> requests.Response:
        data = None if payload is None else json.dumps(payload, separators=(",", ":"), default=str).encode("utf-8")
        return self.session.request(method, url, data=data, timeout=self.timeout, verify=self.verify, **kwargs)

    def post(self, url: str, payload: Any) -> requests.Response:
        return self.request("POST", url, payload)


def post_and_classify(
    poster: HttpJsonPoster,
    url: str,
    payload: Any,
    *,
    retry_codes: frozenset[int] = DEFAULT_RETRY_CODES,
) -> DeliveryResult:
    """POST once and turn the outcome into a DeliveryResult; network errors are retryable."""
    try:
        response = poster.post(url, payload)
    except requests.Timeout as exc:
        return DeliveryResult.failure(f"timeout after {poster.timeout:g}s ({describe_error(exc)})", retryable=True)
    except requests.RequestException as exc:
        return DeliveryResult.failure(describe_error(exc), retryable=True)
    return classify_http(response.status_code, response.headers, retry_codes=retry_codes, body_hint=response.text[:4000])
