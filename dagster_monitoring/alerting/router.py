"""AlertRouter: events in, at most one message per receiver per transition out.

The chain per event: lifecycle (``observe``) → escalation → silences → routes/owners →
per-receiver dedup (new / reminder / escalated / suppressed) → lineage inhibition; then per call:
inhibited alerts folded into their upstream's message → grouping (see :mod:`.grouping`) → outbox. All of it happens in one
transaction per call; delivery happens after the commit (see :mod:`.outbox`). Every decision
and every delivery outcome is also handed to ``on_record`` (the audit trail's ``alert_notifications``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from operator import attrgetter
from typing import TYPE_CHECKING

from .actions import ActionLinks
from .config import AlertingConfig
from .events import AlertEvent, Severity
from .fallback import FallbackNotifier
from .grouping import Inhibitors, fold_inhibited, group_notifications, hold_groups
from .lifecycle import (
    IncidentState,
    Observation,
    Phase,
    ReceiverMark,
    Transition,
    close,
    observe,
    recovery_due,
    recovery_links,
)
from .notification import IncidentSnapshot, Notification
from .outbox import Deliverer, DeliveryOutcome
from .policy import MatchCache, effective_severity, receivers_for
from .redact import describe_error, get_logger
from .silences import ActiveSilences, StoredSilence
from .state import SqlStateStore
from .state_health import RESTORED, StateProblem, StateStoreError
from .transports import build_transports
from .transports.base import Transport, opens_tickets

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

_log = get_logger(__name__)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


_by_time = attrgetter("occurred_at")
# Stored silences are read again at most this often (seconds); one made or ended through the
# router's own store (the serve endpoint) applies at once, one made by another process (the CLI)
# within this long. Reading them on every call cost ~10 % of a one-event call.
SILENCES_MAX_AGE = 1.0
# Seconds between tries to rebuild a lost state DB's incidents from an audit trail that failed.
RESTORE_RETRY = 300.0


@dataclass(frozen=True)
class Decision:
    """One router decision about one receiver (or about none, when nothing routes)."""

    fingerprint: str
    incident_id: str | None
    transition: Transition | None  # None: healthy / resolving / unrouted
    receiver: str | None
    severity: Severity
    observation: Observation
    decided_at: datetime
    silenced_by: str | None = None
    event: AlertEvent | None = None
    occurred_at: datetime | None = None  # the triggering event's time (the tick's time for timed recoveries)
    inhibited_by: str | None = None  # the upstream incident's fingerprint whose message lists this one instead

    @property
    def at(self) -> datetime:
        return self.occurred_at or self.decided_at

    @property
    def notifies(self) -> bool:
        return (
            self.transition not in (None, Transition.ONGOING)
            and self.silenced_by is None
            and self.inhibited_by is None
            and self.receiver is not None
        )


@dataclass
class RouterResult:
    decisions: list[Decision] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)  # the messages queued (a group is one)
    deliveries: list[DeliveryOutcome] = field(default_factory=list)
    # (inhibitor fingerprint, the notification held back): listed in the inhibitor's message
    inhibited: list[tuple[str, Notification]] = field(default_factory=list)

    def extend(self, other: RouterResult) -> None:
        self.decisions.extend(other.decisions)
        self.notifications.extend(other.notifications)
        self.deliveries.extend(other.deliveries)
        self.inhibited.extend(other.inhibited)

    @property
    def delivered(self) -> list[DeliveryOutcome]:
        return [d for d in self.deliveries if d.delivered]


class AlertRouter:
    """Plain Python; share one per process. ``clock`` and ``sleep`` are injectable for tests."""

    def __init__(
        self,
        config: AlertingConfig,
        *,
        store: SqlStateStore | None = None,
        transports: Mapping[str, Transport] | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] | None = None,
        on_decision: Callable[[Sequence[Decision]], object] | None = None,
        on_delivery: Callable[[Sequence[DeliveryOutcome]], object] | None = None,
        restore_incidents: Callable[[], Sequence[IncidentState]] | None = None,
    ) -> None:
        self.config = config
        self.store = store or SqlStateStore(config.state.sqlalchemy_url(), lock_timeout=config.state.lock_timeout.total_seconds())
        self.transports = dict(transports) if transports is not None else build_transports(config.receivers)
        self.clock = clock
        self.deliverer = Deliverer(self.store, self.transports, config.delivery, sleep=sleep or time.sleep)
        self.on_decision = on_decision
        self.on_delivery = on_delivery
        # Where the open incidents come back from when the state DB was lost (the audit trail:
        # ``attach_audit``); asked once per loss, before any event is applied.
        self.restore_incidents = restore_incidents
        self.fallback = FallbackNotifier(config, self.transports, clock, sleep=sleep or time.sleep)
        self.action_links = ActionLinks(config.actions) if config.actions is not None else None
        self._restore_lock = threading.Lock()
        self._restore_retry_at: float | None = None  # monotonic time a failed restore is tried again
        self._retry_loss = 0  # the store's loss count that retry is for
        self._may_hold = True  # the state DB may hold groups (group_wait now, or before a restart with 0s)

    # -- public API --------------------------------------------------------------------------

    def process(self, events: Iterable[AlertEvent], *, deliver: bool = True) -> RouterResult:
        """Apply events (any order; sorted by time per call), record decisions, then deliver.

        When the state DB fails, nothing is consumed: :class:`StateStoreError` (naming the DB)
        is raised after a human was told through the fallback path, so the caller (a sensor)
        fails its tick and reads the same events again on the next one."""
        try:
            if self.restore_incidents is not None:
                self.store.check()  # a loss found now is restored before this call's events
                if self.store.restore_due:
                    self._restore()
            result = self._process(events, deliver=deliver)
        except StateStoreError as exc:
            self.report_state_failure(exc)
            raise
        self.check_state_health()
        return result

    def report_state_failure(self, exc: StateStoreError) -> None:
        """Tell a human through the fallback path (rate-limited); for sensors whose own use of the
        store failed (heartbeats)."""
        self.fallback.report(exc.problem)

    def check_state_health(self) -> None:
        """The DB answered: report what the store found and dealt with (a deleted or corrupt file)
        and announce the end of earlier outages."""
        # a loss is reported once a restore was tried (it says what came back), or at once without one
        hold = self.restore_incidents is not None and self.store.restore_due and not self._retry_pending()
        problems = self.store.take_problems(hold_lost=hold)
        for problem in problems:
            self.fallback.report(problem)
        if any(p.lost for p in problems):  # nothing restores: the loss is reported as forgotten, and over
            self.store.loss_handled(None)
        self.store.forget_loss()  # a loss dealt with and now reported: its note in the DB goes
        if self.fallback.has_ongoing:
            self.fallback.resolve_ongoing()

    def _process(self, events: Iterable[AlertEvent], *, deliver: bool) -> RouterResult:
        ordered = sorted(events, key=_by_time)
        now = self.clock()
        result = RouterResult()
        inhibitors = Inhibitors(ordered) if self.config.policy.inhibition else None
        if not inhibitors:  # no failing asset check in this call can inhibit anything
            inhibitors = None
        with self.store.transaction() as conn:
            # the silences and acknowledgements of the state DB: at most one query per call
            stored = ActiveSilences.of(self.store.live_silences(conn, now, max_age=SILENCES_MAX_AGE), now)
            matching = MatchCache(self.config.routes, (*self.config.silences, *stored.silences), now)
            # not copied: nothing below changes a loaded state in place (observe and close make new ones)
            states = self.store.load(conn, (e.fingerprint for e in ordered), copy=False)
            changed: dict[str, IncidentState] = {}
            for event in ordered:
                fp = event.fingerprint
                state = states.get(fp) or IncidentState(fp)
                state = self._apply(state, event, now, result, matching, inhibitors, stored.acks)
                states[fp] = changed[fp] = state
            self._recover_due(self.store.in_phase(conn, Phase.RESOLVING, copy=False), now, result, changed)
            self.store.save(conn, list(changed.values()), now, hand_over=True)  # not changed after this
            if stored.acks:  # an acknowledgement ends with its incident
                ended = [a.id for fp, a in stored.acks.items() if fp in changed and _ack_ended(changed[fp], a.incident_id)]
                self.store.expire_silences(ended, now, conn)
            result.notifications = self._messages(result, conn, now)
            self.store.enqueue(conn, result.notifications)
        self._emit_decisions(result.decisions)
        if deliver:
            result.deliveries = self.deliver_pending()
        return result

    def _restore(self) -> None:
        """Open incidents of a lost state DB put back from ``restore_incidents`` (the audit trail),
        before the events of this call are applied: a failure that goes on is not news, and a
        recovery reaches whoever heard of it. Read before the state transaction (a slow trail
        holds no lock); only fingerprints with no row are written (a state saved since is newer).
        A trail that fails is tried again every ``RESTORE_RETRY`` seconds."""
        assert self.restore_incidents is not None
        with self._restore_lock:
            retried = self._retry_pending()
            if not self.store.restore_due or (retried and time.monotonic() < (self._restore_retry_at or 0.0)):
                return
            try:
                states = list(self.restore_incidents())
            except Exception as exc:  # the trail is down too: alerting goes on, the report says so
                self._restore_retry_at, self._retry_loss = time.monotonic() + RESTORE_RETRY, self.store.losses
                _log.error("restoring open incidents after the state DB was lost failed: %s", describe_error(exc))
                if not retried:
                    self.store.loss_reported(
                        f"Open incidents it held could not be restored from the audit trail ({describe_error(exc)}); this is "
                        f"tried again every {RESTORE_RETRY / 60:.0f} minutes, and until it works their recoveries will not be announced."
                    )
                return
            for state in states:  # a chat or mail delivery row names the ticket it linked, not one it owns
                state.tickets = {name: t for name, t in state.tickets.items() if opens_tickets(self.transports.get(name))}
            with self.store.transaction() as conn:
                count = self.store.restore(conn, states, self.clock())
            self._restore_retry_at = None
            _log.warning("restored %d open incident(s) from the audit trail after the state DB was lost", count)
            back = f"{count} open incident(s) it held were restored from the audit trail (vw_open_alerts)"
            if count < len(states):  # the rest had a row again: another process that found the loss restored them first
                back = (
                    f"{len(states)} open incident(s) it held are back from the audit trail (vw_open_alerts; {len(states) - count} "
                    "of them were put back by another process that found the loss too, or have failed or passed since)"
                )
            outcome = f"{back}, so their recoveries will be announced; silences, acknowledgements and anything the trail had not recorded yet are not."
            if not retried:
                self.store.loss_handled(outcome)
                return
            self.store.loss_handled(None)  # the loss was reported when the first try failed: this is news
            location = self.store.location
            self.store.note_problem(StateProblem(RESTORED, location, f"alert state DB {location}: after all, {outcome}"))

    def _retry_pending(self) -> bool:
        """A restore of the current loss failed and waits to be tried again (a newer loss starts afresh)."""
        return self._restore_retry_at is not None and self._retry_loss == self.store.losses

    def tick(self) -> RouterResult:
        """Time-based work with no new events: announce recoveries whose flap window has
        passed, and retry pending deliveries. Call it every sensor tick."""
        return self.process(())

    def deliver_pending(self, *, budget: float | None = None, claim: bool = True) -> list[DeliveryOutcome]:
        outcomes = self.deliverer.deliver_due(self.clock(), budget=budget, claim=claim)
        if outcomes and self.on_delivery:
            try:
                self.on_delivery(outcomes)
            except Exception as exc:  # the audit trail must never break alerting
                _log.error("on_delivery hook failed: %s", describe_error(exc))
        return outcomes

    def wait_idle(self, timeout: float | None = None) -> list[DeliveryOutcome]:
        """Let deliveries a call left running in the background finish (a CLI before it exits,
        a test); returns their outcomes, which are also handed to ``on_delivery``."""
        self.deliverer.wait_idle(timeout)
        return self.deliver_pending(budget=0.0, claim=False)

    def incident(self, fingerprint: str) -> IncidentState | None:
        return self.store.get(fingerprint)

    # -- the chain ---------------------------------------------------------------------------

    def _messages(self, result: RouterResult, conn: Connection, now: datetime) -> list[Notification]:
        """The call's notifications as messages: inhibited ones folded into their upstream's, then
        grouped per receiver and group key (never for ticket receivers), held for ``group_wait``
        when one is set (groups held earlier are sent once their wait is over); failing messages
        get the signed Acknowledge / Silence links when ``actions`` is configured (not tickets)."""
        notifications = fold_inhibited(result.notifications, result.inhibited)
        transports = self.transports

        def groupable(name: str) -> bool:
            return not opens_tickets(transports.get(name))

        messages = self._grouped(notifications, conn, now, groupable)
        links = self.action_links
        if links is not None:  # made when sent, so a held group's links act on all of its members
            messages = [
                n
                if n.transition is Transition.RECOVERED or not groupable(n.receiver)
                else replace(n, actions=links.for_notification(n, now))
                for n in messages
            ]
        return messages

    def _grouped(
        self, notifications: list[Notification], conn: Connection, now: datetime, groupable: Callable[[str], bool]
    ) -> list[Notification]:
        policy = self.config.policy
        fields = policy.grouped_by
        waiting = bool(policy.group_wait and fields)
        if waiting or self._may_hold:
            held = self.store.held_groups(conn)
            if held or waiting:
                wait = hold_groups(notifications, held, fields, groupable, now, policy.group_wait if fields else timedelta(0))
                self.store.save_held_groups(conn, wait.held, wait.released)
                # with group_wait off, groups held before keep being read (and sent) until none is left
                self._may_hold = waiting or len(held) > len(wait.released) or bool(wait.held)
                return wait.messages
            self._may_hold = False
        if not fields or len(notifications) < 2:
            return notifications
        return group_notifications(notifications, fields, groupable)

    def _apply(
        self,
        state: IncidentState,
        event: AlertEvent,
        now: datetime,
        result: RouterResult,
        matching: MatchCache,
        inhibitors: Inhibitors | None = None,
        acks: Mapping[str, StoredSilence] | None = None,
    ) -> IncidentState:
        policy = self.config.policy
        state, obs = observe(state, event, policy.flap_window)
        if obs is Observation.STALE:
            return state
        if obs is Observation.RECOVERED:
            self._announce_recovery(state, now, obs, result, event.occurred_at)
            return state
        if obs in (Observation.HEALTHY, Observation.RESOLVING):
            result.decisions.append(
                Decision(
                    state.fingerprint, state.incident_id, None, None, event.severity, obs, now, event=event, occurred_at=event.occurred_at
                )
            )
            return state

        severity = effective_severity(event, state, policy.escalation) if policy.escalation else event.severity
        if state.severity is None or severity > state.severity:
            state.severity = severity
        severity = state.severity
        event = event if event.severity is severity else event.with_severity(severity)
        routes, silence = matching.lookup(event)
        config = self.config
        names = receivers_for(event, state.consecutive_failures, config.routes, config.owners, config.default_receivers, matched=routes)
        if not names:
            result.decisions.append(
                Decision(state.fingerprint, state.incident_id, None, None, severity, obs, now, event=event, occurred_at=event.occurred_at)
            )
        inhibited_by = inhibitors.find(event, severity) if inhibitors is not None else None
        ack = acks.get(state.fingerprint) if acks else None
        if ack is not None and ack.incident_id != state.incident_id:
            ack = None  # an earlier incident's; ended after this call
        for name in names:
            transition = self._transition_for(state.receivers.get(name), severity, event.occurred_at)
            silenced_by = silence.label if silence else None
            if silenced_by is None and ack is not None and transition is Transition.REMINDER:
                silenced_by = ack.label  # acknowledged: no reminders; escalations and recovery still told
            decision = Decision(
                state.fingerprint,
                state.incident_id,
                transition,
                name,
                severity,
                obs,
                now,
                silenced_by=silenced_by,
                event=event,
                occurred_at=event.occurred_at,
                inhibited_by=inhibited_by,
            )
            result.decisions.append(decision)
            if inhibited_by is not None and silenced_by is None and transition is not Transition.ONGOING:
                # Held back, and not remembered as heard: once the upstream is fixed it is announced as new.
                result.inhibited.append((inhibited_by, self._notification(state, event, name, transition, severity, now)))
            elif decision.notifies:
                state.receivers[name] = ReceiverMark(event.occurred_at, severity, transition)
                result.notifications.append(self._notification(state, event, name, transition, severity, now))
        return state

    def _transition_for(self, mark: ReceiverMark | None, severity: Severity, at: datetime) -> Transition:
        if mark is None:
            return Transition.NEW
        if severity > mark.severity:
            return Transition.ESCALATED
        if at - mark.notified_at >= self.config.policy.repeat_interval:
            return Transition.REMINDER
        return Transition.ONGOING

    def _recover_due(self, resolving: list[IncidentState], now: datetime, result: RouterResult, changed: dict[str, IncidentState]) -> None:
        flap_window = self.config.policy.flap_window
        for state in resolving:
            state = changed.get(state.fingerprint, state)
            if recovery_due(state, now, flap_window):
                state = close(state)
                changed[state.fingerprint] = state
                self._announce_recovery(state, now, Observation.RECOVERED, result, now)

    def _announce_recovery(self, state: IncidentState, now: datetime, obs: Observation, result: RouterResult, at: datetime) -> None:
        event = state.last_event
        if event is not None:  # the recovery links the run that fixed it next to the one that failed
            event = replace(event, links=recovery_links(event.links, state.fixed_by))
        severity = state.severity or Severity.WARN
        if not state.receivers:
            result.decisions.append(
                Decision(state.fingerprint, state.incident_id, Transition.RECOVERED, None, severity, obs, now, event=event, occurred_at=at)
            )
        for name in state.receivers:
            result.decisions.append(
                Decision(state.fingerprint, state.incident_id, Transition.RECOVERED, name, severity, obs, now, event=event, occurred_at=at)
            )
            if event is not None:
                result.notifications.append(self._notification(state, event, name, Transition.RECOVERED, severity, now))

    def _notification(
        self, state: IncidentState, event: AlertEvent, receiver: str, transition: Transition, severity: Severity, now: datetime
    ) -> Notification:
        seq = "final" if transition is Transition.RECOVERED else str(state.consecutive_failures)
        return Notification(
            key=f"{state.incident_id}:{transition.value}:{receiver}:{seq}",
            receiver=receiver,
            transition=transition,
            severity=severity,
            event=event,
            incident=IncidentSnapshot.of(state),
            created_at=now,
        )

    def _emit_decisions(self, decisions: Sequence[Decision]) -> None:
        if decisions and self.on_decision:
            try:
                self.on_decision(decisions)
            except Exception as exc:
                _log.error("on_decision hook failed: %s", describe_error(exc))


def _ack_ended(state: IncidentState, incident_id: str | None) -> bool:
    """The acknowledged incident is over: recovered, or a new incident of the fingerprint opened."""
    return not state.is_open or state.incident_id != incident_id
