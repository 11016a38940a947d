"""Noise control after the lifecycle: lineage inhibition, then grouping. Delivery concerns only.

Both follow Alertmanager. Incidents, their lifecycle and every decision stay per fingerprint;
what changes is how many messages a receiver gets for them.

**Inhibition** (Alertmanager's ``inhibit_rules``, with lineage as the equal-labels condition): an
alert is held back when one of its upstream assets failed *in the same run* at least as severely.
The source side names the upstream assets in the event's :data:`UPSTREAM_TAG` (a JSON list; the
Dagster sensor fills it from the asset graph, all ancestors) and its own asset in
:data:`ASSET_TAG`. The downstream incident is still opened and recorded (its decisions say
``inhibited_by``), and it is listed under "Also affected" in the upstream's message to the same
receiver. Choices, and why:

* *Same run only*: a downstream failure in a later run may have its own cause; the run is what
  ties the two together (Alertmanager's ``equal: [run_id]``).
* *At least as severe*: a WARN schema drift upstream must not swallow a CRITICAL test downstream
  (Alertmanager's usual rule: critical inhibits warning, never the other way round).
* *No receiver remembers an inhibited alert*: when the upstream is fixed and the downstream still
  fails, the downstream is announced as new, as an alert whose inhibition ends starts firing.
  Its recovery while inhibited is silent, since nobody heard it fail.
* Only failing asset checks inhibit (they name one asset); a run failure names a job.

**Grouping** (``group_by``): the notifications one router call makes for one receiver with the
same group key become one message (the most severe member leads; the others ride along in
``Notification.members``), one outbox row, so exactly-once, retries and crash bounds hold per
message as they did per notification. Ticket receivers are not grouped: a ticket follows one
incident (its idempotency key, its comments and its closing are per incident), so closing "the
group's ticket" when only some members recovered would be wrong.

**Group wait** (``group_wait``, Alertmanager's): a group's members can arrive over several router
calls (``group_by: [owner]`` across runs, webhooks one request each). With a wait, a group's first message is
held in the state DB (:class:`HeldGroup`, in the router's transaction, so a crash loses nothing)
for ``group_wait`` after its first member; members that arrive meanwhile join it; the first router
call after the wait sends it as one message. A member seen twice keeps its latest notification;
one that failed and recovered inside the wait is dropped (nobody heard it fail).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from .events import AlertEvent, Severity, short_hash
from .lifecycle import Transition
from .notification import Notification
from .policy import group_key

UPSTREAM_TAG = "dagster-monitoring/upstream"  # JSON list of upstream asset keys ("raw/loans"), all ancestors
ASSET_TAG = "dagster-monitoring/asset"  # the asset an asset-check event is about
MAX_UPSTREAM = 100  # ancestors carried per event; the tag stays small in the state DB

_TRANSITION_RANK = {Transition.ESCALATED: 0, Transition.NEW: 1, Transition.REMINDER: 2, Transition.ONGOING: 3, Transition.RECOVERED: 4}


def upstream_tag(assets: Iterable[str]) -> str:
    """The :data:`UPSTREAM_TAG` value for ``assets`` (sorted, capped at :data:`MAX_UPSTREAM`)."""
    return json.dumps(sorted(set(assets))[:MAX_UPSTREAM], separators=(",", ":"))


def upstream_of(event: AlertEvent) -> list[str]:
    raw = event.tags.get(UPSTREAM_TAG) if event.tags else None
    if not raw:
        return []
    try:
        found = json.loads(raw)
    except ValueError:
        return []
    return [str(a) for a in found] if isinstance(found, list) else []


class Inhibitors:
    """Which failing asset-check events of one router call could inhibit which others.

    Built once per call from the call's failing events (one run's events arrive in one call);
    :meth:`find` is a dict lookup per upstream asset, so events without the tag pay nothing."""

    def __init__(self, events: Iterable[AlertEvent]) -> None:
        self._by_run_asset: dict[tuple[str, str], list[tuple[str, Severity]]] = {}
        for event in events:
            asset = event.tags.get(ASSET_TAG) if event.tags else None
            if asset and event.run_id and event.is_failing:
                self._by_run_asset.setdefault((event.run_id, asset), []).append((event.fingerprint, event.severity))

    def __bool__(self) -> bool:
        return bool(self._by_run_asset)

    def find(self, event: AlertEvent, severity: Severity) -> str | None:
        """The fingerprint of an upstream failure of the same run at least as severe, if any."""
        if not event.run_id or UPSTREAM_TAG not in event.tags:
            return None
        for asset in upstream_of(event):
            for fingerprint, upstream_severity in self._by_run_asset.get((event.run_id, asset), ()):
                if fingerprint != event.fingerprint and upstream_severity >= severity:
                    return fingerprint
        return None


def fold_inhibited(notifications: list[Notification], held: Sequence[tuple[str, Notification]]) -> list[Notification]:
    """Attach each held notification to its root inhibitor's notification for the same receiver
    (following chains: a test inhibited by a model inhibited by a source goes to the source)."""
    if not held:
        return notifications
    inhibited_by = {n.incident.fingerprint: by for by, n in held}

    def root(fingerprint: str) -> str:
        seen = {fingerprint}
        while fingerprint in inhibited_by and inhibited_by[fingerprint] not in seen:
            fingerprint = inhibited_by[fingerprint]
            seen.add(fingerprint)
        return fingerprint

    extra: dict[tuple[str, str], list[Notification]] = {}
    for by, n in held:
        extra.setdefault((root(by), n.receiver), []).append(n)
    out = []
    for n in notifications:
        more = extra.get((n.incident.fingerprint, n.receiver))
        out.append(replace(n, also_affected=(*n.also_affected, *more)) if more else n)
    return out


def _lead_order(n: Notification) -> tuple[int, int, int]:
    return (n.transition is Transition.RECOVERED, -n.severity.rank, _TRANSITION_RANK[n.transition])


def group_notifications(
    notifications: Sequence[Notification], fields: Sequence[str], groupable: Callable[[str], bool]
) -> list[Notification]:
    """One notification per (receiver, group key): the lead (failing before recovered, then most
    severe, then escalated / new / reminder, then first come) with the others as ``members``.
    Notifications without a key, or for a receiver ``groupable`` refuses, stay as they are."""
    if not fields or len(notifications) < 2:
        return list(notifications)
    groups: dict[tuple[str, tuple[str, ...]], list[Notification]] = {}
    out: list[Notification | tuple[str, tuple[str, ...]]] = []
    for n in notifications:
        key = group_key(n.event, fields) if groupable(n.receiver) else None
        if key is None:
            out.append(n)
            continue
        slot = (n.receiver, key)
        if slot not in groups:
            groups[slot] = []
            out.append(slot)
        groups[slot].append(n)
    return [item if isinstance(item, Notification) else merge(groups[item]) for item in out]


def merge(members: Sequence[Notification]) -> Notification:
    """One message for ``members`` (one receiver); a single member is returned as it is."""
    if len(members) == 1:
        return members[0]
    ordered = sorted(members, key=_lead_order)  # stable: first come first among equals
    lead = ordered[0]
    digest = short_hash("|".join(sorted(m.key for m in members)), 16)
    # what inhibition folded into any member is listed once, for the whole message
    affected = tuple(a for m in ordered for a in m.also_affected)
    others = tuple(replace(m, also_affected=()) if m.also_affected else m for m in ordered[1:])
    return replace(lead, key=f"group:{digest}:{lead.receiver}", members=others, also_affected=affected)


@dataclass
class HeldGroup:
    """A group's first message waiting out ``group_wait`` (a row of the state DB)."""

    receiver: str
    key: str  # the group key's values, as JSON
    opened_at: datetime
    due_at: datetime
    members: list[Notification] = field(default_factory=list)

    @property
    def slot(self) -> tuple[str, str]:
        return (self.receiver, self.key)


