"""Jira tickets through the real AlertRouter, against a stateful fake Jira on a local HTTP server.

The fake (tests/helpers/fake_jira.py) checks the contract on every request (auth header, fields,
ADF validity against the official schema, transition ids) and models the two things that make
ticketing hard: a create answered too late (the issue exists, the client timed out) and a search
index that lags behind. Every scenario ends with no contract violation (fixture teardown).
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import timedelta
from typing import Any

import pytest

from dagster_monitoring.alerting import Status
from dagster_monitoring.alerting.events import short_hash
from dagster_monitoring.alerting.transports._ticket import ticket_key
from dagster_monitoring.audit.alert_records import delivery_records

from ..helpers.factories import SimClock, make_event, make_router
from ..helpers.fake_jira import FakeJira, comment_text
from ..helpers.http_server import LocalHTTPServer, Response

EMAIL = "alerts@example.com"
TOKEN = "jira-tok-Zx81Kq4Lm7Pn2Rv5Wy"
PAT = "jira-pat-Hh3Jd8Ks1Lq6Mw9Nz"
RUN_URL = "https://dagster.example.com/runs/0b7e4a6c"
CHECK_URL = "https://dagster.example.com/assets/loans/fct?view=checks"
FP = "dagster:run:loans_daily"


@pytest.fixture
def jira(clock):
    with FakeJira(api_token=TOKEN, clock=clock) as server:
        yield server
    assert server.violations == [], server.violations
    assert server.handler_errors == []


def receiver(server: FakeJira, **overrides: Any) -> dict[str, Any]:
    data = {
        "type": "jira",
        "name": "jira",
        "base_url": server.base_url,
        "email": EMAIL,
        "api_token": TOKEN,
        "project": "DATA",
        "timeout": "2s",
    }
    data.update(overrides)
    return data


def router_for(tmp_path, clock: SimClock, receivers: list[dict[str, Any]], *, routes=None, policy=None, **extra: Any):
    """A router whose sleep moves the simulated clock (which the fake's search index reads too)."""
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds=seconds)

    config = {
        "receivers": receivers,
        "routes": routes or [{"receivers": [r["name"] for r in receivers]}],
        "policy": {"repeat_interval": "4h", "flap_window": "0s", **(policy or {})},
        "state": {"path": str(tmp_path / "state.db")},
        **extra,
    }
    return make_router(config, clock, sleep=sleep), waits


def failing(clock: SimClock, entity: str = "loans_daily", **extra: Any):
    extra.setdefault("details", {"offending_value": "3 rows with amount IS NULL", "error": "KeyError: 'amount'"})
    extra.setdefault("links", {"run": RUN_URL, "asset_check": CHECK_URL})
    extra.setdefault("next_action", "Fix the NULL amounts in raw.repayments and re-run loans_daily.")
    return make_event(entity, Status.FAILING, clock.now, run_id="0b7e4a6c", **extra)


def passing(clock: SimClock, entity: str = "loans_daily", **extra: Any):
    return make_event(entity, Status.PASSING, clock.now, **extra)


def delivered_to(result, name: str = "jira"):
    return [d for d in result.deliveries if d.notification.receiver == name]


def incident_label(router, fingerprint: str = FP, name: str = "jira") -> str:
    return ticket_key(name, router.incident(fingerprint).incident_id)


# -- the lifecycle -----------------------------------------------------------------------------------


