"""`dagster-monitoring serve`: signed webhooks in, alerts out, through a real HTTP server.

Unit cases go through Starlette's TestClient; the end-to-end story and the CLI run a real
uvicorn (in a thread, and as the `dagster-monitoring serve` subprocess) on a free localhost port.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from starlette.testclient import TestClient

from dagster_monitoring.config import config_from_dict
from dagster_monitoring.serve import ServerThread, build_app
from dagster_monitoring.sources.settle import SettleBuffer
from dagster_monitoring.sources.webhooks import sign

from .helpers.http_server import LocalHTTPServer, Response

FT_SECRET = "ft_whsec_8Jm3Qz6Vb1Nc"
DBT_SECRET = "dbt_whsec_2Pk7Lr4Hs9Xd"
T = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)


def monitoring(tmp_path: Path, hook_url: str | None = None, settle: str = "0s") -> dict:
    receiver = (
        {"type": "webhook", "name": "hook", "url": hook_url}
        if hook_url
        else {"type": "file", "name": "hook", "path": str(tmp_path / "alerts.jsonl")}
    )
    return {
        "receivers": [receiver],
        "routes": [{"receivers": ["hook"]}],
        "policy": {"flap_window": "0s", "repeat_interval": "4h"},
        "state": {"path": str(tmp_path / "state.db")},
        "audit": {"enabled": False},
        "sources": {
            "fivetran": {"webhook_secret": FT_SECRET, "settle": settle, "owners": ["team:data-eng"]},
            "dbt_cloud": {"account_id": 43, "webhook_secret": DBT_SECRET, "project_id": 99},
        },
    }


def sync_end(status: str, minutes: float, connector: str = "warehouse_pg", reason: str | None = None) -> bytes:
    data = {"status": status, **({"reason": reason} if reason else {})}
    return json.dumps(
        {
            "event": "sync_end",
            "created": (T + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z"),
            "connector_type": "postgres",
            "connector_id": f"id_{connector}",
            "connector_name": connector,
            "sync_id": f"sync-{minutes}",
            "destination_group_id": "projected_sickle",
            "data": data,
        }
    ).encode()


def ft_headers(body: bytes, secret: str = FT_SECRET) -> dict[str, str]:
    return {"X-Fivetran-Signature-256": sign(secret, body).upper(), "Content-Type": "application/json"}


DBT_ERRORED = json.dumps(
    {
        "accountId": 43,
        "eventId": "wev_1",
        "timestamp": "2026-11-25T08:29:35.789265936Z",
        "eventType": "job.run.errored",
        "webhookName": "monitoring",
        "data": {
            "jobId": "10",
            "jobName": "daily build",
            "runId": "12345",
            "environmentName": "Production",
            "runStartedAt": "2026-11-25T08:28:07Z",
            "runErroredAt": "2026-11-25T08:29:32Z",
            "runStatus": "Errored",
            "runStatusMessage": "None",
        },
    }
).encode()


@pytest.fixture
def client(tmp_path):
    app = build_app(config_from_dict(monitoring(tmp_path)), tick_interval=0.05)
    with TestClient(app) as test_client:
        yield test_client, app


def incidents(app) -> list[str]:
    with app.state.router.store.transaction() as conn:
        return [row[0] for row in conn.exec_driver_sql("SELECT fingerprint FROM dm_alert_incidents")]


def test_a_signed_fivetran_failure_is_accepted_and_routed(client):
    test_client, app = client
    body = sync_end("FAILURE_WITH_TASK", 0, reason="permission denied")
    reply = test_client.post("/webhooks/fivetran", content=body, headers=ft_headers(body))
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"accepted": 1, "fingerprint": "fivetran:sync:warehouse_pg", "status": "failing"}
    assert incidents(app) == ["fivetran:sync:warehouse_pg"]  # committed before the answer


def test_dbt_cloud_signs_in_authorization(client):
    test_client, app = client
    reply = test_client.post("/webhooks/dbt_cloud", content=DBT_ERRORED, headers={"Authorization": sign(DBT_SECRET, DBT_ERRORED)})
    assert reply.status_code == 200 and reply.json()["fingerprint"] == "dbt_cloud:job_run:daily build"


@pytest.mark.parametrize(
    "path, headers",
    [
        ("/webhooks/fivetran", {}),
        ("/webhooks/fivetran", {"X-Fivetran-Signature-256": "deadbeef"}),
        ("/webhooks/fivetran", "signed with another secret"),
        ("/webhooks/dbt_cloud", {"Authorization": f"Token {DBT_SECRET}"}),  # the secret itself is not a signature
    ],
)
def test_a_bad_signature_is_401_and_records_nothing(client, path, headers, caplog):
    test_client, app = client
    body = sync_end("FAILURE", 0) if "fivetran" in path else DBT_ERRORED
    if isinstance(headers, str):
        headers = ft_headers(body, secret="another-secret-123")
    with caplog.at_level(logging.DEBUG):
        reply = test_client.post(path, content=body, headers=headers)
    assert reply.status_code == 401 and "signature" in reply.json()["error"]
    assert incidents(app) == [] and SettleBuffer(app.state.router.store, lambda e: timedelta(0)).held() == []
    for text in (reply.text, caplog.text):
        assert FT_SECRET not in text and DBT_SECRET not in text and sign(FT_SECRET, body) not in text.lower()


@pytest.mark.parametrize(
    "body, status",
    [
        (b"not json", 400),
        (b"[1, 2]", 400),
        (json.dumps({"event": "sync_end", "created": "2026-11-25T08:00:00Z"}).encode(), 400),  # no connector_id
        (b"x" * (1024 * 1024 + 1), 413),
    ],
)
def test_a_malformed_body_is_rejected_and_records_nothing(client, body, status):
    test_client, app = client
    reply = test_client.post("/webhooks/fivetran", content=body, headers=ft_headers(body))
    assert reply.status_code == status and incidents(app) == []


def test_events_that_say_nothing_about_health_are_answered_and_dropped(client):
    test_client, app = client
    body = json.dumps(
        {"event": "test_event", "created": "timestamp", "connector_type": "_t", "connector_id": "_c", "group_id": "_d"}
    ).encode()
    reply = test_client.post("/webhooks/fivetran", content=body, headers=ft_headers(body))
    assert reply.status_code == 200 and reply.json()["accepted"] == 0 and incidents(app) == []
    health = test_client.get("/healthz").json()
    assert health["ok"] and health["sources"] == ["fivetran", "dbt_cloud"]


def test_an_unconfigured_source_is_404(tmp_path):
    data = monitoring(tmp_path)
    data["sources"].pop("dbt_cloud")
    with TestClient(build_app(config_from_dict(data))) as test_client:
        assert test_client.post("/webhooks/dbt_cloud", content=DBT_ERRORED).status_code == 404


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def test_end_to_end_a_connector_fails_once_is_suppressed_then_recovers_once(tmp_path, caplog):
    """Real uvicorn, real signed posts, a real webhook receiver; a 1 s settle delay. Connector A
    fails (held, then announced once), fails again (suppressed), recovers (announced once).
    Connector B fails and is retried successfully inside the settle window: never announced."""
    with LocalHTTPServer(default=Response(204)) as hook:
        config = config_from_dict(monitoring(tmp_path, hook.url("/alerts"), settle="1s"))
        app = build_app(config, tick_interval=0.1, delivery_interval=0.2)
        with caplog.at_level(logging.DEBUG), ServerThread(app) as server, requests.Session() as http:

            def post(body: bytes) -> requests.Response:
                return http.post(server.url("/webhooks/fivetran"), data=body, headers=ft_headers(body), timeout=5)

            assert post(sync_end("FAILURE_WITH_TASK", 0, reason="permission denied for table loans")).status_code == 200
            assert post(sync_end("FAILURE", 0.5, connector="crm")).status_code == 200
            assert post(sync_end("SUCCESSFUL", 0.6, connector="crm")).status_code == 200  # Fivetran's retry worked
            assert hook.requests == []  # held for the settle delay
            wait_for(lambda: len(hook.requests) >= 1)
            assert post(sync_end("FAILURE", 30)).status_code == 200  # still failing: suppressed
            time.sleep(1.5)  # past its settle delay too
            assert len(hook.requests) == 1
            assert post(sync_end("SUCCESSFUL", 60)).status_code == 200
            wait_for(lambda: len(hook.requests) >= 2)
            time.sleep(0.3)
            bad = sync_end("FAILURE", 90, connector="crm")
            assert http.post(server.url("/webhooks/fivetran"), data=bad, headers=ft_headers(bad, "wrong-secret-1")).status_code == 401
        sent = [r.json for r in hook.settled()]
    assert [(m["transition"], m["event"]["entity"]) for m in sent] == [("new", "warehouse_pg"), ("recovered", "warehouse_pg")]
    first = sent[0]
    assert first["event"]["links"] == {"fivetran": "https://fivetran.com/dashboard/connections/id_warehouse_pg"}
    assert first["event"]["details"]["Message"] == "permission denied for table loans" and first["event"]["owners"] == ["team:data-eng"]
    assert FT_SECRET not in caplog.text and FT_SECRET not in json.dumps(sent)


@pytest.mark.parametrize(("wait", "messages"), [("1s", 1), ("0s", 3)])
def test_group_wait_makes_webhooks_of_separate_requests_one_message(tmp_path, wait, messages):
    """Three connectors fail in three requests, 0.2 s apart: with group_by [source] and a 1 s
    group_wait the receiver gets one message listing all three; without a wait, three."""
    with LocalHTTPServer(default=Response(204)) as hook:
        data = monitoring(tmp_path, hook.url("/alerts"))
        data["policy"].update(group_by=["source"], group_wait=wait)
        app = build_app(config_from_dict(data), tick_interval=0.1, delivery_interval=0.1)
        with ServerThread(app) as server, requests.Session() as http:
            for i, name in enumerate(("warehouse_pg", "crm", "billing")):
                body = sync_end("FAILURE", i, connector=name)
                assert http.post(server.url("/webhooks/fivetran"), data=body, headers=ft_headers(body), timeout=5).status_code == 200
                time.sleep(0.2)
            if messages == 1:
                assert hook.requests == []  # the group is still waiting
            wait_for(lambda: len(hook.requests) >= messages)
            time.sleep(0.5)
        sent = [r.json for r in hook.settled()]
    assert len(sent) == messages
    entities = [e for m in sent for e in (m["event"]["entity"], *(n["event"]["entity"] for n in m.get("members") or ()))]
    assert entities == ["warehouse_pg", "crm", "billing"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """``dagster-monitoring serve --config PATH`` as a subprocess on a free port, until the block
    ends; then ``stderr`` holds what it wrote."""

    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [str(Path(sys.executable).with_name("dagster-monitoring")), "serve", "--config", str(path), "--port", str(self.port)]
        self.env = {**os.environ, **env, "PYTHONPATH": str(Path(__file__).parents[1])}
        self.stderr = ""

    def __enter__(self) -> ServeProcess:
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: _up(self.url), timeout=30)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        _, self.stderr = self.proc.communicate(timeout=15)


def test_the_cli_serves_until_interrupted(tmp_path):
    data = monitoring(tmp_path)
    data["sources"]["fivetran"]["webhook_secret"] = {"env": "FT_WEBHOOK_SECRET"}
    data["sources"]["dbt_cloud"]["webhook_secret"] = {"env": "DBT_WEBHOOK_SECRET"}
    path = tmp_path / "monitoring.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    with ServeProcess(path, {"FT_WEBHOOK_SECRET": FT_SECRET, "DBT_WEBHOOK_SECRET": DBT_SECRET}) as server:
        url = server.url
        body = sync_end("FAILURE", 0)
        assert requests.post(url + "/webhooks/fivetran", data=body, headers=ft_headers(body), timeout=5).status_code == 200
        assert requests.post(url + "/webhooks/fivetran", data=body, headers=ft_headers(body, "nope-1234"), timeout=5).status_code == 401
        wait_for(lambda: (tmp_path / "alerts.jsonl").exists() and (tmp_path / "alerts.jsonl").read_text().count("\n") == 1)
    err = server.stderr
    assert "POST /webhooks/fivetran" in err and FT_SECRET not in err and DBT_SECRET not in err
    assert json.loads((tmp_path / "alerts.jsonl").read_text())["transition"] == "new"


def _up(url: str) -> bool:
    try:
        return requests.get(url + "/healthz", timeout=1).ok
    except requests.RequestException:
        return False


def test_accepted_webhooks_are_audit_rows_once_each(tmp_path):
    from dagster_monitoring.audit.sinks.duckdb import DuckDBSink

    data = monitoring(tmp_path)
    data["audit"] = {"duckdb_path": str(tmp_path / "audit.duckdb"), "spool_dir": str(tmp_path / "spool")}
    with TestClient(build_app(config_from_dict(data), tick_interval=0.05)) as client:
        body = sync_end("FAILURE_WITH_TASK", 0, reason="permission denied for table loans")
        for _ in range(2):  # Fivetran retried the delivery
            assert client.post("/webhooks/fivetran", content=body, headers=ft_headers(body)).status_code == 200
    sql = "SELECT source, job_name, run_id, status, via FROM dagster_audit.external_job_runs"
    rows = DuckDBSink(tmp_path / "audit.duckdb").query(sql)[1]
    assert rows == [("fivetran", "warehouse_pg", "sync-0", "failed", "webhook")]
