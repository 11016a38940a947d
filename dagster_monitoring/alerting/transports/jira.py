"""Jira: one issue per incident that comments while the failure goes on and closes on recovery.

Jira Cloud (REST v3, Atlassian Document Format, basic auth with e-mail + API token) and Data
Center / Server (REST v2, wiki text, bearer personal access token). Per transition:

- ``new``: look the incident's label up, then create the issue (project, issue type, priority from
  severity, labels: the configured ones, ``dm-<fingerprint hash>`` and the ticket key
  ``dm-inc-<hash>``). Looking first is what makes the retry of a create that timed out after Jira
  made the issue find that issue instead of opening a second one (alertmanager#4309).
- ``reminder`` / ``escalated``: one comment (the router sends at most one per repeat interval);
  ``escalated`` raises the priority first.
- ``recovered``: move the issue through ``close_transition`` (found by name), then comment with how
  long it was broken. An issue a person already closed is not moved again; nothing is reopened,
  ever: the next incident gets a new issue (no reopen storms, jiralert#119). A recovery that
  overtakes its ``new`` (still backing off) waits for the issue instead of closing nothing.

Jira's search is eventually consistent: an issue made a moment ago may not be found yet. So a
create that got no answer asks to be retried only after ``search_settle``, as a Retry-After the
outbox honours. The router's state holds the incident → issue mapping; the label is the fallback.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..durations import Duration
from ..events import Severity
from ..lifecycle import Transition
from ..notification import Notification
from ..redact import get_logger
from ._api import JsonApi, check_credentials, credential_headers, reject_managed_fields
from ._config import BaseUrl, ReceiverConfigBase, SecretValue
from ._ticket import AWAIT_TICKET_SECONDS, LINK_TITLES, fingerprint_label, one_line, own_ticket, ticket_key, ticket_text, update_text
from .base import DeliveryResult, HttpJsonPoster
from .jira_adf import comment_doc, description_doc, to_wiki

_log = get_logger(__name__)

DEFAULT_PRIORITIES = {Severity.CRITICAL: "Highest", Severity.ERROR: "High", Severity.WARN: "Medium"}
MANAGED_FIELDS = frozenset({"project", "issuetype", "summary", "description", "labels", "priority", "components"})
SUMMARY_LIMIT = 255
_PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")


class JiraConfig(ReceiverConfigBase):
    """A Jira project that gets one issue per incident."""

    type: Literal["jira"] = "jira"
    base_url: BaseUrl = Field(description="https://your-site.atlassian.net, or the Data Center base URL")
    api_version: Literal[2, 3] = Field(default=3, description="3: Jira Cloud (ADF bodies); 2: Data Center / Server (wiki text)")
    email: str | None = Field(default=None, description="Cloud: the account e-mail, with api_token (basic auth)")
    api_token: SecretValue | None = Field(default=None, description="Cloud API token: {env: JIRA_API_TOKEN}")
    bearer_token: SecretValue | None = Field(default=None, description="Data Center personal access token (or a Cloud OAuth token)")
    project: str = Field(description="project key, e.g. DATA")
    issue_type: str = "Task"
    priorities: dict[Severity, str] = Field(
        default_factory=lambda: dict(DEFAULT_PRIORITIES),
        description="severity -> priority name; {} sends no priority (Jira's default applies)",
    )
    labels: tuple[str, ...] = ("dagster-monitoring",)
    components: tuple[str, ...] = ()
    custom_fields: dict[str, Any] = Field(default_factory=dict, description="extra create fields by id, e.g. customfield_10010")
    close_transition: str = Field(default="Done", description="transition (or target status) name used on recovery")
    resolution: str | None = Field(default=None, description="set on close when the close screen asks for one, e.g. Done")
    search_settle: Duration = Field(
        default=timedelta(seconds=30),
        description="after a create got no answer, wait this long so the label search can see the issue",
    )

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        if not _PROJECT_KEY.match(value):
            raise ValueError("a Jira project key: upper-case letters, digits and '_', starting with a letter")
        return value

    @field_validator("priorities", mode="before")
    @classmethod
    def _no_priorities(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [label for label in value if not label or any(c.isspace() for c in label)]
        if bad:
            raise ValueError(f"Jira labels cannot be empty or contain spaces: {bad}")
        return value

    @field_validator("custom_fields")
    @classmethod
    def _custom(cls, value: dict[str, Any]) -> dict[str, Any]:
        reject_managed_fields(value, MANAGED_FIELDS)
        return value

    @model_validator(mode="after")
    def _auth(self) -> JiraConfig:
        check_credentials(
            self.bearer_token,
            self.email,
            self.api_token,
            user_field="email",
            secret_field="api_token",
            basic_name="Jira Cloud",
            bearer_name="Data Center",
        )
        return self


def auth_headers(config: JiraConfig) -> dict[str, str]:
    """Basic (Cloud) or bearer (Data Center)."""
    return credential_headers(config.bearer_token, config.email, config.api_token)


def _body(config: JiraConfig, adf: dict[str, Any]) -> Any:
    return adf if config.api_version == 3 else to_wiki(adf)


def build_fields(config: JiraConfig, notification: Notification) -> dict[str, Any]:
    """The ``fields`` of the create request."""
    content = ticket_text(notification)
    labels = [*config.labels, fingerprint_label(notification), ticket_key(config.name, notification.incident.incident_id)]
    fields: dict[str, Any] = {
        "project": {"key": config.project},
        "issuetype": {"name": config.issue_type},
        "summary": one_line(f"[{notification.severity.value.upper()}] {content.summary}", SUMMARY_LIMIT),
        "description": _body(config, description_doc(content)),
        "labels": list(dict.fromkeys(labels)),
    }
    priority = config.priorities.get(notification.severity)
    if priority:
        fields["priority"] = {"name": priority}
    if config.components:
        fields["components"] = [{"name": c} for c in config.components]
    fields.update(config.custom_fields)
    return fields


def build_comment(config: JiraConfig, notification: Notification, extra: str = "") -> dict[str, Any]:
    """The comment request body for reminders, escalations and the recovery."""
    links = notification.links(LINK_TITLES)
    if notification.transition is not Transition.RECOVERED:  # the run that failed last
        links = [(title, url) for title, url in links if title == LINK_TITLES["run"]]
    return {"body": _body(config, comment_doc(update_text(notification, extra=extra), links))}


class JiraTransport:
    opens_tickets = True  # the outbox delivers to ticket receivers first, so the first card links the ticket

    def __init__(self, config: JiraConfig, *, poster: HttpJsonPoster | None = None) -> None:
        self.config = config
        self.name = config.name
        self.prefix = f"/rest/api/{config.api_version}"
        self.poster = poster or HttpJsonPoster(timeout=config.timeout.total_seconds())
        hint = "check bearer_token" if config.bearer_token is not None else "check email and api_token"
        self.api = JsonApi(
            receiver=config.name,
            kind="Jira",
            base_url=config.base_url,
            headers=auth_headers(config),
            poster=self.poster,
            auth_hint=f"{hint} (and the account's access to project {config.project})",
        )

    def render(self, notification: Notification) -> dict[str, Any]:
        """The main request of this transition: the create fields for ``new``, else the comment."""
        if notification.transition is Transition.NEW and own_ticket(notification, self.name) is None:
            return {"fields": build_fields(self.config, notification)}
        return build_comment(self.config, notification)

    def browse_url(self, key: str) -> str:
        return f"{self.config.base_url}/browse/{key}"

    def _ticket(self, key: str, status: int | None = None) -> DeliveryResult:
        return DeliveryResult.success(status, external_id=key, external_url=self.browse_url(key), ticket=True)

    # -- one transition ------------------------------------------------------------------------

    def send(self, notification: Notification) -> DeliveryResult:
        ref = own_ticket(notification, self.name)
        key = ref["key"] if ref else None
        if key is None:
            found = self._find(notification)
            if isinstance(found, DeliveryResult):
                return found
            key = found
        if key is None:
            if notification.transition is Transition.RECOVERED:
                return self.api.fail(
                    f"no issue known yet for incident {notification.incident.incident_id} (its `new` delivery has "
                    f"not succeeded); the recovery waits for it",
                    retryable=True,
                    retry_after=AWAIT_TICKET_SECONDS,
                )
            return self._create(notification)  # new, or an update whose issue never got made
        transition = notification.transition
        if transition is Transition.NEW:
            return self._ticket(key)  # made by an earlier attempt that got no answer
        if transition is Transition.RECOVERED:
            return self._close(key, notification)
        extra = ""
        if transition is Transition.ESCALATED:
            priority = self.config.priorities.get(notification.severity)
            if priority:
                reply = self.api.call("PUT", f"{self.prefix}/issue/{key}", {"fields": {"priority": {"name": priority}}})
                if not reply.ok:
                    return reply.failure_result
                extra = f"Priority raised to {priority}."
        return self._comment(key, notification, extra)

    def _find(self, notification: Notification) -> str | None | DeliveryResult:
        """The issue an earlier attempt made for this incident, by its label (oldest first)."""
        label = ticket_key(self.name, notification.incident.incident_id)
        path = f"{self.prefix}/search/jql" if self.config.api_version == 3 else f"{self.prefix}/search"
        params = {"jql": f'labels = "{label}" ORDER BY created ASC', "fields": "status", "maxResults": "5"}
        reply = self.api.call("GET", path, params=params)
        if not reply.ok:
            return reply.failure_result
        issues = (reply.data or {}).get("issues") or []
        if len(issues) > 1:
            _log.warning("receiver %s: %d issues carry label %s; using the oldest, %s", self.name, len(issues), label, issues[0]["key"])
        if issues:
            _log.info(
                "receiver %s: found %s for incident %s by label %s", self.name, issues[0]["key"], notification.incident.incident_id, label
            )
        return issues[0]["key"] if issues else None

    def _create(self, notification: Notification) -> DeliveryResult:
        reply = self.api.call("POST", f"{self.prefix}/issue", {"fields": build_fields(self.config, notification)})
        if reply.ok:
            key = (reply.data or {}).get("key")
            if not key:
                return self.api.fail(f"create answered HTTP {reply.status} without an issue key", retryable=True)
            return self._ticket(key, reply.status)
        failure = reply.failure_result
        if reply.maybe_done:  # the issue may exist: retry once the search index can show it
            settle = self.config.search_settle.total_seconds()
            return DeliveryResult.failure(
                f"{failure.error}; the issue may have been created, so the retry looks up label "
                f"{ticket_key(self.name, notification.incident.incident_id)} first",
                retryable=True,
                status_code=failure.status_code,
                retry_after=max(settle, failure.retry_after or 0.0) or None,
            )
        return failure

    def _comment(self, key: str, notification: Notification, extra: str = "") -> DeliveryResult:
        reply = self.api.call("POST", f"{self.prefix}/issue/{key}/comment", build_comment(self.config, notification, extra))
        return self._ticket(key, reply.status) if reply.ok else reply.failure_result

    def _close(self, key: str, notification: Notification) -> DeliveryResult:
        """Transition by name first (safe to repeat), comment last (not safe to repeat)."""
        path = f"{self.prefix}/issue/{key}/transitions"
        reply = self.api.call("GET", path)
        if not reply.ok:
            return reply.failure_result
        transitions = (reply.data or {}).get("transitions") or []
        wanted = self.config.close_transition.casefold()
        match = next((t for t in transitions if str(t.get("name", "")).casefold() == wanted), None)
        match = match or next((t for t in transitions if str((t.get("to") or {}).get("name", "")).casefold() == wanted), None)
        if match is None:
            status = self.api.call("GET", f"{self.prefix}/issue/{key}", params={"fields": "status"})
            if not status.ok:
                return status.failure_result
            current = ((status.data or {}).get("fields") or {}).get("status") or {}
            if (current.get("statusCategory") or {}).get("key") != "done":
                names = ", ".join(repr(t.get("name")) for t in transitions) or "none"
                return self.api.fail(
                    f"issue {key}: no transition named {self.config.close_transition!r} from status "
                    f"{current.get('name', '?')!r}; available: {names}. Set close_transition to one of them.",
                    retryable=False,
                )
            closed = f"Already in {current.get('name', 'a done status')}."
        else:
            body: dict[str, Any] = {"transition": {"id": str(match["id"])}}
            if self.config.resolution:
                body["fields"] = {"resolution": {"name": self.config.resolution}}
            moved = self.api.call("POST", path, body)
            if not moved.ok:
                return moved.failure_result
            closed = f"Closed through {match.get('name')!r}."
        return self._comment(key, notification, closed)
