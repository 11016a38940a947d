"""One call to a JSON REST API, classified: for receivers that read the answer (ticket systems).

Like :func:`.base.post_and_classify`, but for any method, keeping the parsed body, and keeping
"no answer" apart from "refused": a create that got no answer may still have happened, which is
what makes a ticket receiver look its key up before it creates again. Errors name the receiver
and the endpoint (scheme and host, method, path), never a credential: authentication travels in
headers only, and every error text is redacted.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from ..redact import describe_error, redact, redact_url, register_secret
from .base import DEFAULT_RETRY_CODES, DeliveryResult, HttpJsonPoster, classify_http

AUTH_REFUSED = frozenset({401, 403})


def basic_auth(user: str, secret: str) -> str:
    """An ``Authorization: Basic`` value. The encoded pair is registered as a secret too: a
    gateway that echoes the header would otherwise leak the token in base64."""
    encoded = base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
    register_secret(encoded)
    return f"Basic {encoded}"


def check_credentials(
    bearer: object | None, user: str | None, secret: object | None, *, user_field: str, secret_field: str, basic_name: str, bearer_name: str
) -> None:
    """Exactly one way to authenticate: a bearer token, or a user and its secret."""
    if bearer is not None:
        if user or secret is not None:
            raise ValueError(f"give either bearer_token, or {user_field} and {secret_field}, not both")
    elif not (user and secret is not None):
        raise ValueError(f"give {user_field} and {secret_field} ({basic_name}) or bearer_token ({bearer_name})")


def credential_headers(bearer: Any | None, user: str | None, secret: Any | None) -> dict[str, str]:
    """``Authorization`` (bearer or basic; the encoded basic value is registered as a secret) and
    ``Accept: application/json`` (ServiceNow answers XML without it)."""
    if bearer is not None:
        return {"Authorization": f"Bearer {bearer.get_secret_value()}", "Accept": "application/json"}
    assert user and secret is not None
    return {"Authorization": basic_auth(user, secret.get_secret_value()), "Accept": "application/json"}


def reject_managed_fields(value: Mapping[str, Any], managed: frozenset[str]) -> None:
    clash = sorted(set(value) & managed)
    if clash:
        raise ValueError(f"{clash} are set by the receiver itself; use the dedicated options")


@dataclass(frozen=True)
class ApiReply:
    status: int | None  # None: no answer (timeout, connection dropped)
    data: Any = None  # the parsed JSON body, when there is one
    failure: DeliveryResult | None = None  # None for 2xx

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def failure_result(self) -> DeliveryResult:
        """The failure, for a reply that is not ok (what ``send`` returns)."""
        assert self.failure is not None, "failure_result of a successful reply"
        return self.failure

    @property
    def maybe_done(self) -> bool:
        """The request may have taken effect although it failed: no answer, or a 5xx."""
        return not self.ok and (self.status is None or self.status >= 500)


class JsonApi:
    """A base URL, auth headers and a poster; ``call`` sends exactly one request."""

    def __init__(
        self,
        *,
        receiver: str,
        kind: str,
        base_url: str,
        headers: Mapping[str, str],
        poster: HttpJsonPoster,
        auth_hint: str,
        retry_codes: frozenset[int] = DEFAULT_RETRY_CODES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers)
        self.poster = poster
        self.retry_codes = retry_codes
        self.auth_hint = auth_hint
        self.label = f"{kind} receiver {receiver!r} ({redact_url(self.base_url)})"

    def call(self, method: str, path: str, payload: Any | None = None, params: Mapping[str, str] | None = None) -> ApiReply:
        where = f"{self.label}: {method} {path}"
        try:
            response = self.poster.request(method, self.base_url + path, payload, params=params, headers=self.headers)
        except requests.Timeout as exc:
            return ApiReply(
                None,
                failure=DeliveryResult.failure(
                    f"{where}: no answer within {self.poster.timeout:g}s ({describe_error(exc)})", retryable=True
                ),
            )
        except requests.RequestException as exc:
            return ApiReply(None, failure=DeliveryResult.failure(f"{where}: {describe_error(exc)}", retryable=True))
        data = _json(response)
        result = classify_http(response.status_code, response.headers, retry_codes=self.retry_codes, body_hint=response.text[:4000])
        if result.ok:
            return ApiReply(response.status_code, data)
        if response.status_code in AUTH_REFUSED:
            message = f"{where}: credentials refused ({result.error}); {self.auth_hint}"
        else:
            message = f"{where}: {result.error}"
        return ApiReply(
            response.status_code,
            data,
            DeliveryResult.failure(message, retryable=result.retryable, status_code=result.status_code, retry_after=result.retry_after),
        )

    def fail(self, message: str, *, retryable: bool, retry_after: float | None = None, status_code: int | None = None) -> DeliveryResult:
        """A failure worded like the others (receiver and endpoint first)."""
        return DeliveryResult.failure(
            redact(f"{self.label}: {message}"), retryable=retryable, retry_after=retry_after, status_code=status_code
        )


def _json(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None