def test_new_then_one_reminder_comment_then_comment_and_close_on_recovery(tmp_path, jira, clock):
    router, waits = router_for(tmp_path, clock, [receiver(jira)], policy={"repeat_interval": "1h"})

    [new] = router.process([failing(clock)]).deliveries

    assert new.delivered and new.ticket and new.external_id == "DATA-1"
    assert new.external_url == f"{jira.base_url}/browse/DATA-1"
    assert [(r.method, r.path) for r in jira.requests] == [("GET", "/rest/api/3/search/jql"), ("POST", "/rest/api/3/issue")]
    assert jira.requests[0].query_value("jql") == f'labels = "{incident_label(router)}" ORDER BY created ASC'
    [issue] = jira.issues
    fields = issue.fields
    assert fields["project"] == {"key": "DATA"} and fields["issuetype"] == {"name": "Task"}
    assert fields["summary"] == "[ERROR] run loans_daily is failing"
    assert fields["priority"] == {"name": "High"}
    assert fields["labels"] == ["dagster-monitoring", f"dm-{short_hash(FP)}", incident_label(router)]
    description = comment_text(fields["description"])
    for expected in (
        "What failed",
        "Failing since",
        "Owner",
        "team:data-eng",
        "Failures",
        "Severity",
        "ERROR",
        "3 rows with amount IS NULL",
        "KeyError: 'amount'",
        "Next action",
        "Fix the NULL amounts",
        "Dagster run",
        "Asset check",
        FP,
    ):
        assert expected in description, expected
    links = [m["attrs"]["href"] for m in _marks(fields["description"]) if m["type"] == "link"]
    assert links == [RUN_URL, CHECK_URL]
    assert router.incident(FP).tickets["jira"]["key"] == "DATA-1"

    quiet = []
    for _ in range(3):  # 20, 40, 60 minutes: only the last is past repeat_interval
        clock.advance(minutes=20)
        quiet.append(router.process([failing(clock)]))
    assert [len(r.deliveries) for r in quiet] == [0, 0, 1]
    [reminder] = quiet[-1].deliveries
    assert reminder.delivered and reminder.external_id == "DATA-1"
    assert len(issue.comments) == 1
    assert comment_text(issue.comments[0]).startswith("Still failing: 4 failures since 2026-11-25 03:00 UTC (1h 00m so far).")
    assert "KeyError: 'amount'" in comment_text(issue.comments[0])
    assert len(jira.calls("GET", "/search/jql")) == 1  # the reminder used the key from the state

    clock.advance(minutes=20)
    fixing_run = "https://dagster.example.com/runs/9c0d1e2f"
    [recovered] = router.process([passing(clock, links={"run": fixing_run})]).deliveries

    assert recovered.delivered and recovered.external_id == "DATA-1"
    assert issue.status == "Done" and issue.transitions == ["Done"]
    assert len(issue.comments) == 2
    assert comment_text(issue.comments[1]).startswith("Recovered at 2026-11-25 04:20 UTC, broken for 1h 20m")
    assert f"Fixed by the run {fixing_run}." in comment_text(issue.comments[1])
    # the recovery comment links the run that fixed it and the one that failed
    hrefs = [m["attrs"]["href"] for m in _marks(issue.comments[1]) if m["type"] == "link"]
    assert hrefs[:2] == [fixing_run, RUN_URL]
    assert "Closed through 'Done'" in comment_text(issue.comments[1])
    assert len(jira.issues) == 1 and jira.duplicates() == 0
    assert waits == []
    assert router.store.outbox_counts() == {"delivered": 3}
    assert [row["external_id"] for row in router.store.outbox_rows()] == ["DATA-1"] * 3


def _marks(node: Any) -> list[dict[str, Any]]:
    out = []
    if isinstance(node, dict):
        out += node.get("marks", [])
        for child in node.get("content", []):
            out += _marks(child)
    return out


def test_data_center_rest_v2_with_a_bearer_token_uses_wiki_text(tmp_path, clock):
    with FakeJira(api_version=2, bearer_token=PAT, email=None, clock=clock) as server:
        config = receiver(server, api_version=2, bearer_token=PAT, email=None, api_token=None)
        del config["email"], config["api_token"]
        router, _ = router_for(tmp_path, clock, [config], policy={"repeat_interval": "1h"})
        router.process([failing(clock)])
        clock.advance(minutes=61)
        router.process([failing(clock)])
        clock.advance(minutes=5)
        router.process([passing(clock)])
        assert server.violations == [] and server.handler_errors == []

    assert {r.path for r in server.requests} >= {"/rest/api/2/search", "/rest/api/2/issue"}
    assert all(r.headers["Authorization"] == f"Bearer {PAT}" for r in server.requests)
    [issue] = server.issues
    assert issue.fields["description"].startswith("h3. What failed\n")
    assert f"* [Dagster run|{RUN_URL}]" in issue.fields["description"]
    assert "*Owner:* team:data-eng" in issue.fields["description"]
    assert [c.split(" — ")[0] for c in issue.comments] == [
        "Still failing: 2 failures since 2026-11-25 03:00 UTC (1h 01m so far). Last error: KeyError: 'amount'.",
        "Recovered at 2026-11-25 04:06 UTC, broken for 1h 06m (2 failures since 2026-11-25 03:00 UTC). Closed through 'Done'.",
    ]
    assert issue.status == "Done"


# -- idempotency -------------------------------------------------------------------------------------


