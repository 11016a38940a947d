"""The digest: the on-call report for one schedule slot, mailed (HTML + text) and summarised in
a Teams card, each channel at most once per slot.

Plain Python; the Dagster schedule (:mod:`.schedule`) only hands it the slot. Once per slot is
kept in the alert state DB (:meth:`~..alerting.state.SqlStateStore.claim_once`), keyed by the
schedule's name, the slot's scheduled time and the channel: a retried or re-executed run for the
same slot finds the channel sent and sends nothing; a channel that failed is given back and
goes out on the retry. The clock and the HTTP poster are fields tests can swap.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from ..alerting.redact import redact
from ..alerting.state import SqlStateStore
from ..alerting.transports.base import DeliveryResult, HttpJsonPoster, post_and_classify
from ..alerting.transports.email import EmailConfig, deliver
from ..alerting.transports.teams import TeamsConfig
from ..alerting.transports.teams_card import CARD_SCHEMA, CARD_VERSION, plain, wrap_message
from ..audit.sinks.base import AuditSink
from ..config import MonitoringConfig
from .config import DigestConfig
from .data import SEVERITIES, ReportData, ReportFilters, fetch_report
from .render import render_html, render_text

TEAMS_FAILING_LINES = 8  # failing entities listed on the card; the mail has them all
_HEADER_STYLE = {"CRITICAL": "attention", "ERROR": "attention", "WARN": "warning"}


@dataclass
class DigestOutcome:
    slot: datetime
    sent: dict[str, str] = field(default_factory=dict)  # channel -> what it was sent to / its id
    skipped: dict[str, str] = field(default_factory=dict)  # channel -> why not
    failed: dict[str, str] = field(default_factory=dict)  # channel -> redacted error
    failing: int = 0

    def summary(self) -> str:
        parts = [f"slot {self.slot.isoformat()}: {self.failing} failing"]
        parts += [f"{c} sent ({v})" for c, v in self.sent.items()]
        parts += [f"{c} skipped ({v})" for c, v in self.skipped.items()]
        parts += [f"{c} FAILED ({v})" for c, v in self.failed.items()]
        return "; ".join(parts)


def digest_filters(config: DigestConfig) -> ReportFilters:
    return ReportFilters(min_severity=config.min_severity, owners=config.owners, sources=config.sources)


def headline(data: ReportData) -> str:
    counts = data.severity_counts
    if data.nothing_failing:
        return "nothing failing"
    worst = ", ".join(f"{counts[s]} {s.lower()}" for s in SEVERITIES if counts[s])
    return f"{len(data.failing)} failing ({worst})" if data.failing else f"{len(data.open_alerts)} open alerts"


def build_digest_email(server: EmailConfig, to: tuple[str, ...], subject: str, data: ReportData, slot: datetime) -> EmailMessage:
    """One multipart/alternative mail: the report's text, then its HTML page."""
    msg = EmailMessage()
    msg["Subject"] = redact(f"{server.subject_prefix} {subject}: {headline(data)} — {slot:%Y-%m-%d %H:%M} UTC".strip())
    msg["From"] = server.from_addr
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(data.generated_at)
    to_hash = hashlib.sha256(",".join(to).encode()).hexdigest()[:12]
    msg["Message-ID"] = f"<digest.{slot:%Y%m%dT%H%M%S}.{to_hash}@dagster-monitoring>"  # the same for a slot and its recipients
    msg["X-Dagster-Monitoring-Digest-Slot"] = slot.isoformat()
    msg.set_content(render_text(data, title=subject))
    msg.add_alternative(render_html(data, title=subject), subtype="html")
    return msg


