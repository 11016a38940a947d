"""The generic JSON webhook against a real local HTTP server, plus the shared HTTP classification."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest

from dagster_monitoring.alerting import Status
from dagster_monitoring.alerting.lifecycle import Transition
from dagster_monitoring.alerting.notification import IncidentSnapshot, Notification
from dagster_monitoring.alerting.redact import register_secret
from dagster_monitoring.alerting.transports import WebhookConfig, WebhookTransport, classify_http
from dagster_monitoring.alerting.transports.webhook import PAYLOAD_VERSION

from ..helpers.factories import T0, SimClock, make_event, make_router
from ..helpers.http_server import LocalHTTPServer, Request, Response

HOOK_PATH = "/hooks/dagster-monitoring"
HOOK_TOKEN = "tok_7Hq2Lw9Zr4Xv8Bn3"
SECRET_HEADER = "X-DM-Signature"
SECRET_VALUE = "hdr-secret-5Tg8Kp1Wm6Yc"
RUN_URL = "https://dagster.example.com/runs/0b7e4a6c"


class FakeHookReceiver(LocalHTTPServer):
    """Answers the scripted status only to a correctly addressed, authenticated JSON POST."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("default", Response(204))
        super().__init__(*args, **kwargs)
        self.violations: list[str] = []

    @property
    def hook_url(self) -> str:
        return self.url(f"{HOOK_PATH}?token={HOOK_TOKEN}")

    def handle(self, request: Request) -> Response:
        problems = []
        if request.method != "POST" or request.path != HOOK_PATH or request.query_value("token") != HOOK_TOKEN:
            problems.append(f"wrong target {request.method} {request.path}")
        if request.headers.get(SECRET_HEADER) != SECRET_VALUE:
            problems.append("secret header missing or wrong")
        if (request.headers.get("Content-Type") or "").split(";")[0] != "application/json" or not isinstance(request.json, dict):
            problems.append("body is not JSON")
        if problems:
            self.violations.extend(problems)
            return Response(401, {"error": "; ".join(problems)})
        return self.next_response()


@pytest.fixture
def hook():
    with FakeHookReceiver() as server:
        yield server
    assert server.violations == [], server.violations
    assert server.handler_errors == []


def hook_router(tmp_path, server: FakeHookReceiver, clock: SimClock):
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds=seconds)

    config = {
        "receivers": [{
            "type": "webhook", "name": "hook", "url": server.hook_url, "timeout": "5s",
            "headers": {SECRET_HEADER: SECRET_VALUE},
        }],
        "routes": [{"receivers": ["hook"]}],
        "policy": {"repeat_interval": "4h", "flap_window": "0s"},
        "state": {"path": str(tmp_path / "state.db")},
    }
    return make_router(config, clock, sleep=sleep), waits


def failing(clock: SimClock):
    return make_event(
        "loans_daily", Status.FAILING, clock.now, run_id="0b7e4a6c",
        details={"error": "KeyError: 'amount'"}, links={"run": RUN_URL},
    )


def router_free_notification(clock: SimClock) -> Notification:
    event = failing(clock)
    return Notification(
        key="inc-1:new:hook:1", receiver="hook", transition=Transition.NEW, severity=event.severity, event=event,
        incident=IncidentSnapshot("inc-1", event.fingerprint, T0, T0, 1), created_at=T0,
    )


def test_payload_is_the_versioned_notification_document(tmp_path, hook, clock):
    router, _ = hook_router(tmp_path, hook, clock)

    result = router.process([failing(clock)])

    [notification] = result.notifications
    [outcome] = result.deliveries
    assert outcome.delivered and outcome.attempts == 1
    [request] = hook.settled()
    assert request.accepted and request.response.status == 204
    body = request.json
    assert body["version"] == PAYLOAD_VERSION == 1
    assert body["key"] == notification.key
    assert body["receiver"] == "hook"
    assert body["transition"] == "new"
    assert body["severity"] == "error"
    assert body["title"] == "ERROR NEW: run loans_daily is failing"
    assert body["event"]["entity"] == "loans_daily"
    assert body["event"]["links"] == {"run": RUN_URL}
    assert body["event"]["details"] == {"error": "KeyError: 'amount'"}
    assert body["incident"]["incident_id"] == notification.incident.incident_id
    assert body["incident"]["fingerprint"] == "dagster:run:loans_daily"
    assert body["incident"]["failures"] == 1
    assert body["facts"]["Status"] == "New"
    assert body["facts"]["Entity"] == "loans_daily"
    assert body["facts"]["Run"] == "0b7e4a6c"
    assert body["next_action"]
    assert request.headers[SECRET_HEADER] == SECRET_VALUE