def test_a_create_answered_after_the_timeout_is_found_by_label_not_created_twice(tmp_path, clock):
    # Jira makes DATA-1, then holds the answer for 5 s; the client gives up after 0.5 s. The search
    # index lags 10 s behind, so the retry waits search_settle (30 s) before it looks the label up.
    with FakeJira(api_token=TOKEN, clock=clock, index_lag=timedelta(seconds=10), create_delay=lambda n: 5.0 if n == 1 else 0.0) as server:
        router, waits = router_for(tmp_path, clock, [receiver(server, timeout="0.5s")])

        [first] = router.process([failing(clock)]).deliveries

        assert first.status == "pending" and first.attempts == 1
        assert "no answer within 0.5s" in first.error and "may have been created" in first.error
        assert waits == []  # 30 s is more than the 5 s inline budget: the next call retries
        [row] = router.store.outbox_rows()
        assert row["next_attempt_at"] == pytest.approx((clock.now + timedelta(seconds=30)).timestamp())
        create = server.settled()[1]
        assert create.client_gone and not create.answered
        assert [i.key for i in server.issues] == ["DATA-1"]  # made although nobody heard the answer

        clock.advance(seconds=30)
        [retry] = router.tick().deliveries

        assert retry.delivered and retry.external_id == "DATA-1" and retry.attempts == 2
        assert [(r.method, r.path) for r in server.requests[2:]] == [("GET", "/rest/api/3/search/jql")]
        clock.advance(minutes=5)
        [recovered] = router.process([passing(clock)]).deliveries
        assert recovered.delivered and recovered.external_id == "DATA-1"
        assert server.violations == [] and server.handler_errors == []

    assert len(server.issues) == 1 and server.duplicates() == 0
    assert server.issues[0].status == "Done"


def test_the_index_lag_is_real_a_retry_that_does_not_settle_opens_a_duplicate(tmp_path, clock):
    # Why search_settle exists: with it at 0, the retry looks before the index shows DATA-1.
    # (2 s, not 0.5 s: the retry's create must be answered within it, also on a loaded machine.)
    with FakeJira(api_token=TOKEN, clock=clock, index_lag=timedelta(seconds=60), create_delay=lambda n: 5.0 if n == 1 else 0.0) as server:
        router, waits = router_for(tmp_path, clock, [receiver(server, timeout="2s", search_settle="0s")])
        [outcome] = router.process([failing(clock)]).deliveries
        server.settled()

    assert outcome.delivered and outcome.external_id == "DATA-2" and waits == [1.0]
    assert [i.key for i in server.issues] == ["DATA-1", "DATA-2"] and server.duplicates() == 1


def test_a_recovery_queued_behind_a_throttled_new_waits_for_the_issue_then_closes_it(tmp_path, clock):
    # Jira is throttling when the incident opens (Retry-After 10 min); the job recovers before
    # that. The outbox keeps the recovery behind the `new` of its incident; once the `new` has
    # made DATA-1 in the same call, the recovery closes DATA-1 at once (the search index, 1 h
    # behind, is not needed).
    with FakeJira(api_token=TOKEN, clock=clock, index_lag=timedelta(hours=1)) as server:
        server.enqueue(Response(503, {"errorMessages": ["busy"]}, headers={"Retry-After": "600"}))
        router, _ = router_for(tmp_path, clock, [receiver(server)])
        [new] = router.process([failing(clock)]).deliveries
        clock.advance(minutes=2)
        early = router.process([passing(clock)]).deliveries

        assert new.status == "pending" and early == []  # the recovery is not even attempted yet
        assert server.issues == [] and len(server.requests) == 1  # the look-up, throttled: nothing created yet

        clock.advance(minutes=9)
        outcomes = router.tick().deliveries
        assert server.violations == [] and server.handler_errors == []

    assert [(o.notification.transition.value, o.status, o.external_id) for o in outcomes] == [
        ("new", "delivered", "DATA-1"),
        ("recovered", "delivered", "DATA-1"),
    ]
    [issue] = server.issues
    assert issue.status == "Done" and "broken for 2m" in comment_text(issue.comments[0])


