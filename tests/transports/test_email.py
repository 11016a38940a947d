"""The e-mail transport against a real SMTP server (aiosmtpd in-process).

Plain SMTP, STARTTLS and implicit TLS with a throwaway CA (verification is real: the transport
gets the CA through ``ca_file`` and fails without it), login, wrong password, server down, and
the router end to end (failure then recovery gives two threaded mails). The SMTP password must
never show up in a log record, a delivery error or the outbox.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Iterable

import pytest

from dagster_monitoring.alerting import Status, Transition
from dagster_monitoring.alerting.outbox import DeliveryOutcome
from dagster_monitoring.alerting.sample import sample_notification
from dagster_monitoring.alerting.transports.base import DeliveryResult
from dagster_monitoring.alerting.transports.email import EmailConfig, EmailTransport
from dagster_monitoring.config import config_from_dict

from ..helpers.factories import T0, SimClock, make_event, make_router
from ..helpers.smtp_server import SmtpServer, TlsFiles, free_port

USERNAME = "alerts@example.test"
PASSWORD = "s3cret-SMTP-pa55word"  # long enough to be masked; must never leak anywhere
RUN_URL = "http://dagster.example.test/runs/8f1c2e4a"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return TlsFiles(tmp_path_factory.mktemp("tls"))


@pytest.fixture(autouse=True)
def _capture_all_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


def email_settings(port: int, security: str = "none", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "email",
        "name": "mail",
        "host": "127.0.0.1",
        "port": port,
        "security": security,
        "from": "dagster-monitoring@example.test",
        "to": ["data-eng@example.test", "oncall@example.test"],
        "timeout": "5s",
    }
    data.update(overrides)
    return data


def transport_for(port: int, security: str = "none", **overrides: Any) -> EmailTransport:
    settings = email_settings(port, security, **overrides)
    settings.pop("type")
    return EmailTransport(EmailConfig.model_validate(settings))


def parts(message: EmailMessage) -> dict[str, str]:
    return {part.get_content_type(): part.get_content() for part in message.iter_parts()}


def assert_no_secret(
    secret: str,
    caplog: pytest.LogCaptureFixture,
    results: Iterable[DeliveryResult | DeliveryOutcome] = (),
    rows: Iterable[dict] = (),
) -> None:
    """The secret is in no log record (ours or the test server's), no delivery error, no outbox row."""
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "") + repr(record.args)
        assert secret not in text, f"secret leaked in log record {record.name}: {text}"
    for result in results:
        assert secret not in (result.error or ""), result
    for row in rows:
        assert secret not in repr(row), row


# -- the message itself -------------------------------------------------------------------------


def test_plain_smtp_delivers_multipart_alternative_with_facts_and_links() -> None:
    notification = sample_notification("mail", Transition.NEW)
    with SmtpServer("none") as server:
        result = transport_for(server.port).send(notification)
        assert result.ok, result.error
        (mail,) = server.received

    assert mail.mail_from == "dagster-monitoring@example.test"
    assert mail.rcpt_tos == ("data-eng@example.test", "oncall@example.test")
    assert not mail.tls and mail.authenticated_as is None

    msg = mail.parsed()
    assert msg.get_content_type() == "multipart/alternative"
    body = parts(msg)
    assert set(body) == {"text/plain", "text/html"}
    subject = msg["Subject"]
    # one subject per incident, so clients thread it: what it is, no transition or severity
    assert subject == f"[dagster-monitoring] {notification.thread_subject}"
    assert "NEW" not in subject
    assert msg["Message-ID"] == "<sample-incident.new@dagster-monitoring>" == result.external_id
    assert msg["In-Reply-To"] is None and msg["References"] is None
    assert msg["X-Dagster-Monitoring-Transition"] == "new"
    # a long unbreakable header is folded right after the colon; the stdlib parser keeps the
    # folding whitespace, which RFC 5322 readers ignore
    assert msg["X-Dagster-Monitoring-Fingerprint"].strip() == notification.incident.fingerprint

    text, html = body["text/plain"], body["text/html"]
    assert text.replace("\r\n", "\n").startswith(
        f"CRITICAL · NEW: {notification.headline}\nNew CRITICAL incident."
    )  # the transition opens the body
    assert "Failing since: " in text and notification.incident.first_failed_at.strftime("%Y-%m-%d %H:%M UTC") in text
    assert "Owner: team:data-eng" in text
    assert f"Open run: {notification.event.links['run']}" in text
    assert "Next action: Find the repayments" in text
    assert "Offending value: 3 rows with amount IS NULL" in text  # plain labels, not raw keys
    for label in ("Failing since", "Owner", "Offending value"):
        assert f">{label}</th>" in html
    assert ">team:data-eng</td>" in html and "overflow-wrap:anywhere" in html  # long paths and URLs wrap
    assert f"href='{notification.event.links['run']}'>Open run</a>" in html


