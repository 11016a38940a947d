"""Secrets (webhook URLs, SMTP passwords, tokens) never appear in a log record, an error, a
payload or a stored row — checked with every transport failing against real local servers."""

from __future__ import annotations

import json
import logging

import pytest
import sqlalchemy as sa

from dagster_monitoring.alerting.redact import redact
from dagster_monitoring.alerting.sample import sample_notification
from dagster_monitoring.alerting.state import incidents, outbox
from dagster_monitoring.alerting.transports import build_transports
from dagster_monitoring.alerting.lifecycle import Transition

from .helpers.factories import make_event, make_router
from .helpers.http_server import LocalHTTPServer, Response
from .helpers.smtp_server import SmtpServer, TlsFiles, free_port

SIG = "sig-Zq8vX2Lm9Pq4Rt7Yw1"
TOKEN = "tok-8f7e6d5c4b3a2918"
PASSWORD = "smtp-pw-Kx93!fj2"
SECRETS = [SIG, TOKEN, PASSWORD]


def assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"secret leaked in {where}: {text[:300]}"


def test_no_secret_leaks_when_every_transport_fails(tmp_path, clock, caplog):
    tls = TlsFiles(tmp_path)
    with (
        LocalHTTPServer(default=Response(500, "upstream broke")) as teams_srv,
        LocalHTTPServer(default=Response(401, {"error": "bad token"})) as hook_srv,
        SmtpServer("starttls", tls=tls, username="alerts", password="the-right-one") as smtp,
    ):
        teams_url = teams_srv.url(f"/workflows/abc123/triggers/manual/paths/invoke?api-version=1&sig={SIG}")
        hook_url = hook_srv.url(f"/hooks/{TOKEN}")
        down_port = free_port()
        config = {
            "receivers": [
                {"type": "teams", "name": "teams", "webhook_url": teams_url, "timeout": "2s"},
                {"type": "webhook", "name": "hook", "url": hook_url, "headers": {"Authorization": f"Bearer {TOKEN}"}},
                {
                    "type": "email",
                    "name": "mail",
                    "host": smtp.host,
                    "port": smtp.port,
                    "security": "starttls",
                    "ca_file": str(tls.ca_file),
                    "username": "alerts",
                    "password": PASSWORD,
                    "from": "alerts@example.com",
                    "to": ["oncall@example.com"],
                },
                {"type": "teams", "name": "teams-down", "webhook_url": f"http://127.0.0.1:{down_port}/wf?sig={SIG}", "timeout": "1s"},
            ],
            "routes": [{"receivers": ["teams", "hook", "mail", "teams-down"]}],
            "policy": {"flap_window": "0s"},
            "delivery": {"attempts_per_call": 2},
            "state": {"path": str(tmp_path / "state.db")},
        }
        router = make_router(config, clock)
        with caplog.at_level(logging.DEBUG):
            result = router.process([make_event(details={"error": "boom"})])
            clock.advance(hours=1)
            result.extend(router.tick())

        # every receiver was really tried and failed
        assert len(teams_srv.requests) >= 2 and len(hook_srv.requests) >= 1
        assert hook_srv.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"  # the secret reached the server
        assert smtp.handler.logins and not any(ok for _, ok in smtp.handler.logins)
        assert result.deliveries and not any(d.delivered for d in result.deliveries)
        assert {d.notification.receiver for d in result.deliveries} == {"teams", "hook", "mail", "teams-down"}

        # ... and no secret in errors, logs, payloads or stored rows
        for outcome in result.deliveries:
            assert_clean(outcome.error or "", f"error of {outcome.notification.receiver}")
        assert caplog.records, "expected delivery failures to be logged"
        for record in caplog.records:
            assert_clean(record.getMessage(), f"log record {record.name}")
        for name, transport in router.transports.items():
            assert_clean(json.dumps(transport.render(result.deliveries[0].notification), default=str), f"{name} payload")
        with router.store.engine.connect() as conn:
            for table in (incidents, outbox):
                for row in conn.execute(sa.select(table)):
                    assert_clean(json.dumps(dict(row._mapping), default=str), f"{table.name} row")


def test_urllib3_debug_lines_are_masked(tmp_path, caplog):
    with LocalHTTPServer(default=Response(202)) as srv:
        url = srv.url(f"/workflows/x?sig={SIG}")
        transport = build_transports(
            make_router(
                {
                    "receivers": [{"type": "teams", "name": "t", "webhook_url": url}],
                    "state": {"path": str(tmp_path / "s.db")},
                }
            ).config.receivers
        )["t"]
        with caplog.at_level(logging.DEBUG):
            assert transport.send(sample_notification("t", Transition.NEW)).ok
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any("POST" in line for line in lines)  # urllib3 did log the request line
    for line in lines:
        assert_clean(line, "urllib3 log")


class _EchoingGateway(LocalHTTPServer):
    """A hostile gateway: answers every request with an error that quotes its Authorization header."""

    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status

    def handle(self, request):  # type: ignore[no-untyped-def]
        return Response(self.status, {"error": f"rejected Authorization: {request.headers.get('Authorization')}"})


