"""Fivetran: the REST client against a local contract server, the poll and the webhook normaliser."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from dagster_monitoring.alerting import Status
from dagster_monitoring.config import config_from_dict
from dagster_monitoring.sources import fivetran
from dagster_monitoring.sources._http import SourceApiError
from dagster_monitoring.sources.webhooks import WebhookRejected

from ..helpers.http_server import Response
from .fakes import FIVETRAN_KEY, FIVETRAN_SECRET, FakeFivetran, connection

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)


def source_config(server: FakeFivetran | None = None, **extra):
    data = {
        "api_key": FIVETRAN_KEY,
        "api_secret": FIVETRAN_SECRET,
        "owners": ["team:data-eng"],
        "page_size": 2,
        **extra,
    }
    if server is not None:
        data["base_url"] = server.base_url
    return config_from_dict({"sources": {"fivetran": data}}).sources.fivetran


@pytest.fixture
def api():
    with FakeFivetran() as server:
        yield server
    assert server.violations == []
    assert server.handler_errors == []


def test_lists_every_connection_through_cursor_pages_with_basic_auth(api):
    for i in range(5):
        api.connections[f"conn_{i}"] = connection(f"conn_{i}", f"name_{i}", succeeded_at="2026-11-25T08:00:00Z", failed_at=None)
    client = fivetran.FivetranClient(source_config(api))
    assert [c["id"] for c in client.connections()] == [f"conn_{i}" for i in range(5)]
    assert [r.query_value("cursor") is None for r in api.requests] == [True, False, False]  # 3 pages of 2
    assert all(r.query_value("limit") == "2" for r in api.requests)


def test_configured_connectors_are_read_one_by_one(api):
    api.connections["a"] = connection("a", "warehouse_pg", succeeded_at="2026-11-25T08:00:00Z", failed_at=None)
    api.connections["b"] = connection("b", "other", succeeded_at=None, failed_at=None)
    client = fivetran.FivetranClient(source_config(api, connectors=["a"]))
    assert [c["id"] for c in client.connections()] == ["a"]
    assert [r.path for r in api.requests] == ["/v1/connections/a"]


def test_429_is_waited_out_with_retry_after_then_given_up_past_the_budget(api):
    api.connections["a"] = connection("a", "pg", succeeded_at="2026-11-25T08:00:00Z", failed_at=None)
    waits: list[float] = []
    api.enqueue(Response(429, {"code": "TooManyRequests"}, headers={"Retry-After": "3"}))
    client = fivetran.FivetranClient(source_config(api, connectors=["a"]), sleep=waits.append)
    assert client.get_connection("a")["id"] == "a"
    assert waits == [3.0]
    api.enqueue(*[Response(429, headers={"Retry-After": "20"})] * 2)
    with pytest.raises(SourceApiError) as err:
        client.get_connection("a")
    assert err.value.retryable and err.value.status_code == 429 and waits == [3.0, 20.0]  # 20 + 20 > 30 s budget


def test_refused_credentials_are_not_retryable_and_never_named(api, caplog):
    cfg = config_from_dict(
        {"sources": {"fivetran": {"api_key": "wrong_key_123", "api_secret": "wrong_secret_456", "base_url": api.base_url}}}
    ).sources.fivetran
    with caplog.at_level(logging.DEBUG), pytest.raises(SourceApiError) as err:
        fivetran.FivetranClient(cfg).get_connection("a")
    assert not err.value.retryable and err.value.status_code == 401
    text = str(err.value) + caplog.text
    assert "wrong_secret_456" not in text and "wrong_key_123" not in text and "check the API credentials" in text
    api.violations.clear()


def test_poll_turns_statuses_into_events_and_names_changed_fields():
    cfg = source_config()
    failed = connection("a", "warehouse_pg", succeeded_at="2026-11-25T06:00:00Z", failed_at="2026-11-25T08:30:00.123Z")
    ok = connection("b", "crm", succeeded_at="2026-11-25T08:00:00Z", failed_at="2026-11-24T08:00:00Z")
    broken = connection(
        "c",
        "ads",
        succeeded_at="2026-11-25T07:00:00Z",
        failed_at=None,
        setup_state="broken",
        tasks=[{"code": "reconnect", "message": "Reconnect: the OAuth token expired"}],
    )
    paused = connection("d", "old", succeeded_at=None, failed_at="2026-11-20T00:00:00Z", paused=True)
    never = connection("e", "new", succeeded_at=None, failed_at=None)
    events = {e.entity: e for e in (fivetran.connection_event(c, cfg, now=NOW) for c in (failed, ok, broken, paused, never)) if e}
    assert set(events) == {"warehouse_pg", "crm", "ads"}
    a = events["warehouse_pg"]
    assert (a.fingerprint, a.status, a.occurred_at) == (
        "fivetran:sync:warehouse_pg",
        Status.FAILING,
        datetime(2026, 11, 25, 8, 30, 0, 123000, tzinfo=timezone.utc),
    )
    assert a.links == {"fivetran": "https://fivetran.com/dashboard/connections/a"} and a.owners == ("team:data-eng",)
    assert a.details["external_job/job_id"] == "a" and a.details["external_job/status"] == "failed"
    assert events["crm"].status is Status.PASSING and events["crm"].occurred_at == datetime(2026, 11, 25, 8, tzinfo=timezone.utc)
    c = events["ads"]
    assert c.status is Status.FAILING and c.occurred_at == NOW and "OAuth token expired" in c.summary

    before = fivetran.snapshot(connection("c", "ads", succeeded_at="2026-11-25T07:00:00Z", failed_at=None))
    changed = fivetran.connection_event(broken, cfg, now=NOW, previous=before)
    assert "setup_state: connected → broken" in changed.details["Changed"] and "tasks: [] → ['reconnect']" in changed.details["Changed"]


def test_polling_the_same_failed_sync_gives_the_same_event():
    cfg = source_config()
    failed = connection("a", "pg", succeeded_at="2026-11-25T06:00:00Z", failed_at="2026-11-25T08:30:00Z")
    first = fivetran.connection_event(failed, cfg, now=NOW)
    again = fivetran.connection_event(failed, cfg, now=NOW + timedelta(minutes=1))
    assert first.occurred_at == again.occurred_at  # the router sees it once


SYNC_END_OK = {
    "event": "sync_end",
    "created": "2026-11-25T08:40:08.638Z",
    "connector_type": "postgres",
    "connector_id": "a",
    "connector_name": "warehouse_pg",
    "sync_id": "b4703f73-6315-4e22-8d7a-3bfb18b2fed2",
    "destination_group_id": "projected_sickle",
    "data": {"status": "SUCCESSFUL"},
}


def test_webhooks_normalise_onto_the_same_fingerprint_as_polls():
    cfg = source_config()
    ok = fivetran.webhook_event(SYNC_END_OK, cfg)
    failed = fivetran.webhook_event(
        {**SYNC_END_OK, "data": {"status": "FAILURE_WITH_TASK", "reason": "permission denied for table loans"}}, cfg
    )
    conn_failure = fivetran.webhook_event({**SYNC_END_OK, "event": "connection_failure", "data": {}}, cfg)
    assert ok.fingerprint == failed.fingerprint == conn_failure.fingerprint == "fivetran:sync:warehouse_pg"
    assert ok.status is Status.PASSING and failed.status is Status.FAILING and conn_failure.status is Status.FAILING
    assert failed.summary == "Fivetran sync failed: warehouse_pg: permission denied for table loans"
    assert failed.run_id == failed.details["external_job/run_id"] == SYNC_END_OK["sync_id"]
    assert failed.details["external_job/via"] == "webhook" and failed.details["Message"] == "permission denied for table loans"
    assert fivetran.webhook_event({**SYNC_END_OK, "event": "sync_start"}, cfg) is None
    assert fivetran.webhook_event({"event": "test_event", "created": "timestamp", "connector_id": "_connector_1"}, cfg) is None


@pytest.mark.parametrize(
    "payload, reason",
    [
        ({"created": "2026-11-25T08:40:08Z"}, "no 'event'"),
        ({**SYNC_END_OK, "connector_id": None}, "connector_id"),
        ({**SYNC_END_OK, "created": "yesterday"}, "created"),
        ({**SYNC_END_OK, "data": {}}, "data.status"),
    ],
)
def test_malformed_webhooks_are_rejected_with_400(payload, reason):
    with pytest.raises(WebhookRejected) as err:
        fivetran.webhook_event(payload, source_config())
    assert err.value.status == 400 and reason in err.value.message