def test_a_failing_dbt_test_mail_shows_its_failing_rows_as_a_table_in_both_parts() -> None:
    from dataclasses import replace

    from dagster_monitoring.alerting.failing_rows import bound_rows

    rows = bound_rows(["loan_id", "principal_amount", "api_token"], [["L-0999", None, "tok-1"], ["<b>L-1</b>", "12.5", "tok-2"]], total=7)
    base = sample_notification("mail", Transition.NEW)
    event = replace(base.event, source="dbt", kind="asset_check", details={**base.event.details, "dbt/failing_rows": rows.to_json()})
    notification = replace(base, event=event)
    with SmtpServer("none") as server:
        assert transport_for(server.port).send(notification).ok
        (mail,) = server.received
    body = parts(mail.parsed())
    text, html = body["text/plain"].replace("\r\n", "\n"), body["text/html"]
    assert "Failing rows (2 of 7):\nloan_id    | principal_amount | api_token\n" in text
    assert "L-0999     | NULL             | [redacted]" in text
    assert "<h4>Failing rows (2 of 7)</h4><table" in html
    assert ">L-0999</td>" in html and "<i>NULL</i>" in html and "&lt;b&gt;L-1&lt;/b&gt;" in html  # data is text, never markup
    assert "tok-1" not in text + html


def test_recovery_is_threaded_under_the_alert() -> None:
    new = sample_notification("mail", Transition.NEW)
    recovered = sample_notification("mail", Transition.RECOVERED)
    with SmtpServer("none") as server:
        transport = transport_for(server.port)
        assert transport.send(new).ok
        assert transport.send(recovered).ok
        first, second = server.messages()

    assert second["Subject"] == first["Subject"]  # one thread per incident
    second_text = parts(second)["text/plain"]
    assert second_text.startswith("RECOVERED: Recovered: ") and "Recovered after" in second_text
    assert "What failed" not in second_text and "Offending value" not in second_text  # no failure wording
    assert second["Message-ID"] != first["Message-ID"]
    assert second["In-Reply-To"] == first["Message-ID"]
    assert second["References"] == first["Message-ID"]
    text = parts(second)["text/plain"]
    assert "Recovered at: " in text and "Broken for: " in text
    assert "Details:" not in text  # a recovery carries no failure details


# -- TLS ---------------------------------------------------------------------------------------


def test_starttls_verifies_the_server_with_ca_file(tls: TlsFiles) -> None:
    with SmtpServer("starttls", tls=tls) as server:
        result = transport_for(server.port, "starttls", ca_file=str(tls.ca_file)).send(sample_notification("mail"))
        assert result.ok, result.error
        (mail,) = server.received
    assert mail.tls


def test_implicit_tls_verifies_the_server_with_ca_file(tls: TlsFiles) -> None:
    with SmtpServer("ssl", tls=tls) as server:
        result = transport_for(server.port, "ssl", ca_file=str(tls.ca_file)).send(sample_notification("mail"))
        assert result.ok, result.error
        (mail,) = server.received
    assert mail.tls
    assert mail.parsed().get_content_type() == "multipart/alternative"


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_without_the_ca_fails_verification_and_sends_nothing(tls: TlsFiles, security: str) -> None:
    with SmtpServer(security, tls=tls) as server:
        result = transport_for(server.port, security).send(sample_notification("mail"))
        assert server.received == []
    assert not result.ok and not result.retryable  # a wrong CA needs a human, not retries
    assert "CERTIFICATE_VERIFY_FAILED" in (result.error or "")


