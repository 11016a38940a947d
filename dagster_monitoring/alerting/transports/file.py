"""JSON lines to a file (or stdout): local runs, dry runs, and an archive of what was sent."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ..json_text import dump_document
from ..notification import Notification
from ..redact import describe_error
from ._config import ReceiverConfigBase
from .base import DeliveryResult
from .webhook import build_payload


class FileConfig(ReceiverConfigBase):
    type: Literal["file"] = "file"
    path: str = Field(default="-", description="a JSON-lines file, created with its folder; '-' for stdout")


class FileTransport:
    _lock = threading.Lock()

    def __init__(self, config: FileConfig) -> None:
        self.config = config
        self.name = config.name

    def render(self, notification: Notification) -> dict[str, Any]:
        return build_payload(notification)

    def send(self, notification: Notification) -> DeliveryResult:
        line = dump_document(self.render(notification))
        try:
            if self.config.path == "-":
                with self._lock:
                    sys.stdout.write(line + "\n")
                    sys.stdout.flush()
            else:
                path = Path(self.config.path)
                path.parent.mkdir(parents=True, exist_ok=True)
                with self._lock, path.open("a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
        except OSError as exc:
            return DeliveryResult.failure(describe_error(exc), retryable=True)
        return DeliveryResult.success()

    def send_many(self, notifications: list[Notification]) -> list[DeliveryResult]:
        """One open/write for a batch (the router uses it when available)."""
        if self.config.path == "-":
            return [self.send(n) for n in notifications]
        lines = "".join(dump_document(self.render(n)) + "\n" for n in notifications)
        try:
            path = Path(self.config.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock, path.open("a", encoding="utf-8") as fh:
                fh.write(lines)
        except OSError as exc:
            return [DeliveryResult.failure(describe_error(exc), retryable=True)] * len(notifications)
        return [DeliveryResult.success()] * len(notifications)