def build_digest_card(data: ReportData, title: str, slot: datetime) -> dict[str, Any]:
    """An Adaptive Card 1.5 summary, in the alert cards' conventions (coloured header, facts,
    escaped text): the counts, then the worst failing entities with their owners."""
    counts = data.severity_counts
    worst = next((s for s in SEVERITIES if counts[s]), None)
    header = {
        "type": "Container",
        "style": _HEADER_STYLE[worst] if worst else "good",
        "bleed": True,
        "items": [
            {
                "type": "TextBlock",
                "text": plain(f"DIGEST · {slot:%Y-%m-%d %H:%M} UTC"),
                "weight": "Bolder",
                "size": "Small",
                "spacing": "None",
            },
            {"type": "TextBlock", "text": plain(f"{title}: {headline(data)}"), "weight": "Bolder", "size": "Large", "wrap": True},
        ],
    }
    facts = [{"title": s.capitalize(), "value": str(counts[s])} for s in SEVERITIES]
    facts += [
        {"title": "Open alerts", "value": str(len(data.open_alerts))},
        {"title": "Tickets", "value": plain(", ".join(data.tickets) or "none", in_table=True)},
        {"title": "Flaky", "value": str(len(data.flaky))},
        {"title": "Regressing jobs", "value": plain(", ".join(t.job for t in data.regressing) or "none", in_table=True)},
    ]
    body: list[dict[str, Any]] = [header, {"type": "FactSet", "facts": facts}]
    for row in data.failing[:TEAMS_FAILING_LINES]:
        sev = (row.get("severity") or "ERROR").upper()
        body.append(
            {
                "type": "TextBlock",
                "text": plain(f"{sev} · {row['entity']} ({row['entity_type']}) · {row.get('owners') or 'no owner'}"),
                "wrap": True,
                "spacing": "Small",
                **({"color": "Attention"} if sev != "WARN" else {}),
            }
        )
    if len(data.failing) > TEAMS_FAILING_LINES:
        more = len(data.failing) - TEAMS_FAILING_LINES
        body.append({"type": "TextBlock", "text": f"and {more} more in the mailed report", "isSubtle": True, "wrap": True})
    body.append({"type": "TextBlock", "text": plain(f"Showing {data.filters.describe()}"), "isSubtle": True, "size": "Small", "wrap": True})
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": CARD_SCHEMA,
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    }
    links = [
        {"type": "Action.OpenUrl", "title": plain(f"Run: {row['entity']}"), "url": row["last_run_url"]}
        for row in data.failing[:3]
        if str(row.get("last_run_url") or "").startswith(("http://", "https://"))
    ]
    if links:
        card["actions"] = links
    return card


class DigestSender:
    """Builds the digest for a slot and sends each configured channel once."""

    def __init__(
        self,
        config: MonitoringConfig,
        *,
        sink: AuditSink,
        store: SqlStateStore,
        poster: HttpJsonPoster | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if config.digest is None:
            raise ValueError("the config has no digest: section")
        self.config = config
        self.digest: DigestConfig = config.digest
        self.sink = sink
        self.store = store
        self.poster = poster
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    def _email_server(self) -> tuple[EmailConfig, tuple[str, ...]]:
        email = self.digest.email
        assert email is not None
        server: EmailConfig = self.config.receiver(email.receiver) if email.receiver else email.smtp  # type: ignore[assignment]
        return server, email.to or server.to

    def _send_email(self, data: ReportData, slot: datetime) -> tuple[DeliveryResult, str]:
        server, to = self._email_server()
        result = deliver(server, build_digest_email(server, to, self.digest.title, data, slot), f"digest via {server.name}")
        return result, ", ".join(to)

    def _send_teams(self, data: ReportData, slot: datetime) -> tuple[DeliveryResult, str]:
        assert self.digest.teams is not None
        teams: TeamsConfig = self.config.receiver(self.digest.teams.receiver)
        poster = self.poster or HttpJsonPoster(timeout=teams.timeout.total_seconds())
        card = build_digest_card(data, self.digest.title, slot)
        result = post_and_classify(poster, teams.webhook_url.get_secret_value(), wrap_message(card))
        return result, teams.name

    def send(self, slot: datetime) -> DigestOutcome:
        slot = slot.astimezone(timezone.utc)
        data = fetch_report(self.sink, filters=digest_filters(self.digest), now=self.clock())
        outcome = DigestOutcome(slot, failing=len(data.failing))
        channels: list[tuple[str, Callable[[ReportData, datetime], tuple[DeliveryResult, str]]]] = []
        if self.digest.email is not None:
            channels.append(("email", self._send_email))
        if self.digest.teams is not None:
            channels.append(("teams", self._send_teams))
        for channel, send in channels:
            if data.nothing_failing and not self.digest.send_when_empty:
                outcome.skipped[channel] = "nothing failing (send_when_empty: false)"
                continue
            key = f"{self.digest.name}|{slot.isoformat()}|{channel}"
            if not self.store.claim_once(key, self.clock()):
                outcome.skipped[channel] = "already sent for this slot"
                continue
            try:
                result, target = send(data, slot)
            except BaseException:
                self.store.finish_once(key, self.clock(), sent=False)
                raise
            self.store.finish_once(key, self.clock(), sent=result.ok, detail=result.external_id or target)
            if result.ok:
                outcome.sent[channel] = target
            else:
                outcome.failed[channel] = redact(result.error or "failed")
        return outcome
