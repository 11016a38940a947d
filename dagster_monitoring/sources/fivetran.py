"""Fivetran connections as alert events: the REST API client, the poll, and the webhook normaliser.

One connector is one incident: every event is ``source=fivetran, kind=sync, entity=<connector
name>`` (the connection's ``schema``, which is its name in Fivetran and in the webhook's
``connector_name``; its id when there is no name), so a poll and a webhook about the same
connector land on the same fingerprint, ``fivetran:sync:<name>``.

Polling (``GET /v1/connections/{id}``, or every connection through ``GET /v1/connections`` with
cursor pagination) turns a connection's status into one event:

- FAILING when its last sync failed (``failed_at`` after ``succeeded_at``), at ``failed_at``; or
  when its setup is ``broken`` or it has blocking ``tasks``, at the poll's time;
- PASSING when its last sync succeeded, at ``succeeded_at``;
- nothing for a paused connection or one that never synced.

The event's time is the sync's, so polling the same failed sync again is the same event (the
router ignores it as already seen): a poll every 30 s does not count thirty failures.

Webhooks: ``sync_end`` (``data.status`` ``SUCCESSFUL`` or a failure), ``connection_failure`` and
``connection_successful``; every other event (``sync_start``, the ``test_event`` Fivetran sends
when a webhook is created) is answered and ignored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import requests

from ..alerting.events import AlertEvent, Status
from ..alerting.transports._api import basic_auth
from ._common import external_job, first_text, iso, parse_time
from ._http import JsonApi
from .config import FivetranSourceConfig
from .webhooks import WebhookRejected

SOURCE = "fivetran"
KIND = "sync"
PASSING_EVENTS = {"connection_successful"}
FAILING_EVENTS = {"connection_failure"}
SYNC_END = "sync_end"
# status fields a poll compares with the previous poll, for the "Changed" fact
WATCHED = ("setup_state", "sync_state", "update_state", "paused", "succeeded_at", "failed_at", "tasks", "warnings")


class FivetranClient:
    """The two calls the poll needs, authenticated with HTTP basic ``api_key:api_secret``."""

    def __init__(
        self, config: FivetranSourceConfig, *, session: requests.Session | None = None, sleep: Callable[[float], None] = time.sleep
    ):
        if config.api_key is None or config.api_secret is None:
            raise ValueError("sources.fivetran: polling needs api_key and api_secret")
        self.config = config
        auth = basic_auth(config.api_key.get_secret_value(), config.api_secret.get_secret_value())
        self.api = JsonApi(
            "fivetran",
            config.base_url,
            {"Authorization": auth},
            timeout=config.timeout.total_seconds(),
            max_retry_wait=config.max_retry_wait.total_seconds(),
            session=session,
            sleep=sleep,
        )

    def get_connection(self, connection_id: str) -> dict[str, Any]:
        return _data(self.api.get(f"/v1/connections/{connection_id}"))

    def list_connections(self) -> list[dict[str, Any]]:
        """Every connection, following ``next_cursor`` until it is absent."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": self.config.page_size}
            if cursor:
                params["cursor"] = cursor
            page = _data(self.api.get("/v1/connections", params))
            items.extend(i for i in page.get("items") or () if isinstance(i, dict))
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    def connections(self) -> list[dict[str, Any]]:
        """The configured connections, else every connection."""
        if self.config.connectors:
            return [self.get_connection(cid) for cid in self.config.connectors]
        return self.list_connections()


def _data(reply: Any) -> dict[str, Any]:
    data = reply.get("data") if isinstance(reply, dict) else None
    return data if isinstance(data, dict) else {}


# -- normalising ---------------------------------------------------------------------------


def connector_name(name: Any, connector_id: str) -> str:
    return str(name).strip() if isinstance(name, str) and name.strip() else connector_id


def dashboard_link(config: FivetranSourceConfig, connector_id: str) -> dict[str, str]:
    return {"fivetran": f"{config.dashboard_url}/{connector_id}"}


