"""Microsoft Teams (Workflows webhook) against a real local HTTP server, driven through AlertRouter.

The fake Workflows endpoint checks the contract from docs (POST to the signed URL, JSON message
envelope with one Adaptive Card 1.5 attachment, at most 28 KB) and answers 202 unless the test
scripted something else. Every scenario ends with: each notification accepted exactly once,
nothing left in the outbox.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from dagster_monitoring.alerting import Status
from dagster_monitoring.alerting.transports.teams_card import DEFAULT_MAX_BYTES, build_card, payload_size, wrap_message

from ..helpers.factories import T0, SimClock, make_event, make_router
from ..helpers.http_server import LocalHTTPServer, Request, Response

# Shaped like a real Workflows URL; the signature (and the path) are the secret.
WEBHOOK_PATH = "/workflows/5f1c0e2a9b7d4c3e8a6f1d2e3c4b5a69/triggers/manual/paths/invoke"
SIG = "kX9vQ2mN7pL4sR8tW1yZ3bC6dF0gH5jK2lM9nP4qR7s"
QUERY = f"api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIG}"

RUN_URL = "https://dagster.example.com/runs/0b7e4a6c"
RUNBOOK_URL = "https://wiki.example.com/runbooks/loans_daily"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"


# -- the fake Workflows endpoint ---------------------------------------------------------------


def contract_problems(request: Request) -> list[str]:
    """What a Workflows webhook would reject about this request (empty list: fine)."""
    problems = []
    if request.method != "POST":
        problems.append(f"method {request.method}, expected POST")
    if request.path != WEBHOOK_PATH:
        problems.append(f"path {request.path!r}, expected the configured webhook path")
    if request.query_value("sig") != SIG or request.query_value("api-version") != "2016-06-01":
        problems.append("signature / api-version query parameters missing or changed")
    content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
    if content_type != "application/json":
        problems.append(f"Content-Type {content_type!r}, expected application/json")
    message = request.json
    if not isinstance(message, dict) or set(message) != {"type", "attachments"} or message["type"] != "message":
        return problems + ["body is not a {type: message, attachments: [...]} envelope"]
    attachments = message["attachments"]
    if not isinstance(attachments, list) or len(attachments) != 1:
        return problems + ["expected exactly one attachment"]
    attachment = attachments[0]
    if attachment.get("contentType") != CARD_CONTENT_TYPE:
        problems.append(f"attachment contentType {attachment.get('contentType')!r}")
    if "contentUrl" not in attachment or attachment["contentUrl"] is not None:
        problems.append("attachment contentUrl must be present and null")
    card = attachment.get("content")
    if not isinstance(card, dict):
        return problems + ["attachment content is not an object"]
    if card.get("type") != "AdaptiveCard" or card.get("version") != "1.5":
        problems.append(f"content is not an AdaptiveCard 1.5 ({card.get('type')!r} {card.get('version')!r})")
    if card.get("$schema") != "http://adaptivecards.io/schemas/adaptive-card.json":
        problems.append("card $schema missing")
    if not isinstance(card.get("body"), list) or not card["body"]:
        problems.append("card body empty")
    return problems


class FakeTeamsWorkflow(LocalHTTPServer):
    """Checks every request against the contract; a valid one gets the scripted answer or 202."""

    MAX_BYTES = 28_000

    def __init__(self, responses: list[Response] | tuple[Response, ...] = (), *, default: Response = Response(202)) -> None:
        super().__init__(responses, default=default)
        self.violations: list[str] = []

    @property
    def webhook_url(self) -> str:
        return self.url(f"{WEBHOOK_PATH}?{QUERY}")

    def handle(self, request: Request) -> Response:
        problems = contract_problems(request)
        if problems:
            self.violations.extend(problems)
            return Response(400, {"error": {"code": "InvalidRequestContent", "message": "; ".join(problems)}})
        if len(request.body) > self.MAX_BYTES:
            return Response(413, {"error": {"code": "MessageSizeLimitExceeded"}})
        return self.next_response()

    def accepted_per_notification(self) -> Counter[str]:
        return Counter(notification_id(card_of(r)) for r in self.accepted)


# -- reading cards -----------------------------------------------------------------------------


def card_of(request: Request) -> dict[str, Any]:
    return request.json["attachments"][0]["content"]


def notification_id(card: dict[str, Any]) -> str:
    """Which (incident, transition) a card announces: its footer plus its badge."""
    footer = card["body"][-1]["text"]
    assert footer.startswith("Fingerprint "), footer
    return f"{footer} [{card['body'][0]['items'][0]['text']}]"


def header(card: dict[str, Any]) -> dict[str, Any]:
    block = card["body"][0]
    assert block["type"] == "Container" and block.get("bleed") is True
    return block


def facts(card: dict[str, Any]) -> dict[str, str]:
    """The lifecycle FactSet (since when, how often, who owns it)."""
    for block in card["body"]:
        if block["type"] == "FactSet" and any(f["title"] in ("Failing since", "Recovered at") for f in block["facts"]):
            return {f["title"]: f["value"] for f in block["facts"]}
    raise AssertionError("card has no lifecycle FactSet")


def what_failed(card: dict[str, Any]) -> dict[str, str]:
    """The kind's curated facts (the "What failed" section), empty when there is none."""
    for block in card["body"]:
        if block["type"] == "Container" and not block.get("bleed"):
            for item in block["items"]:
                if item["type"] == "FactSet":
                    return {f["title"]: f["value"] for f in item["facts"]}
    return {}


