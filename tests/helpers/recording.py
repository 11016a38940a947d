"""A scriptable in-process receiver for router tests (the real transports have their own
contract tests against local servers)."""

from __future__ import annotations

from collections import deque
from typing import Iterable

from dagster_monitoring.alerting import DeliveryResult, Notification


class RecordingTransport:
    def __init__(self, name: str, script: Iterable[DeliveryResult] = ()) -> None:
        self.name = name
        self.script = deque(script)
        self.attempts: list[Notification] = []
        self.delivered: list[Notification] = []

    def render(self, notification: Notification) -> dict:
        return notification.to_dict()

    def send(self, notification: Notification) -> DeliveryResult:
        self.attempts.append(notification)
        result = self.script.popleft() if self.script else DeliveryResult.success()
        if result.ok:
            self.delivered.append(notification)
        return result

    @property
    def transitions(self) -> list[str]:
        return [n.transition.value for n in self.delivered]


def down(retry_after: float | None = None) -> DeliveryResult:
    return DeliveryResult.failure("HTTP 503", retryable=True, status_code=503, retry_after=retry_after)


def refused() -> DeliveryResult:
    return DeliveryResult.failure("HTTP 401", retryable=False, status_code=401)
