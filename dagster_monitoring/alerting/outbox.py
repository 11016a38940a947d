"""Delivering the outbox: every receiver in its own worker, backoff owned here, nothing dropped.

Decisions are written to the outbox before anything is sent (in the router's transaction), so
a crash or an outage loses nothing. Each call claims the due rows, fans out one worker per
receiver (a slow or dead Teams never holds up e-mail), retries inside the call while the wait is
short (honouring ``Retry-After``), and leaves the rest for the next call with exponential
backoff. A row older than ``max_delivery_age`` is dead-lettered with an error log line.
Delivery is at-least-once: a webhook that times out after accepting a post may see it again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .config import DeliveryConfig
from .notification import Notification
from .redact import describe_error, get_logger
from .state import DEAD, DELIVERED, PENDING, OutboxItem, OutboxUpdate, SqlStateStore
from .transports.base import DeliveryResult, Transport

_log = get_logger(__name__)
MAX_WORKERS = 8


@dataclass(frozen=True)
class DeliveryOutcome:
    """What happened to one outbox row in this call (also what the audit trail records)."""

    notification: Notification
    status: str  # delivered | pending (will retry) | dead
    attempts: int
    error: str | None = None
    external_id: str | None = None
    external_url: str | None = None
    ticket: bool = False
    settled_at: datetime | None = None

    @property
    def delivered(self) -> bool:
        return self.status == DELIVERED


def backoff(attempts: int, config: DeliveryConfig) -> timedelta:
    """Exponential: initial * 2^(attempts-1), capped."""
    seconds = config.initial_backoff.total_seconds() * (2 ** max(attempts - 1, 0))
    return min(timedelta(seconds=seconds), config.max_backoff)


def attempt_delivery(
    transport: Transport,
    notification: Notification,
    config: DeliveryConfig,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[DeliveryResult, int]:
    """Up to ``attempts_per_call`` tries while the total pause stays under ``max_inline_wait``.
    Returns the last result and the number of tries."""
    waited = 0.0
    budget = config.max_inline_wait.total_seconds()
    result = DeliveryResult.failure("not attempted", retryable=True)
    for attempt in range(1, config.attempts_per_call + 1):
        try:
            result = transport.send(notification)
        except Exception as exc:  # a transport bug is logged, retried later, never propagated
            result = DeliveryResult.failure(f"transport error: {describe_error(exc)}", retryable=True)
        if result.ok or not result.retryable or attempt == config.attempts_per_call:
            return result, attempt
        wait = max(backoff(attempt, config).total_seconds(), result.retry_after or 0.0)
        if waited + wait > budget:
            return result, attempt
        sleep(wait)
        waited += wait
    return result, config.attempts_per_call


class Deliverer:
    def __init__(
        self,
        store: SqlStateStore,
        transports: Mapping[str, Transport],
        config: DeliveryConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.transports = transports
        self.config = config
        self.sleep = sleep

    def deliver_due(self, now: datetime, limit: int = 5000) -> list[DeliveryOutcome]:
        items = self.store.claim_due(now, now + self.config.lease, limit)
        if not items:
            return []
        tickets = self.store.tickets_for({i.notification.incident.fingerprint for i in items})
        if tickets:
            items = [
                replace(i, notification=i.notification.with_tickets(tickets.get(i.notification.incident.fingerprint, {}))) for i in items
            ]
        by_receiver: OrderedDict[str, list[OutboxItem]] = OrderedDict()
        for item in items:
            by_receiver.setdefault(item.notification.receiver, []).append(item)

        results: list[tuple[list[tuple[OutboxItem, DeliveryResult, int]], list[int]]] = []
        if len(by_receiver) == 1:
            ((name, group),) = by_receiver.items()
            results.append(self._deliver_receiver(name, group))
        else:
            with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(by_receiver)), thread_name_prefix="dm-deliver") as pool:
                futures = [pool.submit(self._deliver_receiver, name, group) for name, group in by_receiver.items()]
                results = [f.result() for f in futures]

        updates: list[OutboxUpdate] = []
        outcomes: list[DeliveryOutcome] = []
        released: list[int] = []
        for attempted, skipped in results:
            released.extend(skipped)
            for item, result, tries in attempted:
                update, outcome = self._settle(item, result, tries, now)
                updates.append(update)
                outcomes.append(outcome)
        self.store.apply_updates(updates)
        self.store.release(released)
        self.store.record_tickets(
            [
                (
                    o.notification.incident.fingerprint,
                    o.notification.incident.incident_id,
                    o.notification.receiver,
                    o.external_id,
                    o.external_url,
                )
                for o in outcomes
                if o.delivered and o.ticket and o.external_id
            ],
            now,
        )
        return outcomes

    # -- per receiver (runs in a worker thread) ----------------------------------------------

    def _deliver_receiver(self, name: str, items: list[OutboxItem]) -> tuple[list[tuple[OutboxItem, DeliveryResult, int]], list[int]]:
        transport = self.transports.get(name)
        if transport is None:
            err = f"receiver {name!r} is no longer configured"
            return [(item, DeliveryResult.failure(err, retryable=False), 0) for item in items], []

        send_many = getattr(transport, "send_many", None)
        if send_many is not None:
            try:
                batch = send_many([i.notification for i in items])
            except Exception as exc:  # a transport bug must not stop the others
                batch = [DeliveryResult.failure(f"transport error: {describe_error(exc)}", retryable=True)] * len(items)
            if all(r.ok for r in batch):
                return [(i, r, 1) for i, r in zip(items, batch, strict=False)], []

        attempted: list[tuple[OutboxItem, DeliveryResult, int]] = []
        learned: dict[str, dict[str, dict[str, str]]] = {}  # fingerprint -> {receiver: ticket}, from this call
        for index, item in enumerate(items):
            # A ticket opened earlier in this call (say, a `new` delivered late together with its
            # `recovered`) is handed on at once; the state only learns it when the call ends.
            if item.notification.incident.fingerprint in learned:
                item = replace(item, notification=item.notification.with_tickets(learned[item.notification.incident.fingerprint]))
            result, tries = self._attempt(transport, item.notification)
            attempted.append((item, result, tries))
            if result.ok and result.ticket and result.external_id:
                n = item.notification
                learned[n.incident.fingerprint] = {
                    name: {"key": result.external_id, "url": result.external_url or "", "incident_id": n.incident.incident_id}
                }
            if not result.ok and result.retryable:
                # The receiver is down or throttling: keep order, try the rest next call.
                return attempted, [i.id for i in items[index + 1 :]]
        return attempted, []

    def _attempt(self, transport: Transport, notification: Notification) -> tuple[DeliveryResult, int]:
        return attempt_delivery(transport, notification, self.config, self.sleep)

    # -- bookkeeping -------------------------------------------------------------------------

    def _settle(self, item: OutboxItem, result: DeliveryResult, tries: int, now: datetime) -> tuple[OutboxUpdate, DeliveryOutcome]:
        n = item.notification
        attempts = item.attempts + tries
        if result.ok:
            _log.info("delivered %s %s to %s (attempt %d)", n.transition.value, n.incident.fingerprint, n.receiver, attempts)
            return (
                OutboxUpdate(item.id, DELIVERED, attempts, now, None, result.external_id, now),
                DeliveryOutcome(n, DELIVERED, attempts, None, result.external_id, result.external_url, result.ticket, now),
            )
        error = result.error or "unknown error"
        if now - item.created_at >= self.config.max_delivery_age:
            _log.error(
                "dead-lettered %s %s to %s after %d attempts over %s: %s",
                n.transition.value,
                n.incident.fingerprint,
                n.receiver,
                attempts,
                now - item.created_at,
                error,
            )
            return OutboxUpdate(item.id, DEAD, attempts, now, error), DeliveryOutcome(n, DEAD, attempts, error, settled_at=now)
        if result.retryable:
            wait = max(backoff(attempts, self.config), timedelta(seconds=result.retry_after or 0))
            _log.warning(
                "delivery of %s %s to %s failed (attempt %d), retry in %s: %s",
                n.transition.value,
                n.incident.fingerprint,
                n.receiver,
                attempts,
                wait,
                error,
            )
        else:
            wait = self.config.max_backoff  # needs a human (bad token, bad payload); keep it until then
            _log.error(
                "delivery of %s %s to %s was refused (attempt %d), kept and retried in %s: %s",
                n.transition.value,
                n.incident.fingerprint,
                n.receiver,
                attempts,
                wait,
                error,
            )
        return OutboxUpdate(item.id, PENDING, attempts, now + wait, error), DeliveryOutcome(n, PENDING, attempts, error, settled_at=now)


__all__: Sequence[str] = ["Deliverer", "DeliveryOutcome", "attempt_delivery", "backoff"]