def actions(card: dict[str, Any]) -> dict[str, str]:
    return {a["title"]: a["url"] for a in card.get("actions", []) if a["type"] == "Action.OpenUrl"}


def detail_texts(card: dict[str, Any]) -> list[str]:
    """The monospace detail texts (long detail values)."""
    return [
        item["text"]
        for block in card["body"]
        if block["type"] == "Container" and not block.get("bleed")
        for item in block["items"]
        if item.get("fontType") == "Monospace"
    ]


def card_texts(card: dict[str, Any]) -> list[str]:
    """The headline, then every top-level text block, in order."""
    return [header(card)["items"][1]["text"]] + [b["text"] for b in card["body"] if b["type"] == "TextBlock"]


def has_details(card: dict[str, Any]) -> bool:
    """The long error text is on the card."""
    return bool(detail_texts(card))


# -- setup -------------------------------------------------------------------------------------


@pytest.fixture
def teams():
    with FakeTeamsWorkflow() as server:
        yield server
    assert server.violations == [], server.violations
    assert server.handler_errors == []


def teams_router(tmp_path, server: FakeTeamsWorkflow, clock: SimClock, *, timeout: str = "5s", **delivery: Any):
    """A router with one Teams receiver (URL given as a plain string in Python) and a fake sleep
    that records each pause and moves the simulated clock by it."""
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds=seconds)

    config = {
        "receivers": [{"type": "teams", "name": "teams", "webhook_url": server.webhook_url, "timeout": timeout}],
        "routes": [{"receivers": ["teams"]}],
        "policy": {"repeat_interval": "4h", "flap_window": "0s"},
        "delivery": delivery,
        "state": {"path": str(tmp_path / "state.db")},
    }
    return make_router(config, clock, sleep=sleep), waits


def failing(clock: SimClock, **extra: Any):
    extra.setdefault(
        "details", {"error": "KeyError: 'amount'", "traceback": "Traceback (most recent call last):\n  ...\nKeyError: 'amount'"}
    )
    extra.setdefault("links", {"run": RUN_URL, "runbook": RUNBOOK_URL})
    return make_event("loans_daily", Status.FAILING, clock.now, run_id="0b7e4a6c", **extra)


def assert_each_delivered_once(server: FakeTeamsWorkflow, router, expected: int) -> Counter[str]:
    """Nothing lost (every outbox row delivered and seen by the server) and nothing twice."""
    per_notification = server.accepted_per_notification()
    assert len(per_notification) == expected, per_notification
    assert set(per_notification.values()) == {1}, per_notification
    assert router.store.outbox_counts() == {"delivered": expected}
    return per_notification


# -- scenarios ---------------------------------------------------------------------------------


def test_202_accepted_on_first_post(tmp_path, teams, clock):
    router, waits = teams_router(tmp_path, teams, clock)

    result = router.process([failing(clock)])

    [outcome] = result.deliveries
    assert outcome.delivered and outcome.attempts == 1 and outcome.error is None
    [request] = teams.settled()
    assert request.accepted and request.response.status == 202
    card = card_of(request)
    assert header(card)["style"] == "emphasis"  # ERROR: red title on grey; CRITICAL is a filled red header
    assert header(card)["items"][0]["text"] == "ERROR · NEW"
    assert header(card)["items"][1] == {**header(card)["items"][1], "text": "run loans_daily is failing", "color": "Attention"}
    assert facts(card)["Owner"] == "team:data-eng" and facts(card)["Failures"] == "1 in a row"
    assert "Status" not in facts(card) and "Severity" not in facts(card)  # the badge says it once
    assert actions(card) == {"Open run": RUN_URL, "Runbook": RUNBOOK_URL}
    assert waits == []
    assert_each_delivered_once(teams, router, 1)


