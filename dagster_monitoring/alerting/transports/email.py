"""E-mail over SMTP with smtplib: plain, STARTTLS or implicit TLS, optional login.

One multipart/alternative message (text + HTML) per transition. Message-IDs derive from the
incident, and later messages carry ``In-Reply-To``/``References`` to the first one, so mail
clients thread a reminder and the recovery under the original alert.
"""

from __future__ import annotations

import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Literal

from pydantic import Field, model_validator

from ..lifecycle import Transition
from ..notification import Notification
from ..redact import describe_error, get_logger, redact
from ._config import ReceiverConfigBase, SecretValue
from .base import DeliveryResult

_log = get_logger(__name__)
_SEVERITY_COLOUR = {"warn": "#b7791f", "error": "#c53030", "critical": "#9b2c2c"}


class EmailConfig(ReceiverConfigBase):
    type: Literal["email"] = "email"
    host: str = Field(description="SMTP server")
    port: int | None = Field(default=None, ge=1, le=65535, description="default: 25 plain, 587 starttls, 465 ssl")
    security: Literal["none", "starttls", "ssl"] = Field(
        default="starttls", description="ssl: implicit TLS; none only on a trusted network"
    )
    username: str | None = Field(default=None, description="login user, with password")
    password: SecretValue | None = Field(default=None, description="{env: SMTP_PASSWORD}")
    from_addr: str = Field(alias="from", description="sender address")
    to: tuple[str, ...] = Field(min_length=1, description="recipient addresses")
    subject_prefix: str = Field(default="[dagster-monitoring]", description="put in front of every subject")
    ca_file: str | None = Field(default=None, description="CA bundle to verify the server (default: system store)")
    verify_tls: bool = Field(default=True, description="false skips certificate checks (test servers only)")

    model_config = ReceiverConfigBase.model_config | {"populate_by_name": True}

    @model_validator(mode="after")
    def _login_pair(self) -> EmailConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or {"none": 25, "starttls": 587, "ssl": 465}[self.security]


def _message_id(notification: Notification, transition: str) -> str:
    return f"<{notification.incident.incident_id}.{transition}@dagster-monitoring>"


def build_email(config: EmailConfig, notification: Notification) -> EmailMessage:
    """One subject per incident (clients thread it; the transition opens the body), plain labels,
    values that wrap (long paths and URLs), no failure wording in a recovery."""
    recovered = notification.transition is Transition.RECOVERED
    msg = EmailMessage()
    msg["Subject"] = redact(f"{config.subject_prefix} {notification.thread_subject}".strip())
    msg["From"] = config.from_addr
    msg["To"] = ", ".join(config.to)
    msg["Date"] = format_datetime(notification.created_at)
    if notification.transition is Transition.NEW:
        msg["Message-ID"] = _message_id(notification, "new")
    else:
        msg["Message-ID"] = make_msgid(domain="dagster-monitoring")
        msg["In-Reply-To"] = _message_id(notification, "new")
        msg["References"] = _message_id(notification, "new")
    msg["X-Dagster-Monitoring-Fingerprint"] = notification.incident.fingerprint
    msg["X-Dagster-Monitoring-Transition"] = notification.transition.value

    shown = notification.presentation
    facts = notification.lifecycle_facts()
    what = [] if recovered else shown.facts
    error_text = None if recovered else shown.text
    links = dict(notification.links())
    ticket = notification.ticket
    if ticket and ticket.get("url"):
        links[f"Ticket {ticket['key']}"] = ticket["url"]
    links.update(notification.actions)  # signed Acknowledge / Silence links, when configured
    badge = "RECOVERED" if recovered else f"{notification.severity.value.upper()} · {notification.status_label.upper()}"

    sections = member_sections(notification)
    text = [f"{badge}: {notification.headline}{notification.group_suffix}", notification.transition_line, ""]
    text += [f"{k}: {redact(v)}" for k, v in facts]
    for title, lines in sections:
        text += ["", f"{title}:"] + [f"  {line}" + (f" <{url}>" if url else "") for line, url in lines]
    if what:
        text += ["", "What failed:"] + [f"  {k}: {redact(v)}" for k, v in what]
    if error_text:
        text += ["", f"{shown.text_label or 'Details'}:", redact(error_text)]
    text += ["", f"Next action: {notification.next_action}"]
    if links:
        text += ["", "Links:"] + [f"  {k}: {v}" for k, v in links.items()]
    msg.set_content("\n".join(text))

    colour = "#2f855a" if recovered else _SEVERITY_COLOUR[notification.severity.value]
    e = html.escape
    wrap = "overflow-wrap:anywhere;word-break:break-word"
    th = "align='left' valign='top' style='padding:2px 12px 2px 0;white-space:nowrap'"

    def table(rows: list[tuple[str, str]]) -> str:
        return "<table>" + "".join(f"<tr><th {th}>{e(k)}</th><td style='{wrap}'>{e(redact(v))}</td></tr>" for k, v in rows) + "</table>"

    def rows_table() -> str:
        rows = shown.rows
        assert rows is not None
        cell = "style='border:1px solid #ccc;padding:2px 6px;vertical-align:top;" + wrap + "'"
        head = "".join(f"<th {cell}>{e(c)}</th>" for c in rows.columns)
        body = "".join(
            "<tr>" + "".join(f"<td {cell}>{'<i>NULL</i>' if v is None else e(v)}</td>" for v in row) + "</tr>" for row in rows.rows
        )
        return f"<table style='border-collapse:collapse;font-size:13px'><tr>{head}</tr>{body}</table>"

    def member_html() -> str:
        return "".join(
            f"<h4>{e(title)}</h4><ul>"
            + "".join(
                f"<li style='{wrap}'>" + (f"<a href='{e(url, quote=True)}'>{e(line)}</a>" if url else e(line)) + "</li>"
                for line, url in lines
            )
            + "</ul>"
            for title, lines in sections
        )

    link_html = " · ".join(f"<a href='{e(v, quote=True)}'>{e(k)}</a>" for k, v in links.items())
    body = (
        f"<div style='font-family:sans-serif;max-width:720px'>"
        f"<div style='background:{colour};color:#fff;padding:8px 12px'><div style='font-size:12px'>{e(badge)}</div>"
        f"<b style='{wrap}'>{e(notification.headline + notification.group_suffix)}</b></div>"
        f"<p>{e(notification.transition_line)}</p>"
        + table(facts)
        + member_html()
        + (f"<h4>What failed</h4>{table(what)}" if what else "")
        + (f"<h4>{e(shown.text_label or 'Failing rows')}</h4>{rows_table()}" if error_text and shown.rows is not None else "")
        + (
            f"<h4>{e(shown.text_label or 'Details')}</h4><pre style='margin:0;white-space:pre-wrap;{wrap}'>{e(redact(error_text))}</pre>"
            if error_text and shown.rows is None
            else ""
        )
        + f"<p><b>Next action:</b> {e(notification.next_action)}</p>"
        + (f"<p>{link_html}</p>" if link_html else "")
        + "</div>"
    )
    msg.add_alternative(body, subtype="html")
    return msg


