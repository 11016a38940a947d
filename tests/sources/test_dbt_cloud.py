"""dbt Cloud: the API v2 client against a local contract server, the poll cursor, the webhook normaliser."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from dagster_monitoring.alerting import Status
from dagster_monitoring.config import config_from_dict
from dagster_monitoring.sources import dbt_cloud
from dagster_monitoring.sources._http import SourceApiError
from dagster_monitoring.sources.webhooks import WebhookRejected

from ..helpers.http_server import Response
from .fakes import DBT_TOKEN, FakeDbtCloud

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)


def source_config(server: FakeDbtCloud | None = None, **extra):
    data = {"account_id": 43, "api_token": DBT_TOKEN, "owners": ["team:analytics"], "page_size": 2, **extra}
    if server is not None:
        data["base_url"] = server.base_url
    return config_from_dict({"sources": {"dbt_cloud": data}}).sources.dbt_cloud


@pytest.fixture
def api():
    with FakeDbtCloud() as server:
        yield server
    assert server.violations == []
    assert server.handler_errors == []


def fin(minute: int) -> str:
    return f"2026-11-25 08:{minute:02d}:00.123456789+00:00"  # nanoseconds, as dbt Cloud writes them


def test_first_poll_announces_each_jobs_current_state_then_only_new_runs(api):
    api.add_run(1, 10, "daily build", 10, finished_at=fin(1))
    api.add_run(2, 10, "daily build", 20, finished_at=fin(2), step_failed="Invoke dbt with `dbt build`")
    api.add_run(3, 11, "hourly snapshot", 10, finished_at=fin(3))
    cfg = source_config(api)
    client = dbt_cloud.DbtCloudClient(cfg)
    events, cursors = dbt_cloud.poll(client, cfg, now=NOW)
    assert [(e.entity, e.status) for e in events] == [("daily build", Status.FAILING), ("hourly snapshot", Status.PASSING)]
    failed = events[0]
    assert failed.fingerprint == "dbt_cloud:job_run:daily build"
    assert failed.details["Failed step"] == "Invoke dbt with `dbt build`" and failed.details["Environment"] == "Production"
    assert failed.links == {"dbt_cloud_run": "https://cloud.getdbt.com/deploy/43/projects/99/runs/2/"}
    assert failed.details["external_job/run_id"] == "2" and failed.details["external_job/job_id"] == "10"
    assert failed.occurred_at == datetime(2026, 11, 25, 8, 2, 0, 123456, tzinfo=timezone.utc)
    assert cursors == {"all": 3}
    assert len(api.requests) == 1  # the first poll reads one page

    api.add_run(4, 10, "daily build", 3, finished_at=None)  # running: holds the cursor
    api.add_run(5, 11, "hourly snapshot", 20, finished_at=fin(5))
    events, cursors = dbt_cloud.poll(client, cfg, now=NOW, cursors=cursors)
    assert [(e.entity, e.run_id) for e in events] == [("hourly snapshot", "5")] and cursors == {"all": 3}
    api.runs[4].update(status=10, status_humanized="Success", finished_at=fin(9))
    events, cursors = dbt_cloud.poll(client, cfg, now=NOW, cursors=cursors)
    assert [(e.run_id, e.status) for e in events] == [("4", Status.PASSING), ("5", Status.FAILING)] and cursors == {"all": 5}


def test_reads_pages_back_to_the_cursor_with_token_auth(api):
    for i in range(1, 8):
        api.add_run(i, 10, "daily build", 10, finished_at=fin(i))
    cfg = source_config(api, jobs=[10])
    client = dbt_cloud.DbtCloudClient(cfg)
    runs = client.runs_after(job_id=10, after=2)
    assert [r["id"] for r in runs] == [7, 6, 5, 4, 3]
    assert [r.query_value("offset") for r in api.requests] == ["0", "2", "4"]
    assert all(r.query_value("job_definition_id") == "10" and r.query_value("limit") == "2" for r in api.requests)


def test_cancelled_and_unfinished_runs_say_nothing(api):
    cfg = source_config()
    assert dbt_cloud.run_event(api.add_run(1, 10, "j", 30, finished_at=fin(1)), cfg, now=NOW) is None
    assert dbt_cloud.run_event(api.add_run(2, 10, "j", 1, finished_at=None), cfg, now=NOW) is None


def test_429_then_5xx(api):
    api.add_run(1, 10, "daily build", 10, finished_at=fin(1))
    waits: list[float] = []
    client = dbt_cloud.DbtCloudClient(source_config(api), sleep=waits.append)
    api.enqueue(Response(429, headers={"Retry-After": "2"}))
    assert [r["id"] for r in client.runs_after(job_id=None, after=None)] == [1] and waits == [2.0]
    api.enqueue(Response(503, "upstream unavailable"))
    with pytest.raises(SourceApiError) as err:
        client.runs_after(job_id=None, after=0)
    assert err.value.retryable and err.value.status_code == 503 and DBT_TOKEN not in str(err.value)


COMPLETED = {
    "accountId": 43,
    "eventId": "wev_2L6ZDoilyiWzKkSA59Gmc2d7FDD",
    "timestamp": "2026-11-25T08:29:35.789265936Z",
    "eventType": "job.run.completed",
    "webhookName": "monitoring",
    "data": {
        "jobId": "10",
        "jobName": "daily build",
        "runId": "12345",
        "environmentId": "7",
        "environmentName": "Production",
        "dbtVersion": "1.10.0",
        "projectName": "lender",
        "runReason": "Kicked off by the scheduler",
        "runStartedAt": "2026-11-25T08:28:07Z",
        "runFinishedAt": "2026-11-25T08:29:32Z",
        "runStatus": "Success",
        "runStatusMessage": "None",
    },
}


def test_webhooks_normalise_onto_the_job_fingerprint():
    cfg = source_config(project_id=99)
    ok = dbt_cloud.webhook_event(COMPLETED, cfg)
    errored = dbt_cloud.webhook_event(
        {
            **COMPLETED,
            "eventType": "job.run.errored",
            "data": {**COMPLETED["data"], "runStatus": "Errored", "runErroredAt": "2026-11-25T08:29:32Z"},
        },
        cfg,
    )
    assert ok.fingerprint == errored.fingerprint == "dbt_cloud:job_run:daily build"
    assert (ok.status, errored.status) == (Status.PASSING, Status.FAILING)
    assert errored.links == {"dbt_cloud_run": "https://cloud.getdbt.com/deploy/43/projects/99/runs/12345/"}
    assert "Message" not in errored.details  # "None" is dbt Cloud's way of saying nothing
    assert dbt_cloud.webhook_event({**COMPLETED, "eventType": "job.run.started"}, cfg) is None
    cancelled = {**COMPLETED, "data": {**COMPLETED["data"], "runStatus": "Cancelled"}}
    assert dbt_cloud.webhook_event(cancelled, cfg) is None


@pytest.mark.parametrize(
    "payload, reason",
    [
        ({"data": {}}, "eventType"),
        ({**COMPLETED, "data": "x"}, "data"),
        ({**COMPLETED, "data": {**COMPLETED["data"], "runId": None}}, "runId"),
    ],
)
def test_malformed_webhooks_are_rejected_with_400(payload, reason):
    with pytest.raises(WebhookRejected) as err:
        dbt_cloud.webhook_event(payload, source_config())
    assert err.value.status == 400 and reason in err.value.message