def test_429_retry_after_is_honoured_inside_the_call(tmp_path, teams, clock):
    teams.enqueue(Response(429, {"error": "throttled"}, headers={"Retry-After": "3"}))
    router, waits = teams_router(tmp_path, teams, clock)

    result = router.process([failing(clock)])

    assert waits == [3.0]  # Retry-After (3 s) beats the 1 s backoff
    [outcome] = result.deliveries
    assert outcome.delivered and outcome.attempts == 2
    assert [r.response.status for r in teams.settled()] == [429, 202]
    assert_each_delivered_once(teams, router, 1)


def test_429_retry_after_longer_than_inline_budget_waits_for_a_later_tick(tmp_path, teams, clock):
    teams.enqueue(Response(429, {"error": "throttled"}, headers={"Retry-After": "120"}))
    router, waits = teams_router(tmp_path, teams, clock, max_inline_wait="5s")

    first = router.process([failing(clock)])

    [outcome] = first.deliveries
    assert outcome.status == "pending" and outcome.attempts == 1
    assert "HTTP 429" in outcome.error
    assert waits == []  # 120 s is over the inline budget: no sleeping inside the call
    [row] = router.store.outbox_rows()
    assert row["next_attempt_at"] == pytest.approx((T0 + timedelta(seconds=120)).timestamp())

    clock.advance(seconds=119)
    assert router.tick().deliveries == []
    assert len(teams.settled()) == 1  # not retried before Retry-After passed

    clock.advance(seconds=1)
    [retry] = router.tick().deliveries
    assert retry.delivered and retry.attempts == 2
    assert [r.response.status for r in teams.settled()] == [429, 202]
    assert_each_delivered_once(teams, router, 1)


def test_413_is_retried_at_once_with_a_minimal_card(tmp_path, teams, clock):
    teams.enqueue(Response(413, {"error": {"code": "MessageSizeLimitExceeded"}}))
    router, waits = teams_router(tmp_path, teams, clock)

    result = router.process([failing(clock)])

    [outcome] = result.deliveries
    assert outcome.delivered and outcome.attempts == 1  # the 413 retry is inside one send
    assert waits == []
    full_req, minimal_req = teams.settled()
    assert full_req.response.status == 413 and minimal_req.accepted
    assert len(minimal_req.body) < len(full_req.body)
    full, minimal = card_of(full_req), card_of(minimal_req)
    assert has_details(full) and not has_details(minimal)
    assert any("trimmed to fit" in i.get("text", "") for b in minimal["body"] if b["type"] == "Container" for i in b["items"])
    assert header(minimal) == header(full)
    assert facts(minimal) == facts(full)
    assert actions(minimal) == actions(full) == {"Open run": RUN_URL, "Runbook": RUNBOOK_URL}
    assert_each_delivered_once(teams, router, 1)


def test_500_then_202_is_retried_after_backoff(tmp_path, teams, clock):
    teams.enqueue(Response(500, "internal error"))
    router, waits = teams_router(tmp_path, teams, clock)

    result = router.process([failing(clock)])

    assert waits == [1.0]  # initial_backoff
    [outcome] = result.deliveries
    assert outcome.delivered and outcome.attempts == 2
    assert [r.response.status for r in teams.settled()] == [500, 202]
    assert_each_delivered_once(teams, router, 1)


def test_timeout_then_202_is_not_delivered_twice(tmp_path, teams, clock):
    # The server holds the first answer far longer than the 0.5 s client timeout; the client hangs
    # up, so the server never accepts that post. The retry is the one and only accepted post.
    teams.enqueue(Response(202, delay=10))
    router, waits = teams_router(tmp_path, teams, clock, timeout="0.5s")

    result = router.process([failing(clock)])

    [outcome] = result.deliveries
    assert outcome.delivered and outcome.attempts == 2
    assert waits == [1.0]
    first, second = teams.settled()
    assert first.client_gone and not first.accepted
    assert second.accepted
    assert first.body == second.body  # the same card, re-sent
    assert_each_delivered_once(teams, router, 1)