def test_no_ticket_credential_leaks_when_jira_and_servicenow_fail(tmp_path, clock, caplog):
    import base64

    jira_basic = base64.b64encode(f"alerts@example.com:{TOKEN}".encode()).decode()
    snow_basic = base64.b64encode(f"svc-dagster:{PASSWORD}".encode()).decode()
    secrets = [TOKEN, PASSWORD, SIG, jira_basic, snow_basic]
    with _EchoingGateway(401) as jira_srv, _EchoingGateway(500) as dc_srv, _EchoingGateway(502) as snow_srv:
        down_port = free_port()
        config = {
            "receivers": [
                {
                    "type": "jira",
                    "name": "jira",
                    "base_url": jira_srv.base_url,
                    "email": "alerts@example.com",
                    "api_token": TOKEN,
                    "project": "DATA",
                },
                {"type": "jira", "name": "jira-dc", "base_url": dc_srv.base_url, "api_version": 2, "bearer_token": SIG, "project": "DATA"},
                {"type": "servicenow", "name": "snow", "base_url": snow_srv.base_url, "username": "svc-dagster", "password": PASSWORD},
                {
                    "type": "servicenow",
                    "name": "snow-down",
                    "base_url": f"http://127.0.0.1:{down_port}",
                    "bearer_token": TOKEN,
                    "timeout": "1s",
                },
            ],
            "routes": [{"receivers": ["jira", "jira-dc", "snow", "snow-down"]}],
            "policy": {"flap_window": "0s"},
            "delivery": {"attempts_per_call": 2},
            "state": {"path": str(tmp_path / "state.db")},
        }
        router = make_router(config, clock)
        with caplog.at_level(logging.DEBUG):
            result = router.process([make_event(details={"error": "boom"})])
            clock.advance(hours=1)
            result.extend(router.tick())
        echoed = [r.response.body for srv in (jira_srv, dc_srv, snow_srv) for r in srv.settled()]

    for credential in (jira_basic, snow_basic, SIG):  # the gateways really echoed the credentials
        assert any(credential in json.dumps(body) for body in echoed)
    assert result.deliveries and not any(d.delivered for d in result.deliveries)
    assert {d.notification.receiver for d in result.deliveries} == {"jira", "jira-dc", "snow", "snow-down"}
    errors = [d.error or "" for d in result.deliveries]
    assert any("credentials refused (HTTP 401: " in e for e in errors) and any("HTTP 500" in e for e in errors)
    assert any("HTTP 502: " in e for e in errors)
    texts = errors + [r.getMessage() for r in caplog.records]
    texts += [json.dumps(t.render(result.deliveries[0].notification), default=str) for t in router.transports.values()]
    with router.store.engine.connect() as conn:
        for table in (incidents, outbox):
            texts += [json.dumps(dict(row._mapping), default=str) for row in conn.execute(sa.select(table))]
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"secret leaked: {text[:300]}"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("could not connect: password=hunter2 host=db", "could not connect: password=*** host=db"),
        ('{"api_key": "AKIA0123456789", "n": 1}', '{"api_key": "***", "n": 1}'),
        ("DB_PASSWORD: pw-1234 and more", "DB_PASSWORD: *** and more"),
        ("GET /x?access_token=abc123&page=2", "GET /x?access_token=***&page=2"),
        ("postgresql://loader:s3cr3t@db.internal:5432/lending", "postgresql://loader:***@db.internal:5432/lending"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "Authorization: Bearer ***"),
        (
            "POST https://contoso.webhook.office.com/webhookb2/1a2b@3c4d/IncomingWebhook/5e6f/7a8b failed",
            "POST https://contoso.webhook.office.com/*** failed",
        ),
        (
            "https://prod-1.westeurope.logic.azure.com/workflows/ab/triggers/manual/paths/invoke?api-version=1&sig=Zq8vX2",
            "https://prod-1.westeurope.logic.azure.com/workflows/ab/triggers/manual/paths/invoke?api-version=1&sig=***",
        ),
    ],
)
def test_credential_shaped_text_is_masked_unregistered(text, masked):
    """Nobody registered these (an error or a check description quoting them): masked by their shape."""
    assert redact(text) == masked
    assert redact(masked) == masked


@pytest.mark.parametrize(
    "text",
    [
        'password authentication failed for user "loader"',
        "tokenizer: fast; design: ok; signature verified",
        "loans/fct_repayments:not_null_fct_repayments_amount",
        "https://dagster.example.com/runs/8f1c2e4a?logFileKey=dbt",
        "postgresql://loader@db.internal:5432/lending",
    ],
)
def test_ordinary_text_is_left_alone(text):
    assert redact(text) == text


def test_several_credential_shapes_in_one_text_are_all_masked() -> None:
    text = (
        "connect postgresql://etl:s3cr3t-pw@db.internal/x failed; Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc "
        "token=tok_123456 key AKIAABCDEFGHIJKLMNOP slack https://hooks.slack.com/services/T0/B0/xyz hook https://acme.webhook.office.com/webhookb2/a/b/c "
        "sig https://prod.logic.azure.com/workflows/1/triggers/manual/paths/invoke?sig=zz9"
    )
    masked = redact(text)
    for secret in (
        "s3cr3t-pw",
        "eyJhbGciOiJIUzI1NiJ9",
        "tok_123456",
        "AKIAABCDEFGHIJKLMNOP",
        "services/T0/B0/xyz",
        "webhookb2/a/b/c",
        "sig=zz9",
    ):
        assert secret not in masked, secret
    assert "postgresql://etl:***@db.internal/x failed" in masked  # what is not secret stays readable