def test_plain_smtp_refused_by_a_server_that_requires_starttls(tls: TlsFiles) -> None:
    """security: none against a STARTTLS-only server: the server refuses MAIL, nothing is sent."""
    with SmtpServer("starttls", tls=tls) as server:
        result = transport_for(server.port, "none").send(sample_notification("mail"))
        assert server.received == []
    assert not result.ok and not result.retryable  # a 5xx refusal needs a config change
    assert "SMTP 530" in (result.error or "")


# -- login -------------------------------------------------------------------------------------


def test_login_over_starttls(tls: TlsFiles, caplog: pytest.LogCaptureFixture) -> None:
    with SmtpServer("starttls", tls=tls, username=USERNAME, password=PASSWORD) as server:
        transport = transport_for(server.port, "starttls", ca_file=str(tls.ca_file), username=USERNAME, password=PASSWORD)
        result = transport.send(sample_notification("mail"))
        assert result.ok, result.error
        (mail,) = server.received
        attempts = list(server.handler.logins)
    assert mail.tls and mail.authenticated_as == USERNAME
    assert attempts == [(USERNAME, True)]
    assert_no_secret(PASSWORD, caplog, [result])


def test_wrong_password_is_a_non_retryable_failure_without_the_password(tls: TlsFiles, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "wr0ng-" + PASSWORD
    with SmtpServer("starttls", tls=tls, username=USERNAME, password=PASSWORD) as server:
        transport = transport_for(server.port, "starttls", ca_file=str(tls.ca_file), username=USERNAME, password=wrong)
        result = transport.send(sample_notification("mail"))
        assert server.received == []
        logins = list(server.handler.logins)
    # smtplib tries every mechanism both sides support (PLAIN, then LOGIN); all were refused
    assert logins and logins == [(USERNAME, False)] * len(logins)
    assert not result.ok and not result.retryable
    assert "login failed" in (result.error or "") and "535" in (result.error or "")
    assert_no_secret(wrong, caplog, [result])
    assert_no_secret(PASSWORD, caplog, [result])


def test_server_down_is_retryable() -> None:
    port = free_port()  # nothing listens there
    result = transport_for(port).send(sample_notification("mail"))
    assert not result.ok and result.retryable
    assert f"127.0.0.1:{port}" in (result.error or "")
    assert "ConnectionRefusedError" in (result.error or "")


# -- through the router ------------------------------------------------------------------------


def router_config(tmp_path: Path, port: int, tls: TlsFiles, password: str = PASSWORD) -> Any:
    return config_from_dict(
        {
            "receivers": [email_settings(port, "starttls", ca_file=str(tls.ca_file), username=USERNAME, password=password)],
            "routes": [{"receivers": ["mail"]}],
            "policy": {"repeat_interval": "4h", "flap_window": "0s"},
            "state": {"path": str(tmp_path / "state.db")},
        }
    )


def failing(at_minutes: float, status: Status = Status.FAILING) -> Any:
    return make_event(
        "loans_daily",
        status,
        T0 + timedelta(minutes=at_minutes),
        links={"run": RUN_URL},
        run_id="8f1c2e4a",
        owners=("team:data-eng",),
    )


def test_router_failure_then_recovery_sends_two_threaded_mails(
    tmp_path: Path, tls: TlsFiles, clock: SimClock, caplog: pytest.LogCaptureFixture
) -> None:
    with SmtpServer("starttls", tls=tls, username=USERNAME, password=PASSWORD) as server:
        router = make_router(router_config(tmp_path, server.port, tls), clock)
        try:
            outcomes = []
            first = router.process([failing(0)])
            outcomes += first.deliveries
            clock.advance(minutes=10)
            second = router.process([failing(10)])  # ongoing: suppressed
            outcomes += second.deliveries
            clock.advance(minutes=10)
            third = router.process([failing(20, Status.PASSING)])
            outcomes += third.deliveries
            rows = router.store.outbox_rows()
            incident = router.incident(failing(0).fingerprint)
        finally:
            router.store.dispose()
        received = server.received

    assert [d.transition for d in first.decisions] == [Transition.NEW]
    assert [d.transition for d in second.decisions] == [Transition.ONGOING] and second.deliveries == []
    assert [d.transition for d in third.decisions] == [Transition.RECOVERED]
    assert [o.status for o in outcomes] == ["delivered", "delivered"]
    assert [r["status"] for r in rows] == ["delivered", "delivered"]

    assert len(received) == 2 and all(m.tls and m.authenticated_as == USERNAME for m in received)
    alert, recovery = (m.parsed() for m in received)
    assert incident is not None and incident.incident_id
    assert alert["Message-ID"] == f"<{incident.incident_id}.new@dagster-monitoring>"
    assert outcomes[0].external_id == alert["Message-ID"]
    assert alert["Subject"] == recovery["Subject"] == "[dagster-monitoring] loans_daily"
    assert recovery["In-Reply-To"] == alert["Message-ID"] == recovery["References"]
    alert_text = parts(alert)["text/plain"]
    assert "ERROR · NEW: run loans_daily is failing" in alert_text
    assert "Failing since: 2026-11-25 03:00 UTC" in alert_text
    assert "Owner: team:data-eng" in alert_text
    assert f"Open run: {RUN_URL}" in alert_text
    recovery_text = parts(recovery)["text/plain"]
    assert "Failures: 2" in recovery_text and "Broken for: 20m" in recovery_text

    assert_no_secret(PASSWORD, caplog, outcomes, rows)


def test_router_keeps_a_refused_mail_and_sends_it_once_the_password_is_fixed(
    tmp_path: Path, tls: TlsFiles, clock: SimClock, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "0ld-rotated-" + PASSWORD
    with SmtpServer("starttls", tls=tls, username=USERNAME, password=PASSWORD) as server:
        router = make_router(router_config(tmp_path, server.port, tls, password=wrong), clock)
        try:
            result = router.process([failing(0)])
            rows_before = router.store.outbox_rows()
        finally:
            router.store.dispose()
        assert server.received == []
        (outcome,) = result.deliveries
        assert outcome.status == "pending" and outcome.attempts == 1  # non-retryable: no inline retries
        assert "login failed" in (outcome.error or "")
        (row,) = rows_before
        assert row["status"] == "pending" and "login failed" in row["last_error"]
        assert any(r.levelno == logging.ERROR and "refused" in r.getMessage() for r in caplog.records)
        assert_no_secret(wrong, caplog, [outcome], rows_before)

        # The operator fixes the password and restarts: the held mail goes out, once.
        clock.advance(minutes=16)  # past max_backoff, when a refused delivery is retried
        fixed = make_router(router_config(tmp_path, server.port, tls), clock)
        try:
            retried = fixed.tick()
            again = fixed.tick()
            rows_after = fixed.store.outbox_rows()
        finally:
            fixed.store.dispose()
        received = server.received

    assert [o.status for o in retried.deliveries] == ["delivered"] and again.deliveries == []
    assert len(received) == 1 and received[0].parsed()["X-Dagster-Monitoring-Transition"] == "new"
    assert [(r["status"], r["attempts"]) for r in rows_after] == [("delivered", 2)]
    assert_no_secret(wrong, caplog, retried.deliveries, rows_after)
    assert_no_secret(PASSWORD, caplog, retried.deliveries, rows_after)


def test_router_with_the_server_down_keeps_the_mail_pending(
    tmp_path: Path, tls: TlsFiles, clock: SimClock, caplog: pytest.LogCaptureFixture
) -> None:
    router = make_router(router_config(tmp_path, free_port(), tls), clock)
    try:
        result = router.process([failing(0)])
        rows = router.store.outbox_rows()
    finally:
        router.store.dispose()
    (outcome,) = result.deliveries
    assert outcome.status == "pending"
    assert outcome.attempts == router.config.delivery.attempts_per_call  # retryable: retried inline
    assert "ConnectionRefusedError" in (outcome.error or "")
    assert rows[0]["status"] == "pending" and rows[0]["attempts"] == outcome.attempts
    assert_no_secret(PASSWORD, caplog, [outcome], rows)


def test_only_web_links_reach_the_mail() -> None:
    from dataclasses import replace

    base = sample_notification("mail", Transition.NEW)
    links = {**base.event.links, "runbook": "javascript:alert(1)", "logs": "file:///etc/passwd"}
    notification = replace(base, event=replace(base.event, links=links))
    with SmtpServer("none") as server:
        assert transport_for(server.port).send(notification).ok
        (mail,) = server.received
    body = parts(mail.parsed())
    for part in body.values():
        assert "javascript:" not in part and "file:///" not in part
    assert f"href='{base.event.links['run']}'>Open run</a>" in body["text/html"]