@pytest.mark.parametrize(
    "details",
    [
        {f"log_{i:02d}": f"line {i}: " + "x" * 3000 for i in range(40)},  # 40 long values
        {f"step_{i:03d}": f"step {i} failed: " + "y" * 300 for i in range(400)},  # 400 values
    ],
    ids=["long-values", "many-values"],
)
def test_huge_details_make_a_curated_card_under_the_limit(tmp_path, teams, clock, details):
    router, _ = teams_router(tmp_path, teams, clock)

    result = router.process([failing(clock, details=details)])

    [notification] = result.notifications
    [request] = teams.settled()  # one post: no 413 from the server
    assert request.accepted
    assert len(request.body) <= FakeTeamsWorkflow.MAX_BYTES
    card = card_of(request)
    assert header(card) == header(build_card(notification, detail_limit=0, include_details=False))
    assert len(what_failed(card)) <= 5  # curated, not dumped
    assert all(len(v) <= 300 for v in what_failed(card).values())
    assert actions(card) == {"Open run": RUN_URL, "Runbook": RUNBOOK_URL}
    assert_each_delivered_once(teams, router, 1)


def test_a_41kb_check_description_cannot_make_a_41kb_card(tmp_path, teams, clock):
    """A real project had a check description of 41 KB: it became the card's headline."""
    summary = "Check row_count_ok on loans failed: " + "the loan extract is short; " * 1500
    router, _ = teams_router(tmp_path, teams, clock)

    result = router.process([make_event("loans:row_count_ok", at=clock.now, kind="asset_check", summary=summary)])

    [notification] = result.notifications
    [request] = teams.settled()
    card = card_of(request)
    assert len(request.body) < 8_000  # the whole message, not just under 28 KB
    assert len(header(card)["items"][1]["text"]) <= 180 and header(card)["items"][1]["text"].endswith("…")
    minimal = wrap_message(build_card(notification, detail_limit=0, include_details=False))  # the 413 fallback
    assert payload_size(minimal) < 8_000


def test_failure_then_recovery_sends_new_card_then_green_recovered_card(tmp_path, teams, clock):
    router, _ = teams_router(tmp_path, teams, clock)

    router.process([failing(clock)])
    clock.advance(hours=1, minutes=30)
    fixing_run = "https://dagster.example.com/runs/5d2f9a01"
    result = router.process([make_event("loans_daily", Status.PASSING, clock.now, links={"run": fixing_run}, run_id="5d2f9a01")])

    [recovery] = result.deliveries
    assert recovery.delivered
    new_req, recovered_req = teams.settled()
    new, recovered = card_of(new_req), card_of(recovered_req)

    assert header(new)["style"] == "emphasis"
    assert header(new)["items"][0]["text"] == "ERROR · NEW"
    assert "Failing since" in facts(new) and "Broken for" not in facts(new)

    assert header(recovered)["style"] == "good"
    assert header(recovered)["items"][0] == {**header(recovered)["items"][0], "text": "RECOVERED", "color": "Good"}
    assert header(recovered)["items"][1]["text"] == "Recovered: loans_daily"
    assert card_texts(recovered)[1] == "Recovered after 1h 30m and 1 failure(s)."
    recovered_facts = facts(recovered)
    assert recovered_facts["Broken for"] == "1h 30m"
    assert recovered_facts["Recovered at"] == "2026-11-25 04:30 UTC"
    assert not has_details(recovered)
    # the run that fixed it first, then the one that failed
    assert list(actions(recovered).items()) == [("Run that fixed it", fixing_run), ("Failing run", RUN_URL), ("Runbook", RUNBOOK_URL)]
    assert_each_delivered_once(teams, router, 2)


def test_webhook_url_never_appears_in_errors_or_logs(tmp_path, clock, caplog):
    caplog.set_level(logging.DEBUG)
    # A server that echoes the request URL back in its error body, as some gateways do.
    server = FakeTeamsWorkflow(default=Response(503, f"upstream unavailable for POST {WEBHOOK_PATH}?{QUERY}"))
    with server:
        base_url, webhook_url = server.base_url, server.webhook_url
        router, waits = teams_router(tmp_path, server, clock)
        [busy] = router.process([failing(clock)]).deliveries
        assert [r.response.status for r in server.settled()] == [503, 503, 503]
    assert waits == [1.0, 2.0]
    # Now nothing listens there at all: requests' error text quotes the URL path and query.
    clock.advance(minutes=10)
    [down] = router.tick().deliveries

    errors = [busy.error, down.error] + [row["last_error"] for row in router.store.outbox_rows()]
    assert busy.status == down.status == "pending"
    assert busy.error.startswith(f"Teams webhook {base_url}/***: HTTP 503: upstream unavailable")
    assert "Max retries exceeded" in down.error or "Connection" in down.error
    logged = [record.getMessage() for record in caplog.records]
    assert any("delivery of new" in message for message in logged)
    for text in errors + logged + [caplog.text]:
        assert SIG not in text
        assert WEBHOOK_PATH not in text
        assert webhook_url not in text
        assert SIG[:12] not in text  # not even a cut-off piece of the signature