def test_recovery_is_posted_with_its_own_key(tmp_path, hook, clock):
    router, _ = hook_router(tmp_path, hook, clock)
    router.process([failing(clock)])
    clock.advance(minutes=45)

    router.process([make_event("loans_daily", Status.PASSING, clock.now)])

    new, recovered = (r.json for r in hook.settled())
    assert (new["transition"], recovered["transition"]) == ("new", "recovered")
    assert recovered["key"] != new["key"]
    assert recovered["incident"]["incident_id"] == new["incident"]["incident_id"]
    assert recovered["facts"]["Broken for"] == "45m"
    assert router.store.outbox_counts() == {"delivered": 2}


def test_4xx_is_fatal_not_retried_inline_and_kept(tmp_path, hook, clock, caplog):
    caplog.set_level(logging.DEBUG)
    hook.enqueue(Response(422, {"error": "unknown field"}))
    router, waits = hook_router(tmp_path, hook, clock)

    [outcome] = router.process([failing(clock)]).deliveries

    assert outcome.status == "pending" and outcome.attempts == 1
    assert waits == [] and len(hook.settled()) == 1  # no inline retry on a 4xx
    assert outcome.error.startswith(f"webhook {hook.base_url}/***: HTTP 422")
    # kept for a human, retried only after max_backoff (15m by default)
    clock.advance(minutes=14)
    assert router.tick().deliveries == [] and len(hook.settled()) == 1
    clock.advance(minutes=1)
    [retry] = router.tick().deliveries
    assert retry.delivered and retry.attempts == 2
    assert [r.response.status for r in hook.settled()] == [422, 204]
    for text in [outcome.error, caplog.text]:
        assert HOOK_TOKEN not in text and SECRET_VALUE not in text


def test_5xx_is_retried_with_backoff(tmp_path, hook, clock):
    hook.enqueue(Response(503, "maintenance"), Response(502, "bad gateway"))
    router, waits = hook_router(tmp_path, hook, clock)

    [outcome] = router.process([failing(clock)]).deliveries

    assert outcome.delivered and outcome.attempts == 3
    assert waits == [1.0, 2.0]
    assert [r.response.status for r in hook.settled()] == [503, 502, 204]
    assert len(hook.accepted) == 1


def test_transport_send_classifies_answers(hook, clock):
    transport = WebhookTransport(WebhookConfig(name="hook", url=hook.hook_url, headers={SECRET_HEADER: SECRET_VALUE}, timeout=5))
    notification = router_free_notification(clock)

    hook.enqueue(Response(404, "no such hook"), Response(500, "boom"), Response(429, headers={"Retry-After": "7"}), Response(200))
    not_found, boom, throttled, ok = (transport.send(notification) for _ in range(4))

    assert (not_found.ok, not_found.retryable, not_found.status_code) == (False, False, 404)
    assert (boom.ok, boom.retryable, boom.status_code) == (False, True, 500)
    assert (throttled.ok, throttled.retryable, throttled.retry_after) == (False, True, 7.0)
    assert ok.ok and ok.status_code == 200 and ok.error is None
    assert transport.render(notification) == hook.settled()[-1].json


# -- classify_http -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "ok", "retryable"),
    [
        (200, True, False), (202, True, False), (204, True, False),
        (408, False, True), (429, False, True), (500, False, True), (502, False, True), (503, False, True), (504, False, True),
        (400, False, False), (401, False, False), (403, False, False), (404, False, False), (413, False, False),
    ],
)
def test_classify_http_status_table(status, ok, retryable):
    result = classify_http(status, {})
    assert (result.ok, result.retryable, result.status_code) == (ok, retryable, status)
    assert (result.error is None) is ok
    if not ok:
        assert result.error.startswith(f"HTTP {status}")


def test_classify_http_retry_after_seconds():
    assert classify_http(429, {"Retry-After": "30"}).retry_after == 30.0
    assert classify_http(503, {"Retry-After": " 2.5 "}).retry_after == 2.5
    assert classify_http(429, {"Retry-After": "-4"}).retry_after == 0.0
    assert classify_http(429, {"Retry-After": "soon"}).retry_after is None
    assert classify_http(429, {}).retry_after is None
    assert classify_http(400, {"Retry-After": "30"}).retry_after is None  # only for retryable answers


def test_classify_http_retry_after_http_date():
    ahead = format_datetime(datetime.now(timezone.utc) + timedelta(minutes=2), usegmt=True)
    past = format_datetime(datetime(2020, 1, 1, tzinfo=timezone.utc), usegmt=True)
    wait = classify_http(429, {"Retry-After": ahead}).retry_after
    assert wait is not None and 60 < wait <= 120
    assert classify_http(503, {"Retry-After": past}).retry_after == 0.0


def test_classify_http_body_hint_is_redacted_and_short():
    register_secret("https://hooks.example.com/abc?token=" + HOOK_TOKEN)
    result = classify_http(500, {}, body_hint="x" * 180 + f"token={HOOK_TOKEN} and more")
    assert HOOK_TOKEN[:8] not in result.error  # masked before it is cut to 200 characters
    assert len(result.error) <= len("HTTP 500: ") + 200
