"""Delivering the outbox: every receiver in its own worker, backoff owned here, nothing dropped.

Decisions are written to the outbox before anything is sent (in the router's transaction), so
a crash or an outage loses nothing. Each call claims the due rows, fans out one worker per
receiver (a slow or dead Teams never holds up e-mail), retries inside the call while the wait is
short (honouring ``Retry-After``), and leaves the rest for the next call with exponential
backoff. Each delivery is settled as soon as it is answered, and a call waits at most
``tick_budget`` for its workers. A row older than ``max_delivery_age`` is dead-lettered with an
error log line. Delivery is at-least-once: a webhook that times out after accepting a post, or
a process killed between a post and its settling, may see that one post again.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .config import DeliveryConfig
from .notification import Notification
from .redact import describe_error, get_logger
from .state import DEAD, DELIVERED, PENDING, OutboxItem, OutboxUpdate, SqlStateStore
from .transports.base import DeliveryResult, Transport, opens_tickets

_log = get_logger(__name__)


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
    deadline: float | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> tuple[DeliveryResult, int]:
    """Up to ``attempts_per_call`` tries while the total pause stays under ``max_inline_wait``
    and no retry would start after ``deadline`` (a ``monotonic`` time).
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
        if waited + wait > budget or (deadline is not None and monotonic() + wait >= deadline):
            return result, attempt
        sleep(wait)
        waited += wait
    return result, config.attempts_per_call