@dataclass
class GroupWaitResult:
    messages: list[Notification]  # to queue now: ungroupable ones, and the groups whose wait is over
    held: list[HeldGroup]  # groups still waiting, new or with new members (to store)
    released: list[tuple[str, str]]  # stored groups sent now (to delete)


def _absorb(members: list[Notification], n: Notification) -> None:
    """Add ``n`` to a held group: an incident already there keeps its latest notification (a
    first announcement stays NEW), and one that recovers before it was ever sent leaves."""
    for i, m in enumerate(members):
        if m.incident.incident_id != n.incident.incident_id:
            continue
        if m.transition is Transition.NEW:
            if n.transition is Transition.RECOVERED:
                del members[i]
                return
            n = replace(n, transition=Transition.NEW)
        members[i] = n
        return
    members.append(n)


def hold_groups(
    notifications: Sequence[Notification],
    held: dict[tuple[str, str], HeldGroup],
    fields: Sequence[str],
    groupable: Callable[[str], bool],
    now: datetime,
    wait: timedelta,
) -> GroupWaitResult:
    """Apply ``group_wait``: groupable notifications join their (receiver, group key)'s held group
    (opened now when there is none), and every group whose wait is over becomes one message."""
    messages: list[Notification] = []
    touched: dict[tuple[str, str], HeldGroup] = {}
    for n in notifications:
        key = group_key(n.event, fields) if fields and groupable(n.receiver) else None
        if key is None:
            messages.append(n)
            continue
        slot = (n.receiver, json.dumps(key, separators=(",", ":")))
        group = touched.get(slot)
        if group is None:
            stored = held.get(slot)
            group = (
                HeldGroup(stored.receiver, stored.key, stored.opened_at, stored.due_at, list(stored.members))
                if stored
                else HeldGroup(n.receiver, slot[1], now, now + wait)
            )
            touched[slot] = group
        _absorb(group.members, n)
    groups = {**held, **touched}
    released = [slot for slot, g in groups.items() if g.due_at <= now]
    messages.extend(merge(groups[slot].members) for slot in released if groups[slot].members)
    return GroupWaitResult(
        messages,
        [g for slot, g in touched.items() if g.due_at > now],
        [slot for slot in released if slot in held],
    )


def expand(notification: Notification) -> list[Notification]:
    """The members a message stands for (the audit trail records a delivery per incident)."""
    return [replace(m, members=(), also_affected=()) if m is notification else m for m in notification.group]


__all__: Sequence[str] = [
    "ASSET_TAG",
    "UPSTREAM_TAG",
    "GroupWaitResult",
    "HeldGroup",
    "Inhibitors",
    "expand",
    "fold_inhibited",
    "group_notifications",
    "hold_groups",
    "merge",
    "upstream_of",
    "upstream_tag",
]
