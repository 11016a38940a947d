"""ServiceNow: one incident record per incident, work notes while it goes on, resolved on recovery.

Table API (``/api/now/table/incident``), basic auth or an OAuth bearer token. Per transition:

- ``new``: ``GET ?sysparm_query=correlation_id=<key>^active=true`` first, then create with
  ``correlation_id`` = the ticket key (``dm-inc-<hash>`` of receiver + incident id),
  urgency / impact from severity, the assignment group from the owner map. The look-up makes the
  retry of a create that timed out after ServiceNow made the record find it (the Table API
  reads its own writes, so no waiting is needed, unlike Jira's search).
- ``reminder`` / ``escalated``: a work note; ``escalated`` also raises urgency and impact.
- ``recovered``: ``state=6`` (Resolved) with ``close_code`` and ``close_notes`` (both required by
  the default data policy), the notes saying how long it was broken. A recovery that overtakes
  its ``new`` (still backing off) waits for the record instead of resolving nothing.

The key is per incident, not per fingerprint, because a resolved record stays ``active=true`` until
ServiceNow closes it days later: a fingerprint key would file the next incident under the old one.

The state keeps the record's number (``INC0010001``, what people search for) as the ticket key and a
link that carries the ``sys_id``, which updates need; without a link, the key is looked up again.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..events import Severity
from ..lifecycle import Transition
from ..notification import Notification
from ..redact import get_logger
from ..text import truncate
from ._api import JsonApi, check_credentials, credential_headers, reject_managed_fields
from ._config import BaseUrl, ReceiverConfigBase, SecretValue
from ._ticket import AWAIT_TICKET_SECONDS, OPENED_BY, own_ticket, ticket_key, ticket_text, update_text
from .base import DeliveryResult, HttpJsonPoster

_log = get_logger(__name__)

TABLE_PATH = "/api/now/table/incident"
RESOLVED, CLOSED = "6", "7"
FIELDS = "sys_id,number,state"
DEFAULT_LEVELS = {Severity.CRITICAL: 1, Severity.ERROR: 2, Severity.WARN: 3}
MANAGED_FIELDS = frozenset(
    {
        "short_description",
        "description",
        "urgency",
        "impact",
        "assignment_group",
        "caller_id",
        "correlation_id",
        "correlation_display",
        "state",
        "close_code",
        "close_notes",
        "work_notes",
    }
)
SHORT_DESCRIPTION_LIMIT = 160
DESCRIPTION_LIMIT = 30_000
_SYS_ID = re.compile(r"sys_id(?:=|%3D)([0-9a-f]{32})")


class ServiceNowConfig(ReceiverConfigBase):
    """A ServiceNow instance that gets one incident record per incident."""

    type: Literal["servicenow"] = "servicenow"
    base_url: BaseUrl = Field(description="the instance, e.g. https://acme.service-now.com")
    username: str | None = Field(default=None, description="basic auth user (with password)")
    password: SecretValue | None = Field(default=None, description="{env: SERVICENOW_PASSWORD}")
    bearer_token: SecretValue | None = Field(default=None, description="an OAuth access token instead of basic auth")
    urgency: dict[Severity, int] = Field(default_factory=lambda: dict(DEFAULT_LEVELS), description="severity -> 1 (high) .. 3 (low)")
    impact: dict[Severity, int] = Field(default_factory=lambda: dict(DEFAULT_LEVELS), description="severity -> 1 (high) .. 3 (low)")
    assignment_groups: dict[str, str] = Field(
        default_factory=dict,
        description="owner (team:x, e-mail) -> assignment group (name or sys_id); first owner found wins",
    )
    default_assignment_group: str | None = None
    caller_id: str | None = Field(default=None, description="user (name or sys_id) the incidents are raised for")
    close_code: str = Field(default="Solved (Permanently)", min_length=1, description="a close_code choice of your instance")
    extra_fields: dict[str, str] = Field(default_factory=dict, description="more create fields, e.g. category, cmdb_ci")

    @field_validator("urgency", "impact")
    @classmethod
    def _levels(cls, value: dict[Severity, int]) -> dict[Severity, int]:
        bad = {k.value: v for k, v in value.items() if v not in (1, 2, 3)}
        if bad:
            raise ValueError(f"levels are 1 (high), 2 (medium) or 3 (low), got {bad}")
        return value

    @field_validator("extra_fields")
    @classmethod
    def _extra(cls, value: dict[str, str]) -> dict[str, str]:
        reject_managed_fields(value, MANAGED_FIELDS)
        return value

    @model_validator(mode="after")
    def _auth(self) -> ServiceNowConfig:
        check_credentials(
            self.bearer_token,
            self.username,
            self.password,
            user_field="username",
            secret_field="password",
            basic_name="basic auth",
            bearer_name="OAuth",
        )
        return self


def auth_headers(config: ServiceNowConfig) -> dict[str, str]:
    """Basic or OAuth bearer."""
    return credential_headers(config.bearer_token, config.username, config.password)


def assignment_group(config: ServiceNowConfig, notification: Notification) -> str | None:
    for owner in notification.event.owners:
        if owner in config.assignment_groups:
            return config.assignment_groups[owner]
    return config.default_assignment_group


def build_description(notification: Notification) -> str:
    """Plain text: ServiceNow shows description as text."""
    content = ticket_text(notification)
    lines = [content.what, ""]
    lines += [f"{label}: {value}" for label, value in content.facts]
    if content.details:
        lines += ["", "Details:"]
        for label, value in content.details:
            lines += [f"{label}:", *("    " + line for line in value.splitlines())]
    lines += ["", f"Next action: {content.next_action}"]
    if content.links:
        lines += ["", "Links:"] + [f"  {title}: {url}" for title, url in content.links]
    lines += ["", content.footer]
    return truncate("\n".join(lines), DESCRIPTION_LIMIT)


def build_record(config: ServiceNowConfig, notification: Notification) -> dict[str, str]:
    """The create request body."""
    severity = notification.severity
    record = {
        "short_description": truncate(f"[{severity.value.upper()}] {ticket_text(notification).summary}", SHORT_DESCRIPTION_LIMIT),
        "description": build_description(notification),
        "urgency": str(config.urgency.get(severity, 3)),
        "impact": str(config.impact.get(severity, 3)),
        "correlation_id": ticket_key(config.name, notification.incident.incident_id),
        "correlation_display": OPENED_BY,
    }
    group = assignment_group(config, notification)
    if group:
        record["assignment_group"] = group
    if config.caller_id:
        record["caller_id"] = config.caller_id
    record.update(config.extra_fields)
    return record


def build_update(config: ServiceNowConfig, notification: Notification) -> dict[str, str]:
    """The PATCH body for reminders, escalations and the recovery."""
    transition = notification.transition
    if transition is Transition.RECOVERED:
        return {"state": RESOLVED, "close_code": config.close_code, "close_notes": update_text(notification)}
    update = {"work_notes": update_text(notification)}
    if transition is Transition.ESCALATED:
        update["urgency"] = str(config.urgency.get(notification.severity, 3))
        update["impact"] = str(config.impact.get(notification.severity, 3))
    return update


def record_url(base_url: str, sys_id: str) -> str:
    return f"{base_url}/nav_to.do?uri=incident.do?sys_id={sys_id}"


def sys_id_from_url(url: str | None) -> str | None:
    match = _SYS_ID.search(url or "")
    return match.group(1) if match else None


class ServiceNowTransport:
    opens_tickets = True  # the outbox delivers to ticket receivers first, so the first card links the ticket

    def __init__(self, config: ServiceNowConfig, *, poster: HttpJsonPoster | None = None) -> None:
        self.config = config
        self.name = config.name
        self.poster = poster or HttpJsonPoster(timeout=config.timeout.total_seconds())
        hint = "check bearer_token" if config.bearer_token is not None else "check username and password"
        self.api = JsonApi(
            receiver=config.name,
            kind="ServiceNow",
            base_url=config.base_url,
            headers=auth_headers(config),
            poster=self.poster,
            auth_hint=f"{hint} (and the itil role for the incident table)",
        )

    def render(self, notification: Notification) -> dict[str, str]:
        """The main request body of this transition: the new record, or the update."""
        if notification.transition is Transition.NEW and own_ticket(notification, self.name) is None:
            return build_record(self.config, notification)
        return build_update(self.config, notification)

    def _ticket(self, number: str, sys_id: str, status: int | None = None) -> DeliveryResult:
        return DeliveryResult.success(status, external_id=number, external_url=record_url(self.config.base_url, sys_id), ticket=True)

    def send(self, notification: Notification) -> DeliveryResult:
        ref = own_ticket(notification, self.name)
        number, sys_id = (ref["key"], sys_id_from_url(ref.get("url"))) if ref else (None, None)
        state = None
        if sys_id is None:
            found = self._find(notification)
            if isinstance(found, DeliveryResult):
                return found
            if found is not None:
                number, sys_id, state = found
        if sys_id is None:
            if notification.transition is Transition.RECOVERED:
                return self.api.fail(
                    f"no incident record known yet for incident {notification.incident.incident_id} (its `new` "
                    f"delivery has not succeeded); the recovery waits for it",
                    retryable=True,
                    retry_after=AWAIT_TICKET_SECONDS,
                )
            return self._create(notification)  # new, or an update whose record never got made
        assert number is not None
        if notification.transition is Transition.NEW:
            return self._ticket(number, sys_id)  # made by an earlier attempt that got no answer
        if notification.transition is Transition.RECOVERED and state in (RESOLVED, CLOSED):
            return self._ticket(number, sys_id)  # someone resolved it already
        reply = self.api.call("PATCH", f"{TABLE_PATH}/{sys_id}", build_update(self.config, notification), params={"sysparm_fields": FIELDS})
        return self._ticket(number, sys_id, reply.status) if reply.ok else reply.failure_result

    def _find(self, notification: Notification) -> tuple[str, str, str] | None | DeliveryResult:
        """The record an earlier attempt made for this incident: an active one before a create (the
        contract's query), any one for an update (someone may have resolved or closed it)."""
        key = ticket_key(self.name, notification.incident.incident_id)
        active = "^active=true" if notification.transition is Transition.NEW else ""
        params = {
            "sysparm_query": f"correlation_id={key}{active}^ORDERBYsys_created_on",
            "sysparm_fields": FIELDS,
            "sysparm_limit": "1",
        }
        reply = self.api.call("GET", TABLE_PATH, params=params)
        if not reply.ok:
            return reply.failure_result
        rows = (reply.data or {}).get("result") or []
        if not rows:
            return None
        _log.info(
            "receiver %s: found %s for incident %s by correlation_id %s",
            self.name,
            rows[0]["number"],
            notification.incident.incident_id,
            key,
        )
        return rows[0]["number"], rows[0]["sys_id"], str(rows[0].get("state", ""))

    def _create(self, notification: Notification) -> DeliveryResult:
        reply = self.api.call("POST", TABLE_PATH, build_record(self.config, notification), params={"sysparm_fields": FIELDS})
        if not reply.ok:
            return reply.failure_result  # a retry looks the correlation_id up first
        result = (reply.data or {}).get("result") or {}
        if not result.get("sys_id") or not result.get("number"):
            return self.api.fail(f"create answered HTTP {reply.status} without sys_id and number", retryable=True)
        return self._ticket(result["number"], result["sys_id"], reply.status)