def _issues(items: Any) -> list[str]:
    """Tasks or warnings as ``code: message`` lines."""
    out = []
    for item in items or ():
        if isinstance(item, Mapping):
            code, message = item.get("code"), first_text(item.get("message"), item.get("details"))
            out.append(f"{code}: {message}" if code and message else str(code or message or ""))
    return [line for line in out if line]


def snapshot(connection: Mapping[str, Any]) -> dict[str, Any]:
    """The status fields a poll remembers, to name what changed on the next one."""
    status = connection.get("status") if isinstance(connection.get("status"), Mapping) else {}
    assert isinstance(status, Mapping)
    return {
        "setup_state": status.get("setup_state"),
        "sync_state": status.get("sync_state"),
        "update_state": status.get("update_state"),
        "paused": connection.get("paused"),
        "succeeded_at": connection.get("succeeded_at"),
        "failed_at": connection.get("failed_at"),
        "tasks": sorted(str(t.get("code")) for t in status.get("tasks") or () if isinstance(t, Mapping)),
        "warnings": sorted(str(w.get("code")) for w in status.get("warnings") or () if isinstance(w, Mapping)),
    }


def field_changes(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """``setup_state: connected → broken`` lines, for the fields that changed since the last poll."""
    if not previous:
        return []
    return [f"{key}: {previous.get(key)} → {current.get(key)}" for key in WATCHED if previous.get(key) != current.get(key)]


def connection_event(
    connection: Mapping[str, Any],
    config: FivetranSourceConfig,
    *,
    now: datetime,
    previous: Mapping[str, Any] | None = None,
) -> AlertEvent | None:
    """The event a polled connection's status means (None: paused, or never synced)."""
    connector_id = str(connection.get("id") or "")
    if not connector_id or connection.get("paused"):
        return None
    status = connection.get("status") if isinstance(connection.get("status"), Mapping) else {}
    assert isinstance(status, Mapping)
    name = connector_name(connection.get("schema"), connector_id)
    succeeded, failed = parse_time(connection.get("succeeded_at")), parse_time(connection.get("failed_at"))
    tasks, warnings = _issues(status.get("tasks")), _issues(status.get("warnings"))
    setup_state = status.get("setup_state")
    last_failed = failed is not None and (succeeded is None or failed > succeeded)
    blocked = setup_state == "broken" or bool(tasks)
    if last_failed:
        at, failing = failed, True
    elif blocked:
        at, failing = now, True
    elif succeeded is not None:
        at, failing = succeeded, False
    else:
        return None
    assert at is not None
    message = first_text(*(tasks or [])) or (f"setup state {setup_state}" if setup_state == "broken" else None)
    service = str(connection.get("service") or "")
    if failing:
        why = f": {message}" if message else ""
        summary = f"Fivetran sync failed: {name}{why}" if last_failed else f"Fivetran connector {name} needs attention{why}"
    else:
        summary = f"Fivetran sync succeeded: {name}"
    changes = field_changes(previous, snapshot(connection))
    details: dict[str, Any] = {  # the order cards show them in (the first five)
        "Sync status": "failed" if last_failed else ("blocked" if blocked else "succeeded"),
        "Message": message,
        "Last success": iso(succeeded) or "never",
        "Last failure": iso(failed) or "never",
        "Changed": "; ".join(changes) or None,
        "Tasks": "; ".join(tasks) if len(tasks) > 1 else None,
        "Warnings": "; ".join(warnings) or None,
        "Connector id": connector_id,
        "Service": service,
        "Setup state": setup_state,
        "Sync state": status.get("sync_state"),
    }
    details.update(
        external_job(
            source=SOURCE,
            job_id=connector_id,
            job_name=name,
            run_id=None,
            status="failed" if failing else "succeeded",
            started_at=None,
            finished_at=at if not blocked or last_failed else None,
            message=message,
            via="poll",
        )
    )
    return _event(config, name, connector_id, Status.FAILING if failing else Status.PASSING, at, summary, details)


def webhook_event(payload: Mapping[str, Any], config: FivetranSourceConfig) -> AlertEvent | None:
    """The event a Fivetran webhook body means; None for events that say nothing about health.
    Raises :class:`WebhookRejected` (400) when a relevant event lacks what it must carry."""
    kind = payload.get("event")
    if not isinstance(kind, str):
        raise WebhookRejected(400, "no 'event' field")
    if kind not in PASSING_EVENTS | FAILING_EVENTS | {SYNC_END}:
        return None
    connector_id = payload.get("connector_id")
    if not isinstance(connector_id, str) or not connector_id:
        raise WebhookRejected(400, f"{kind}: no 'connector_id'")
    at = parse_time(payload.get("created"))
    if at is None:
        raise WebhookRejected(400, f"{kind}: 'created' is not an ISO 8601 time")
    data = payload.get("data") if isinstance(payload.get("data"), Mapping) else {}
    assert isinstance(data, Mapping)
    name = connector_name(payload.get("connector_name"), connector_id)
    if kind == SYNC_END:
        sync_status = data.get("status")
        if not isinstance(sync_status, str):
            raise WebhookRejected(400, "sync_end: no 'data.status'")
        failing = sync_status.upper() != "SUCCESSFUL"
    else:
        sync_status = kind
        failing = kind in FAILING_EVENTS
    message = first_text(data.get("reason"), data.get("message"), data.get("error"), data.get("status_message")) if failing else None
    if failing:
        summary = f"Fivetran sync failed: {name}" + (f": {message}" if message else f" ({sync_status})")
    else:
        summary = f"Fivetran sync succeeded: {name}"
    service = str(payload.get("connector_type") or "")
    sync_id = payload.get("sync_id") if isinstance(payload.get("sync_id"), str) else None
    details: dict[str, Any] = {  # the order cards show them in (the first five)
        "Sync status": sync_status,
        "Message": message,
        ("Last failure" if failing else "Last success"): iso(at),
        "Connector id": connector_id,
        "Service": service,
        "Sync id": sync_id,
    }
    details.update(
        external_job(
            source=SOURCE,
            job_id=connector_id,
            job_name=name,
            run_id=sync_id,
            status="failed" if failing else "succeeded",
            started_at=parse_time(data.get("start_time") or data.get("started_at")),
            finished_at=at,
            message=message,
            via="webhook",
        )
    )
    return _event(config, name, connector_id, Status.FAILING if failing else Status.PASSING, at, summary, details, run_id=sync_id)


def _event(
    config: FivetranSourceConfig,
    name: str,
    connector_id: str,
    status: Status,
    at: datetime,
    summary: str,
    details: dict[str, Any],
    run_id: str | None = None,
) -> AlertEvent:
    return AlertEvent(
        source=SOURCE,
        kind=KIND,
        entity=name,
        status=status,
        severity=config.severity,
        occurred_at=at,
        summary=summary,
        details={k: v for k, v in details.items() if v is not None and v != ""},
        owners=config.owners,
        tags={**config.tags, "fivetran/connector_id": connector_id},
        links=dashboard_link(config, connector_id),
        run_id=run_id,
        next_action=(
            f"Open the connector in Fivetran ({name}), read the sync's error or the task it asks for, fix it and re-sync; "
            "the alert recovers on the next successful sync."
        )
        if status is Status.FAILING
        else None,
    )


def poll(
    client: FivetranClient, config: FivetranSourceConfig, *, now: datetime, snapshots: Mapping[str, Any] | None = None
) -> tuple[list[AlertEvent], dict[str, Any]]:
    """One poll: an event per connection that says something, and the snapshots to remember."""
    events: list[AlertEvent] = []
    seen: dict[str, Any] = {}
    previous = snapshots or {}
    connections: Sequence[Mapping[str, Any]] = client.connections()
    for connection in connections:
        connector_id = str(connection.get("id") or "")
        if not connector_id:
            continue
        event = connection_event(connection, config, now=now, previous=previous.get(connector_id))
        if event is not None:
            events.append(event)
        seen[connector_id] = snapshot(connection)
    return events, seen
