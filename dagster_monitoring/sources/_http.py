"""GET a JSON REST API for a poller: auth in headers, 429 honoured, errors that leak nothing.

A poll runs inside a sensor tick, so it must end: a 429 is waited out (its ``Retry-After``, else
a short backoff) only while the waits stay under ``max_retry_wait``; past that, or on a 5xx or a
network error, :class:`SourceApiError` says whether the next tick may try again. Credentials
travel in headers only and every error text is redacted, so a key never reaches a log line, an
event or an exception. ``session`` and ``sleep`` are injectable for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from ..alerting.redact import describe_error, redact, redact_url
from ..alerting.transports.base import parse_retry_after

DEFAULT_429_WAIT = 2.0


class SourceApiError(Exception):
    """A poll that could not be answered. ``retryable``: the next tick may succeed (429, 5xx,
    network); otherwise the config is wrong (401/403 credentials, 404 id)."""

    def __init__(self, message: str, *, retryable: bool, status_code: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(redact(message))
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after = retry_after


class JsonApi:
    """One API: a base URL, auth headers, a timeout and a bound on 429 waits."""

    def __init__(
        self,
        name: str,
        base_url: str,
        headers: Mapping[str, str],
        *,
        timeout: float,
        max_retry_wait: float,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retry_wait = max_retry_wait
        self.session = session or requests.Session()
        self.session.headers.update({"Accept": "application/json", **headers})
        self.sleep = sleep
        self.requests_made = 0
        self.waited = 0.0

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """The parsed JSON of ``GET base_url + path``; waits out 429s within the budget."""
        url = self.base_url + path
        where = f"{self.name} GET {redact_url(self.base_url)}{path}"
        waited = 0.0
        while True:
            self.requests_made += 1
            try:
                response = self.session.get(url, params=params, timeout=self.timeout)
            except requests.RequestException as exc:
                raise SourceApiError(f"{where}: no answer ({describe_error(exc)})", retryable=True) from None
            status = response.status_code
            if status == 429:
                wait = parse_retry_after(response.headers.get("Retry-After"))
                wait = DEFAULT_429_WAIT if wait is None else max(wait, 0.0)
                if waited + wait > self.max_retry_wait:
                    raise SourceApiError(
                        f"{where}: rate limited (HTTP 429, Retry-After {wait:g}s); trying again on the next tick",
                        retryable=True,
                        status_code=429,
                        retry_after=wait,
                    )
                self.sleep(wait)
                waited += wait
                self.waited += wait
                continue
            if status >= 400:
                hint = " (check the API credentials)" if status in (401, 403) else ""
                raise SourceApiError(
                    f"{where}: HTTP {status}{hint}: {_short(response.text)}",
                    retryable=status >= 500 or status == 408,
                    status_code=status,
                )
            try:
                return response.json()
            except ValueError:
                raise SourceApiError(f"{where}: HTTP {status} but the body is not JSON", retryable=True, status_code=status) from None

    def close(self) -> None:
        self.session.close()


def _short(text: str, limit: int = 200) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
