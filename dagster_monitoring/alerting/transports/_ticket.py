"""What the ticket receivers (Jira, ServiceNow) share: how a ticket is found again, and what it says.

**The idempotency key is per (receiver, incident), not per fingerprint.** The look-up before a
create has one job: to answer "did an earlier attempt of this very delivery already open a ticket?"
(a create that timed out after the server made the issue). A fingerprint key with an "is still
open" filter answers a different question, and gets this one wrong three ways: ServiceNow keeps a
*resolved* incident ``active=true`` until it is closed days later, so the next incident of the
same check would be filed under the old one; Jira's search index can still list an issue closed a
few seconds ago as open; and a ticket whose close failed would be adopted by the next incident.
The fingerprint hash still goes on the ticket (a Jira label), so people can list every ticket one
check ever had. The router keeps the incident → ticket mapping in its state; the key is only the
fallback that makes a retry safe.

The text is built once here (redacted, truncated) and rendered by each receiver: Atlassian
Document Format for Jira Cloud, wiki text for Jira Data Center, plain text for ServiceNow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..durations import format_duration
from ..events import short_hash
from ..lifecycle import Transition
from ..notification import Notification
from ..redact import redact
from ..text import truncate

LINK_TITLES = {"run": "Dagster run"}  # the rest as on cards (notification.LINK_TITLES)
DETAIL_LIMIT = 2000  # characters per detail value; Jira text fields stop at 32,767 in all
MAX_DETAILS = 20
OPENED_BY = "dagster-monitoring"
# A recovery whose ticket is not known yet (its `new` is still backing off, or was refused) waits
# this long and tries again, rather than closing nothing and leaving the ticket open for good.
AWAIT_TICKET_SECONDS = 60.0


def ticket_key(receiver: str, incident_id: str) -> str:
    """``dm-inc-<16 hex>``: the Jira label / ServiceNow correlation_id of one receiver's ticket for one incident."""
    return f"dm-inc-{short_hash(f'{receiver}:{incident_id}', 16)}"


def fingerprint_label(notification: Notification) -> str:
    """``dm-<12 hex>``: the same on every ticket of one check (for people's filters, not for look-ups)."""
    return f"dm-{short_hash(notification.incident.fingerprint)}"


def own_ticket(notification: Notification, receiver: str) -> Mapping[str, str] | None:
    """The ticket this receiver opened for this notification's incident, if the state knows it."""
    ref = notification.incident.tickets.get(receiver)
    if not ref or not ref.get("key"):
        return None
    if ref.get("incident_id", notification.incident.incident_id) != notification.incident.incident_id:
        return None
    return ref


def one_line(text: str, limit: int) -> str:
    return truncate(" ".join(redact(text).split()), limit)


@dataclass(frozen=True)
class TicketText:
    """A ticket's content, already redacted: the on-call questions in order."""

    summary: str  # one line, without the severity (receivers add their own prefix or priority)
    what: str
    facts: tuple[tuple[str, str], ...]  # failing since, failures, owner, ...
    details: tuple[tuple[str, str], ...]  # offending value, error, ...
    next_action: str
    links: tuple[tuple[str, str], ...]  # (title, url)
    footer: str


def ticket_text(notification: Notification) -> TicketText:
    """What the ticket says when it is opened (the description)."""
    ev = notification.event
    # absolute times: a ticket is read hours later, when "(0s ago)" is false
    facts = (("Severity", notification.severity.value.upper()),) + tuple(
        (label, redact(value)) for label, value in notification.lifecycle_facts(relative=False) if label != "Ticket"
    )
    shown = notification.presentation
    details = [(label, truncate(redact(value).strip(), DETAIL_LIMIT)) for label, value in shown.facts[:MAX_DETAILS]]
    if shown.text:
        details.append((shown.text_label or "Details", truncate(redact(shown.text).strip(), DETAIL_LIMIT)))
    if notification.also_affected:  # downstream alerts of the same run that inhibition folded into this incident
        affected = ", ".join(f"{m.event.entity} ({m.severity.value.upper()})" for m in notification.also_affected)
        details.append(("Also affected (same run, downstream)", truncate(redact(affected), DETAIL_LIMIT)))
    links = tuple(notification.links(LINK_TITLES))
    return TicketText(
        summary=one_line(notification.headline, 200),
        what=redact(ev.summary or notification.headline),
        facts=facts,
        details=tuple(details),
        next_action=redact(notification.next_action),
        links=links,
        footer=(
            f"Opened by {OPENED_BY} for fingerprint {notification.incident.fingerprint} "
            f"(incident {notification.incident.incident_id}); it comments while the failure goes on "
            f"and closes the ticket when it recovers."
        ),
    )


def update_text(notification: Notification, *, extra: str = "") -> str:
    """One paragraph for a comment / work note: what changed since the ticket was opened."""
    inc = notification.incident
    ev = notification.event
    since = inc.first_failed_at.strftime("%Y-%m-%d %H:%M UTC")
    failures = f"{inc.failures} failure{'s' if inc.failures != 1 else ''}" + (f" ({inc.flaps} flaps)" if inc.flaps else "")
    error = ev.details.get("error")
    last_error = f" Last error: {one_line(str(error), 300)}." if error else ""
    if notification.transition is Transition.RECOVERED:
        broken = format_duration(inc.broken_for) if inc.broken_for is not None else "an unknown time"
        at = inc.recovered_at.strftime("%Y-%m-%d %H:%M UTC") if inc.recovered_at else "now"
        fixed = ev.links.get("fixed_by_run")
        text = f"Recovered at {at}, broken for {broken} ({failures} since {since})." + (f" Fixed by the run {fixed}." if fixed else "")
    elif notification.transition is Transition.ESCALATED:
        text = f"{notification.transition_line} Failing since {since}.{last_error}"
    else:
        last = inc.last_failed_at or inc.first_failed_at
        text = f"Still failing: {failures} since {since} ({format_duration(last - inc.first_failed_at)} so far).{last_error}"
    return redact(f"{text}{(' ' + extra) if extra else ''} — {OPENED_BY}")