def test_a_new_incident_after_recovery_gets_a_new_issue_not_the_closed_one(tmp_path, jira, clock):
    router, _ = router_for(tmp_path, clock, [receiver(jira)])
    router.process([failing(clock)])
    clock.advance(minutes=10)
    router.process([passing(clock)])
    first_label = jira.issues[0].labels[-1]
    clock.advance(hours=2)

    [new] = router.process([failing(clock)]).deliveries

    assert new.delivered and new.external_id == "DATA-2"
    old, fresh = jira.issues
    assert old.status == "Done" and old.transitions == ["Done"]  # not reopened
    assert fresh.status == "To Do" and fresh.labels[-1] != first_label
    assert fresh.labels[1] == old.labels[1] == f"dm-{short_hash(FP)}"  # same check, same filter label
    assert router.incident(FP).tickets["jira"]["key"] == "DATA-2"


def test_a_late_recovery_of_an_old_incident_closes_its_own_issue_not_the_next_ones(tmp_path, jira, clock):
    # The close of incident 1 is refused once (403: someone removed the permission) and kept for
    # a human; meanwhile incident 2 opens DATA-2. When the close is retried it must touch DATA-1.
    router, _ = router_for(tmp_path, clock, [receiver(jira)], delivery={"max_backoff": "15m"})
    router.process([failing(clock)])
    clock.advance(minutes=5)
    jira.enqueue(Response(403, {"errorMessages": ["You do not have permission to transition this issue."]}))
    [refused] = router.process([passing(clock)]).deliveries
    clock.advance(minutes=5)
    [second] = router.process([failing(clock)]).deliveries
    assert refused.status == "pending" and "credentials refused (HTTP 403: " in refused.error
    assert "You do not have permission to transition this issue." in refused.error
    assert second.external_id == "DATA-2"

    clock.advance(minutes=15)
    [late] = router.tick().deliveries

    assert late.delivered and late.notification.transition.value == "recovered" and late.external_id == "DATA-1"
    assert jira.issue("DATA-1").status == "Done" and jira.issue("DATA-2").status == "To Do"
    assert router.incident(FP).tickets["jira"]["key"] == "DATA-2"


def test_a_flapping_incident_is_one_issue_and_no_reopen_storm(tmp_path, jira, clock):
    router, _ = router_for(tmp_path, clock, [receiver(jira)], policy={"flap_window": "15m"})
    for _ in range(10):  # fail / pass every 2 minutes: each failure lands inside the flap window
        router.process([failing(clock)])
        clock.advance(minutes=1)
        router.process([passing(clock)])
        clock.advance(minutes=1)
    clock.advance(minutes=16)
    [recovered] = router.tick().deliveries

    assert recovered.delivered and recovered.external_id == "DATA-1"
    [issue] = jira.issues
    assert issue.transitions == ["Done"]
    assert len(jira.calls("POST", "/issue")) == 1 and len(jira.calls("POST", "/transitions")) == 1
    assert "(10 failures (9 flaps) since" in comment_text(issue.comments[-1])


# -- failures, classified ----------------------------------------------------------------------------


def test_429_with_retry_after_is_honoured(tmp_path, jira, clock):
    jira.enqueue(Response(429, {"errorMessages": ["Rate limit exceeded."]}, headers={"Retry-After": "3"}))
    router, waits = router_for(tmp_path, clock, [receiver(jira)])

    [outcome] = router.process([failing(clock)]).deliveries

    assert waits == [3.0]  # Retry-After beats the 1 s backoff
    assert outcome.delivered and outcome.attempts == 2 and outcome.external_id == "DATA-1"
    assert [r.response.status for r in jira.settled()] == [429, 200, 201]
    assert len(jira.issues) == 1


def test_401_is_a_clear_refusal_naming_the_receiver_without_the_token(tmp_path, jira, clock, caplog):
    wrong = "jira-tok-WRONG-9f8e7d6c5b4a"
    router, waits = router_for(tmp_path, clock, [receiver(jira, name="jira-data", api_token=wrong)])

    with caplog.at_level(logging.DEBUG):
        [outcome] = router.process([failing(clock)]).deliveries

    assert outcome.status == "pending" and outcome.attempts == 1 and waits == []  # not retried inline
    assert outcome.error == (
        f"Jira receiver 'jira-data' (http://127.0.0.1:{jira.port}/***): GET /rest/api/3/search/jql: credentials "
        'refused (HTTP 401: {"errorMessages": ["Client must be authenticated to access this resource."], "errors": {}}); '
        "check email and api_token (and the account's access to project DATA)"
    )
    assert jira.auth_failures == 1 and jira.issues == []
    encoded = base64.b64encode(f"{EMAIL}:{wrong}".encode()).decode()
    texts = [outcome.error, caplog.text, json.dumps(router.store.outbox_rows(), default=str)]
    for text in texts:
        assert wrong not in text and encoded not in text