def _tls_context(config: EmailConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=config.ca_file)
    if not config.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def deliver(cfg: EmailConfig, message: EmailMessage, name: str | None = None) -> DeliveryResult:
    """Send one message over ``cfg``'s SMTP server; the outcome classified (retryable or not),
    never raised. The alert transport and the digest both send through here."""
    timeout = cfg.timeout.total_seconds()
    try:
        if cfg.security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.effective_port, timeout=timeout, context=_tls_context(cfg))
        else:
            client = smtplib.SMTP(cfg.host, cfg.effective_port, timeout=timeout)
        with client:
            if cfg.security == "starttls":
                client.starttls(context=_tls_context(cfg))
            if cfg.username and cfg.password:
                client.login(cfg.username, cfg.password.get_secret_value())
            refused = client.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        return DeliveryResult.failure(f"SMTP login failed for {cfg.username}: {exc.smtp_code}", retryable=False)
    except smtplib.SMTPRecipientsRefused as exc:
        return DeliveryResult.failure(f"all recipients refused: {sorted(exc.recipients)}", retryable=False)
    except smtplib.SMTPResponseException as exc:
        return DeliveryResult.failure(f"SMTP {exc.smtp_code}: {redact(exc.smtp_error)}", retryable=400 <= exc.smtp_code < 500)
    except ssl.SSLCertVerificationError as exc:  # a wrong CA or host name needs a human, not retries
        return DeliveryResult.failure(f"SMTP {cfg.host}:{cfg.effective_port}: {describe_error(exc)}", retryable=False)
    except (TimeoutError, smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        return DeliveryResult.failure(f"SMTP {cfg.host}:{cfg.effective_port}: {describe_error(exc)}", retryable=True)
    if refused:  # delivered to the others; retrying would duplicate their copy
        _log.warning("receiver %s: recipients refused: %s", name or cfg.name, sorted(refused))
    return DeliveryResult.success(external_id=str(message["Message-ID"]))


MAX_MEMBER_LINES = 50  # per section of a grouped e-mail; the rest is "+N more"


def member_sections(notification: Notification) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """A group's members (lead first) and its "also affected" alerts: (title, [(line, link)])."""
    sections = []
    for title, members in (
        (f"{len(notification.group)} alerts in this message", notification.group if notification.members else ()),
        (f"Also affected ({len(notification.also_affected)}, downstream in the same run)", notification.also_affected),
    ):
        if not members:
            continue
        lines: list[tuple[str, str | None]] = []
        for m in members[:MAX_MEMBER_LINES]:
            url = next((u for _, u in m.links()), None)
            lines.append((redact(m.member_line()), url))
        if len(members) > MAX_MEMBER_LINES:
            lines.append((f"+{len(members) - MAX_MEMBER_LINES} more", None))
        sections.append((title, lines))
    return sections


class EmailTransport:
    def __init__(self, config: EmailConfig) -> None:
        self.config = config
        self.name = config.name

    def render(self, notification: Notification) -> str:
        return build_email(self.config, notification).as_string()

    def send(self, notification: Notification) -> DeliveryResult:
        return deliver(self.config, build_email(self.config, notification), self.name)