class Deliverer:
    """Claims due outbox rows and delivers them, one worker thread per receiver.

    Two promises the sensor tick relies on:

    * **A slow receiver never holds the tick.** ``deliver_due`` waits at most ``tick_budget``;
      a worker still busy then (a hung SMTP server) finishes its one in-flight delivery in the
      background, settles it, and stops; its outcome is reported by the next call. Its receiver
      is not claimed again in this process until it is done.
    * **A crash re-sends at most what was in flight.** Each delivery is settled in the state DB
      as soon as its receiver answers, not when the whole call ends.
    """

    def __init__(
        self,
        store: SqlStateStore,
        transports: Mapping[str, Transport],
        config: DeliveryConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.transports = transports
        self.config = config
        self.sleep = sleep
        self.monotonic = monotonic
        self._busy: dict[str, threading.Thread] = {}  # receiver -> its running worker
        self._settled: queue.SimpleQueue[DeliveryOutcome] = queue.SimpleQueue()
        self._lock = threading.Lock()

    def deliver_due(self, now: datetime, limit: int = 5000, budget: float | None = None, claim: bool = True) -> list[DeliveryOutcome]:
        """Deliver what is due; return every outcome settled since the last call (this call's,
        and late ones from workers an earlier call left running). ``claim=False`` only collects those."""
        deadline = self.monotonic() + (self.config.tick_budget.total_seconds() if budget is None else budget)
        with self._lock:
            busy = [name for name, worker in self._busy.items() if worker.is_alive()]
        items = self.store.claim_due(now, now + self.config.lease, limit, skip_receivers=busy) if claim else []
        if items:
            by_receiver: OrderedDict[str, list[OutboxItem]] = OrderedDict()
            for item in items:
                by_receiver.setdefault(item.notification.receiver, []).append(item)
            # Ticket receivers go first, and the others wait for them (at most ticket_wait), so the
            # first Teams card or e-mail of an incident already links its ticket.
            ticketing = [n for n in by_receiver if opens_tickets(self.transports.get(n))]
            others = [n for n in by_receiver if n not in ticketing]
            workers = self._start(ticketing, by_receiver, now, deadline)
            if ticketing and others:
                wait_until = min(deadline, self.monotonic() + self.config.ticket_wait.total_seconds())
                for worker in workers:
                    worker.join(max(wait_until - self.monotonic(), 0.0))
            workers += self._start(others, by_receiver, now, deadline)
            for worker in workers:
                worker.join(max(deadline - self.monotonic(), 0.0))
            late = [w.name.removeprefix("dm-deliver-") for w in workers if w.is_alive()]
            if late:
                _log.warning(
                    "delivery to %s is still running after the %.0fs tick budget; it goes on in the background "
                    "and the rest of its deliveries wait for the next call",
                    ", ".join(late),
                    self.config.tick_budget.total_seconds() if budget is None else budget,
                )
        return self._drain()

    def _start(
        self, names: Sequence[str], groups: Mapping[str, list[OutboxItem]], now: datetime, deadline: float
    ) -> list[threading.Thread]:
        """One worker per receiver, its items carrying the incident's tickets known right now."""
        if not names:
            return []
        tickets: dict[str, dict[str, dict[str, str]]] = {}
        # A ticket opened after a message was queued (by a ticket receiver meanwhile) is read now;
        # with no ticket receiver the queued message already links every ticket there is.
        if any(opens_tickets(t) for t in self.transports.values()):
            fingerprints = {m.incident.fingerprint for n in names for i in groups[n] for m in i.notification.group}
            tickets = self.store.tickets_for(fingerprints)
        workers = []
        for name in names:
            group = groups[name]
            if tickets:  # a grouped message links each member's ticket
                group = [replace(i, notification=i.notification.with_member_tickets(tickets)) for i in group]
            worker = threading.Thread(target=self._run_worker, args=(name, group, now, deadline), name=f"dm-deliver-{name}", daemon=True)
            with self._lock:
                self._busy[name] = worker
            worker.start()
            workers.append(worker)
        return workers

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait for background workers (shutdown, the CLI, tests); True when none is left."""
        end = None if timeout is None else self.monotonic() + timeout
        with self._lock:
            workers = list(self._busy.values())
        for worker in workers:
            worker.join(None if end is None else max(end - self.monotonic(), 0.0))
        return not any(w.is_alive() for w in workers)

    def _drain(self) -> list[DeliveryOutcome]:
        outcomes = []
        while True:
            try:
                outcomes.append(self._settled.get_nowait())
            except queue.Empty:
                return outcomes

    # -- per receiver (runs in a worker thread) ----------------------------------------------

    def _run_worker(self, name: str, items: list[OutboxItem], now: datetime, deadline: float) -> None:
        try:
            self._deliver_receiver(name, items, now, deadline)
        except Exception as exc:  # the state DB failed while settling: the lease keeps the rows safe
            _log.error("delivery worker for %s stopped: %s", name, describe_error(exc))
        finally:
            with self._lock:
                if self._busy.get(name) is threading.current_thread():
                    del self._busy[name]

    def _deliver_receiver(self, name: str, items: list[OutboxItem], now: datetime, deadline: float) -> None:
        transport = self.transports.get(name)
        if transport is None:
            err = f"receiver {name!r} is no longer configured"
            self._settle_all([(item, DeliveryResult.failure(err, retryable=False), 0) for item in items], now)
            return

        send_many = getattr(transport, "send_many", None)
        if send_many is not None:
            try:
                batch = send_many([i.notification for i in items])
            except Exception as exc:  # a transport bug must not stop the others
                batch = [DeliveryResult.failure(f"transport error: {describe_error(exc)}", retryable=True)] * len(items)
            self._settle_all([(i, r, 1) for i, r in zip(items, batch, strict=True)], now)
            return

        learned: dict[str, dict[str, dict[str, str]]] = {}  # fingerprint -> {receiver: ticket}, from this call
        for index, item in enumerate(items):
            if self.monotonic() >= deadline:  # out of time: the rest waits for the next call
                self.store.release([i.id for i in items[index:]])
                return
            # A ticket opened earlier in this call (say, a `new` delivered late together with its
            # `recovered`) is handed on at once.
            if item.notification.incident.fingerprint in learned:
                item = replace(item, notification=item.notification.with_tickets(learned[item.notification.incident.fingerprint]))
            result, tries = attempt_delivery(transport, item.notification, self.config, self.sleep, deadline, self.monotonic)
            self._settle_all([(item, result, tries)], now)
            if result.ok and result.ticket and result.external_id:
                n = item.notification
                learned[n.incident.fingerprint] = {
                    name: {"key": result.external_id, "url": result.external_url or "", "incident_id": n.incident.incident_id}
                }
            if not result.ok and result.retryable:
                # The receiver is down or throttling: keep order, try the rest next call.
                self.store.release([i.id for i in items[index + 1 :]])
                return

    def _settle_all(self, attempted: Sequence[tuple[OutboxItem, DeliveryResult, int]], now: datetime) -> None:
        """Write the outcomes (and any ticket opened) in one transaction, then report them."""
        settled = [self._settle(item, result, tries, now) for item, result, tries in attempted]
        outcomes = [outcome for _, outcome in settled]
        tickets = [
            (
                o.notification.incident.fingerprint,
                o.notification.incident.incident_id,
                o.notification.receiver,
                o.external_id,
                o.external_url,
            )
            for o in outcomes
            if o.delivered and o.ticket and o.external_id
        ]
        self.store.settle([update for update, _ in settled], tickets, now)
        for outcome in outcomes:
            self._settled.put(outcome)

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