def test_an_unknown_close_transition_is_refused_listing_the_available_ones(tmp_path, jira, clock):
    router, _ = router_for(tmp_path, clock, [receiver(jira, close_transition="Closed")])
    router.process([failing(clock)])
    clock.advance(minutes=5)

    [outcome] = router.process([passing(clock)]).deliveries

    assert outcome.status == "pending" and outcome.attempts == 1  # refused: kept for a human, not retried now
    assert outcome.error.endswith(
        "issue DATA-1: no transition named 'Closed' from status 'To Do'; available: 'Start progress', 'Done'. "
        "Set close_transition to one of them."
    )
    [issue] = jira.issues
    assert issue.status == "To Do" and issue.comments == []  # no "recovered" comment on an open issue


def test_the_close_transition_name_is_case_insensitive_and_can_set_a_resolution(tmp_path, jira, clock):
    router, _ = router_for(tmp_path, clock, [receiver(jira, close_transition="done", resolution="Fixed")])
    router.process([failing(clock)])
    jira.issue("DATA-1").status = "In Progress"  # someone started working on it
    clock.advance(minutes=5)

    [outcome] = router.process([passing(clock)]).deliveries

    assert outcome.delivered
    [move] = jira.calls("POST", "/transitions")
    assert move.json == {"transition": {"id": "31"}, "fields": {"resolution": {"name": "Fixed"}}}
    assert jira.issue("DATA-1").status == "Done"


def test_the_close_transition_can_be_named_by_its_target_status(tmp_path, clock):
    workflow = {"To Do": [("5", "Resolve issue", "Resolved")], "Resolved": [("3", "Reopen issue", "To Do")]}
    with FakeJira(api_token=TOKEN, clock=clock, workflow=workflow) as server:
        router, _ = router_for(tmp_path, clock, [receiver(server, close_transition="Resolved")])
        router.process([failing(clock)])
        clock.advance(minutes=5)
        [outcome] = router.process([passing(clock)]).deliveries
        assert server.violations == []

    assert outcome.delivered and server.issue("DATA-1").transitions == ["Resolve issue"]
    assert "Closed through 'Resolve issue'." in comment_text(server.issue("DATA-1").comments[-1])


def test_an_issue_someone_already_closed_is_not_moved_again(tmp_path, jira, clock):
    router, _ = router_for(tmp_path, clock, [receiver(jira)])
    router.process([failing(clock)])
    jira.issue("DATA-1").status = "Done"
    clock.advance(minutes=5)

    [outcome] = router.process([passing(clock)]).deliveries

    assert outcome.delivered and jira.calls("POST", "/transitions") == []
    assert "Already in Done." in comment_text(jira.issue("DATA-1").comments[-1])


# -- routing, escalation, links ------------------------------------------------------------------------


def test_routes_ticket_critical_at_once_and_warnings_after_three_failures(tmp_path, jira, clock):
    routes = [
        {"min_severity": "critical", "receivers": ["jira"], "continue": True},
        {"min_severity": "warn", "min_failures": 3, "receivers": ["jira"]},
    ]
    router, _ = router_for(tmp_path, clock, [receiver(jira)], routes=routes)

    router.process([failing(clock, "payments_hourly", severity="critical")])
    assert [i.fields["priority"] for i in jira.issues] == [{"name": "Highest"}]
    for n in range(1, 4):
        clock.advance(minutes=1)
        router.process([failing(clock, "freshness_check", severity="warn")])
        assert len(jira.issues) == (1 if n < 3 else 2), n

    assert jira.issues[1].fields["priority"] == {"name": "Medium"}
    assert jira.issues[1].fields["summary"] == "[WARN] run freshness_check is failing"


def test_escalation_raises_the_priority_then_comments(tmp_path, jira, clock):
    router, _ = router_for(tmp_path, clock, [receiver(jira)], policy={"escalation": [{"after_failures": 3, "to": "critical"}]})
    for _ in range(3):
        result = router.process([failing(clock)])
        clock.advance(minutes=1)

    [escalated] = result.deliveries
    assert escalated.notification.transition.value == "escalated" and escalated.external_id == "DATA-1"
    issue = jira.issue("DATA-1")
    assert issue.edits == [{"priority": {"name": "Highest"}}] and issue.fields["priority"] == {"name": "Highest"}
    assert comment_text(issue.comments[0]).startswith(
        "Escalated from ERROR to CRITICAL: 3 failures in a row over 2m. Failing since 2026-11-25 03:00 UTC."
    )
    assert "Priority raised to Highest." in comment_text(issue.comments[0])


