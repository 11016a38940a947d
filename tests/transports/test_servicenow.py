"""ServiceNow incidents through the real AlertRouter, against a stateful fake Table API.

The fake (tests/helpers/fake_servicenow.py) checks the contract on every request (auth header,
Accept, known fields only, urgency / impact, assignment group, close_code + close_notes on
resolve) and keeps a resolved incident ``active=true`` as a real instance does, which is what
makes a per-fingerprint correlation key wrong. Every scenario ends with no contract violation.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from dagster_monitoring.alerting import ConfigError, Status
from dagster_monitoring.alerting.transports._ticket import ticket_key
from dagster_monitoring.config import config_from_dict

from ..helpers.factories import SimClock, make_event, make_router
from ..helpers.fake_servicenow import TABLE, FakeServiceNow, notes
from ..helpers.http_server import LocalHTTPServer, Response

USER = "svc-dagster"
PASSWORD = "sn-pw-Qm4Tz9Lx2Vb7Nc1"
OAUTH = "sn-oauth-Ys6Fp3Kd8Wr1Hj5"
RUN_URL = "https://dagster.example.com/runs/0b7e4a6c"
FP = "dagster:run:loans_daily"
GROUPS = {"team:data-eng": "Data Engineering", "team:platform": "Platform"}


@pytest.fixture
def snow():
    with FakeServiceNow(password=PASSWORD) as server:
        yield server
    assert server.violations == [], server.violations
    assert server.handler_errors == []


def receiver(server: FakeServiceNow, **overrides: Any) -> dict[str, Any]:
    data = {"type": "servicenow", "name": "snow", "base_url": server.base_url, "username": USER, "password": PASSWORD,
            "assignment_groups": GROUPS, "caller_id": USER, "timeout": "2s"}
    data.update(overrides)
    return data


def router_for(tmp_path, clock: SimClock, receivers: list[dict[str, Any]], *, routes=None, policy=None, **extra: Any):
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
    extra.setdefault("links", {"run": RUN_URL})
    return make_event(entity, Status.FAILING, clock.now, run_id="0b7e4a6c", **extra)


def passing(clock: SimClock, entity: str = "loans_daily"):
    return make_event(entity, Status.PASSING, clock.now)


def link(server: FakeServiceNow, record: dict[str, Any]) -> str:
    return f"{server.base_url}/nav_to.do?uri=incident.do?sys_id={record['sys_id']}"


# -- the lifecycle -----------------------------------------------------------------------------------


def test_new_then_one_work_note_then_resolved_with_close_fields(tmp_path, snow, clock):
    router, waits = router_for(tmp_path, clock, [receiver(snow)], policy={"repeat_interval": "1h"})

    [new] = router.process([failing(clock)]).deliveries

    [record] = snow.records
    assert new.delivered and new.ticket and new.external_id == record["number"] == "INC0010001"
    assert new.external_url == link(snow, record)
    lookup, create = snow.requests
    key = ticket_key("snow", router.incident(FP).incident_id)
    assert (lookup.method, lookup.path) == ("GET", TABLE)
    assert lookup.query_value("sysparm_query") == f"correlation_id={key}^active=true^ORDERBYsys_created_on"
    assert lookup.query_value("sysparm_fields") == "sys_id,number,state"
    assert (create.method, create.path) == ("POST", TABLE)
    assert set(create.json) == {"short_description", "description", "urgency", "impact", "correlation_id",
                                "correlation_display", "assignment_group", "caller_id"}
    assert record["short_description"] == "[ERROR] run loans_daily is failing"
    assert (record["urgency"], record["impact"]) == ("2", "2")
    assert record["assignment_group"] == "Data Engineering" and record["caller_id"] == USER
    assert record["correlation_id"] == key and record["correlation_display"] == "dagster-monitoring"
    for expected in ("Failing since: 2026-11-25 03:00 UTC", "Owner: team:data-eng", "Offending value:",
                     "3 rows with amount IS NULL", "KeyError: 'amount'", "Next action:", f"Dagster run: {RUN_URL}", FP):
        assert expected in record["description"], expected

    clock.advance(minutes=30)
    assert router.process([failing(clock)]).deliveries == []  # ongoing: nothing
    clock.advance(minutes=31)
    [reminder] = router.process([failing(clock)]).deliveries
    assert reminder.delivered and reminder.external_id == "INC0010001"
    [note] = notes(record)
    assert note.startswith("Still failing: 3 failures since 2026-11-25 03:00 UTC (1h 01m so far). Last error: KeyError: 'amount'.")
    assert len(snow.calls("GET")) == 1  # updates use the sys_id kept in the state's link

    clock.advance(minutes=9)
    [recovered] = router.process([passing(clock)]).deliveries

    assert recovered.delivered and recovered.external_id == "INC0010001"
    assert record["state"] == "6" and record["close_code"] == "Solved (Permanently)"
    assert record["close_notes"].startswith("Recovered at 2026-11-25 04:10 UTC, broken for 1h 10m (3 failures since")
    assert record["active"] == "true"  # resolved, not yet closed: as on a real instance
    assert len(snow.records) == 1 and snow.duplicates() == 0 and waits == []
    assert [row["external_id"] for row in router.store.outbox_rows()] == ["INC0010001"] * 3


def test_oauth_bearer_token_and_escalation_raises_urgency_and_impact(tmp_path, clock):
    with FakeServiceNow(bearer_token=OAUTH) as server:
        config = receiver(server, bearer_token=OAUTH)
        del config["username"], config["password"]
        router, _ = router_for(tmp_path, clock, [config], policy={"escalation": [{"after_failures": 2, "to": "critical"}]})
        router.process([failing(clock)])
        clock.advance(minutes=1)
        [escalated] = router.process([failing(clock)]).deliveries
        assert server.violations == [] and server.handler_errors == []

    assert escalated.delivered and escalated.notification.transition.value == "escalated"
    assert all(r.headers["Authorization"] == f"Bearer {OAUTH}" for r in server.requests)
    [record] = server.records
    assert (record["urgency"], record["impact"]) == ("1", "1")
    assert server.requests[-1].json == {"work_notes": notes(record)[0], "urgency": "1", "impact": "1"}
    assert notes(record)[0].startswith("Escalated from ERROR to CRITICAL: 2 failures in a row over 1m. Failing since 2026-11-25 03:00 UTC.")


def test_assignment_group_follows_the_owner_map_with_a_default(tmp_path, snow, clock):
    router, _ = router_for(tmp_path, clock, [receiver(snow, default_assignment_group="Platform",
                                                      assignment_groups={"team:finance": "Data Engineering"})])
    router.process([failing(clock, "ledger", owners=("someone@example.com", "team:finance"))])
    router.process([failing(clock, "orphan", owners=())])
    assert [r["assignment_group"] for r in snow.records] == ["Data Engineering", "Platform"]


# -- idempotency -------------------------------------------------------------------------------------


def test_a_create_answered_after_the_timeout_is_found_by_correlation_id_not_created_twice(tmp_path, clock):
    with FakeServiceNow(password=PASSWORD, create_delay=lambda n: 5.0 if n == 1 else 0.0) as server:
        router, waits = router_for(tmp_path, clock, [receiver(server, timeout="0.5s")])

        [outcome] = router.process([failing(clock)]).deliveries

        assert outcome.delivered and outcome.attempts == 2 and outcome.external_id == "INC0010001"
        assert waits == [1.0]  # the Table API reads its own writes: a normal backoff is enough
        first_lookup, create, second_lookup = server.settled()
        assert create.client_gone and not create.answered
        assert second_lookup.method == "GET"
        assert second_lookup.query_value("sysparm_query") == first_lookup.query_value("sysparm_query")
        clock.advance(minutes=5)
        [recovered] = router.process([passing(clock)]).deliveries
        assert recovered.delivered
        assert server.violations == [] and server.handler_errors == []

    assert len(server.records) == 1 and server.duplicates() == 0 and server.records[0]["state"] == "6"


def test_a_new_incident_after_recovery_gets_a_new_record_although_the_old_is_still_active(tmp_path, snow, clock):
    router, _ = router_for(tmp_path, clock, [receiver(snow)])
    router.process([failing(clock)])
    clock.advance(minutes=10)
    router.process([passing(clock)])
    clock.advance(hours=1)

    [new] = router.process([failing(clock)]).deliveries

    old, fresh = snow.records
    assert old["state"] == "6" and old["active"] == "true"  # resolved, still active: a fingerprint key would find it
    assert new.external_id == fresh["number"] == "INC0010002" and fresh["state"] == "1"
    assert fresh["correlation_id"] != old["correlation_id"]
    assert router.incident(FP).tickets["snow"]["key"] == "INC0010002"


def test_a_flapping_incident_is_one_record_resolved_once(tmp_path, snow, clock):
    router, _ = router_for(tmp_path, clock, [receiver(snow)], policy={"flap_window": "15m"})
    for _ in range(10):
        router.process([failing(clock)])
        clock.advance(minutes=1)
        router.process([passing(clock)])
        clock.advance(minutes=1)
    clock.advance(minutes=16)
    [recovered] = router.tick().deliveries

    assert recovered.delivered
    [record] = snow.records
    assert record["state"] == "6" and notes(record) == []
    assert len(snow.calls("POST")) == 1 and len(snow.calls("PATCH")) == 1
    assert "10 failures (9 flaps)" in record["close_notes"]


def test_a_recovery_of_a_record_someone_closed_is_not_patched(tmp_path, snow, clock):
    router, _ = router_for(tmp_path, clock, [receiver(snow)])
    router.process([failing(clock)])
    snow.close("INC0010001")
    clock.advance(minutes=5)
    with router.store.transaction() as conn:  # a state written before links were kept: only the number
        state = router.store.load(conn, [FP])[FP]
        state.tickets["snow"]["url"] = ""
        router.store.save(conn, [state], clock.now)

    [recovered] = router.process([passing(clock)]).deliveries

    assert recovered.delivered and recovered.external_id == "INC0010001"
    assert snow.calls("PATCH") == [] and snow.record("INC0010001")["state"] == "7"
    assert "active=true" not in snow.requests[-1].query_value("sysparm_query")  # an update looks for any record


# -- failures, classified ----------------------------------------------------------------------------


def test_429_with_retry_after_is_honoured(tmp_path, snow, clock):
    snow.enqueue(Response(429, {"error": {"message": "Rate limit exceeded"}, "status": "failure"}, headers={"Retry-After": "2"}))
    router, waits = router_for(tmp_path, clock, [receiver(snow)])

    [outcome] = router.process([failing(clock)]).deliveries

    assert waits == [2.0] and outcome.delivered and outcome.attempts == 2
    assert [r.response.status for r in snow.settled()] == [429, 200, 201]


def test_401_is_a_clear_refusal_naming_the_receiver_without_the_password(tmp_path, snow, clock, caplog):
    wrong = "sn-pw-WRONG-3e4r5t6y"
    router, waits = router_for(tmp_path, clock, [receiver(snow, name="snow-prod", password=wrong)])

    with caplog.at_level(logging.DEBUG):
        [outcome] = router.process([failing(clock)]).deliveries

    assert outcome.status == "pending" and outcome.attempts == 1 and waits == []
    assert outcome.error == (
        f"ServiceNow receiver 'snow-prod' (http://127.0.0.1:{snow.port}/***): GET {TABLE}: credentials refused "
        '(HTTP 401: {"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"}, '
        '"status": "failure"}); check username and password (and the itil role for the incident table)'
    )
    encoded = base64.b64encode(f"{USER}:{wrong}".encode()).decode()
    for text in (outcome.error, caplog.text, json.dumps(router.store.outbox_rows(), default=str)):
        assert wrong not in text and encoded not in text


def test_an_invalid_close_code_is_refused_with_the_instances_reason(tmp_path, snow, clock):
    router, _ = router_for(tmp_path, clock, [receiver(snow, close_code="Fixed it")])
    router.process([failing(clock)])
    clock.advance(minutes=5)

    [outcome] = router.process([passing(clock)]).deliveries

    assert outcome.status == "pending" and outcome.attempts == 1
    assert "PATCH /api/now/table/incident/" in outcome.error and "HTTP 400" in outcome.error
    assert "Invalid close_code 'Fixed it'" in outcome.error
    assert snow.records[0]["state"] == "1"


def test_the_fake_enforces_close_fields_on_resolve(snow):
    """The contract check has teeth: resolving without close_code / close_notes is refused."""
    import requests

    auth = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(), "Accept": "application/json"}
    created = requests.post(snow.url(TABLE), json={"short_description": "x", "correlation_id": "k"}, headers=auth, timeout=5)
    sys_id = created.json()["result"]["sys_id"]
    refused = requests.patch(snow.url(f"{TABLE}/{sys_id}"), json={"state": "6"}, headers=auth, timeout=5)
    assert refused.status_code == 400
    assert "mandatory: Resolution code, Resolution notes" in refused.json()["error"]["detail"]
    assert snow.records[0]["state"] == "1"


# -- links and config ----------------------------------------------------------------------------------


def test_the_incident_number_appears_on_a_later_teams_card(tmp_path, snow, clock):
    with LocalHTTPServer(default=Response(202)) as teams:
        teams_receiver = {"type": "teams", "name": "teams", "webhook_url": teams.url("/workflows/x?sig=abcdef123456")}
        router, _ = router_for(tmp_path, clock, [receiver(snow), teams_receiver])
        router.process([failing(clock)])
        clock.advance(minutes=5)
        router.process([passing(clock)])
        recovery_card = teams.settled()[-1].json["attachments"][0]["content"]

    record = snow.records[0]
    assert {"type": "Action.OpenUrl", "title": "Ticket INC0010001", "url": link(snow, record)} in recovery_card["actions"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"password": None}, "give username and password (basic auth) or bearer_token (OAuth)"),
        ({"bearer_token": OAUTH}, "give either bearer_token, or username and password, not both"),
        ({"urgency": {"critical": 0}}, "levels are 1 (high), 2 (medium) or 3 (low)"),
        ({"extra_fields": {"state": "2"}}, "are set by the receiver itself"),
        ({"base_url": "acme.service-now.com"}, "must start with https://"),
    ],
)
def test_bad_servicenow_config_is_refused_at_load_time(tmp_path, overrides, message):
    config = {"type": "servicenow", "name": "snow", "base_url": "https://acme.service-now.com",
              "username": USER, "password": PASSWORD, **overrides}
    config = {k: v for k, v in config.items() if v is not None}
    with pytest.raises(ConfigError) as info:
        config_from_dict({"receivers": [config], "state": {"path": str(tmp_path / "s.db")}})
    assert any(message in p for p in info.value.problems), info.value.problems