def test_the_first_teams_card_links_the_ticket_and_so_does_a_later_one(tmp_path, jira, clock):
    with LocalHTTPServer(default=Response(202)) as teams:
        teams_receiver = {"type": "teams", "name": "teams", "webhook_url": teams.url("/workflows/x?sig=abcdef123456")}
        router, _ = router_for(tmp_path, clock, [receiver(jira), teams_receiver], policy={"repeat_interval": "1h"})
        first = router.process([failing(clock)])
        clock.advance(minutes=61)
        later = router.process([failing(clock)])
        cards = [r.json["attachments"][0]["content"] for r in teams.settled()]

    assert {(d.notification.receiver, d.external_id) for d in first.deliveries} == {("jira", "DATA-1"), ("teams", None)}
    [jira_reminder] = delivered_to(later, "jira")
    assert jira_reminder.external_id == "DATA-1" and jira_reminder.ticket
    [teams_reminder] = delivered_to(later, "teams")
    assert teams_reminder.notification.ticket == {
        "key": "DATA-1",
        "url": f"{jira.base_url}/browse/DATA-1",
        "incident_id": router.incident(FP).incident_id,
    }
    new_card, reminder_card = cards
    link = {"type": "Action.OpenUrl", "title": "Ticket DATA-1", "url": f"{jira.base_url}/browse/DATA-1"}
    assert link in new_card["actions"]  # the ticket was opened first, then the card sent with its link
    assert link in reminder_card["actions"]
    facts = {f["title"]: f["value"] for b in reminder_card["body"] if b["type"] == "FactSet" for f in b["facts"]}
    assert facts["Ticket"] == "DATA-1"
    rows = router.store.outbox_rows()
    assert [r["external_id"] for r in rows if r["receiver"] == "jira"] == ["DATA-1", "DATA-1"]
    audit = {r.receiver: r.ticket_key for r in delivery_records(later.deliveries)}  # alert_notifications rows
    assert audit == {"jira": "DATA-1", "teams": "DATA-1"}


# -- config --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"api_token": None}, "give email and api_token (Jira Cloud) or bearer_token (Data Center)"),
        ({"bearer_token": PAT}, "give either bearer_token, or email and api_token, not both"),
        ({"project": "data"}, "a Jira project key"),
        ({"labels": ["on call"]}, "cannot be empty or contain spaces"),
        ({"custom_fields": {"summary": "x"}}, "are set by the receiver itself"),
        ({"priorities": {"urgent": "Highest"}}, "priorities"),
    ],
)
def test_bad_jira_config_is_refused_at_load_time(tmp_path, overrides, message):
    from dagster_monitoring.alerting import ConfigError
    from dagster_monitoring.config import config_from_dict

    config = {
        "type": "jira",
        "name": "jira",
        "base_url": "https://acme.atlassian.net",
        "email": EMAIL,
        "api_token": TOKEN,
        "project": "DATA",
        **overrides,
    }
    config = {k: v for k, v in config.items() if v is not None}
    with pytest.raises(ConfigError) as info:
        config_from_dict({"receivers": [config], "state": {"path": str(tmp_path / "s.db")}})
    assert any(message in p for p in info.value.problems), info.value.problems


def test_priorities_can_be_switched_off_for_projects_without_the_field(tmp_path, clock):
    with FakeJira(api_token=TOKEN, clock=clock, priorities=None) as server:
        router, _ = router_for(tmp_path, clock, [receiver(server, priorities=None)])
        [outcome] = router.process([failing(clock)]).deliveries
        assert server.violations == []
    assert outcome.delivered and "priority" not in server.issues[0].fields


def test_the_fake_rejects_invalid_adf(jira):
    """The contract check has teeth: an empty text node is refused, as Jira Cloud refuses it."""
    import requests

    doc = {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": ""}]}]}
    auth = "Basic " + base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()
    fields = {"project": {"key": "DATA"}, "issuetype": {"name": "Task"}, "summary": "x", "description": doc}
    response = requests.post(
        jira.url("/rest/api/3/issue"), json={"fields": fields}, headers={"Authorization": auth, "Accept": "application/json"}, timeout=5
    )
    assert response.status_code == 400 and jira.issues == []
    assert jira.violations == ["create: description: doc.content[0].content[0]: text nodes need a non-empty string"]
    jira.violations.clear()
