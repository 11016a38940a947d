"""The cards' signed Acknowledge / Silence links, end to end over real HTTP: the router writes the
links into its messages (a real file receiver), `dagster-monitoring serve` (uvicorn on loopback)
answers them, and the next router calls obey, on a real SQLite state DB."""

from __future__ import annotations

import base64
import json
import logging
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa

from dagster_monitoring.alerting import AlertRouter, Status, Transition
from dagster_monitoring.alerting.actions import sign_token, verify_token
from dagster_monitoring.alerting.state import used_nonces
from dagster_monitoring.config import config_from_dict
from dagster_monitoring.serve import ServerThread, build_app

from .helpers.factories import SimClock, make_event

KEY = "k3y-for-the-links-9f8e7d6c5b4a39281706"
OTHER_KEY = "another-key-entirely-0a1b2c3d4e5f60718293"
PUBLIC = "https://alerts.example.com"


def monitoring(tmp_path: Path, group_by: tuple[str, ...] = (), **actions: object) -> dict:
    return {
        "receivers": [{"type": "file", "name": "hook", "path": str(tmp_path / "alerts.jsonl")}],
        "routes": [{"receivers": ["hook"]}],
        "policy": {"flap_window": "0s", "repeat_interval": "1h", "group_by": list(group_by)},
        "state": {"path": str(tmp_path / "state.db")},
        "audit": {"enabled": False},
        "actions": {"base_url": PUBLIC, "signing_key": KEY, **actions},
    }


class Setup:
    def __init__(self, tmp_path: Path, group_by: tuple[str, ...] = (), **actions: object) -> None:
        self.tmp_path = tmp_path
        self.config = config_from_dict(monitoring(tmp_path, group_by, **actions))
        self.clock = SimClock()
        self.decisions: list = []
        self.router = AlertRouter(self.config, clock=self.clock, sleep=lambda s: None, on_decision=self.decisions.extend)
        self.server = ServerThread(build_app(self.config, router=self.router))

    def fail(self, *entities: str, **kw: object) -> None:
        self.router.process([make_event(e, Status.FAILING, self.clock.now, **kw) for e in entities])

    def sent(self) -> list[dict]:
        path = self.tmp_path / "alerts.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def transitions(self, entity: str) -> list[str]:
        return [n["transition"] for n in self.sent() if n["event"]["entity"] == entity]

    def link(self, entity: str, title: str) -> str:
        """The path of the newest message's link for ``entity`` (the proxy maps base_url to the server)."""
        message = [n for n in self.sent() if n["event"]["entity"] == entity and "actions" in n][-1]
        url = dict(map(tuple, message["actions"]))[title]
        assert url.startswith(f"{PUBLIC}/actions/")
        return urlsplit(url).path

    def get(self, path: str) -> requests.Response:
        return requests.get(self.server.url(path), timeout=10)

    def post(self, path: str, **form: str) -> requests.Response:
        return requests.post(self.server.url(path), data=form, timeout=10)

    def stored(self) -> list:
        return self.router.store.list_silences(self.clock.now, include_ended=True)

    def nonces(self) -> int:
        with self.router.store.transaction() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(used_nonces)).scalar_one()


@pytest.fixture
def setup(tmp_path):
    s = Setup(tmp_path)
    with s.server:
        yield s


def test_failing_messages_carry_both_links_and_recoveries_none(setup):
    made_at = setup.clock.now
    setup.fail("loans_daily")
    setup.clock.advance(minutes=5)
    setup.router.process([make_event("loans_daily", Status.PASSING, setup.clock.now)])
    new, recovered = setup.sent()
    assert [title for title, _ in new["actions"]] == ["Acknowledge", "Silence 4 h"]
    assert "actions" not in recovered
    token = setup.link("loans_daily", "Acknowledge").removeprefix("/actions/")
    payload = verify_token(KEY, token, setup.clock.now)
    assert payload.action == "ack" and payload.incidents == (("dagster:run:loans_daily", new["incident"]["incident_id"]),)
    assert payload.expires_at == made_at + timedelta(days=7)


def test_acknowledge_stops_that_incidents_reminders_only(setup, caplog):
    setup.fail("loans_daily", "payments_daily")
    ack = setup.link("loans_daily", "Acknowledge")

    page = setup.get(ack)  # what a link previewer does: nothing may happen
    assert page.status_code == 200 and "<form method='post'>" in page.text and "loans_daily" in page.text
    assert setup.stored() == [] and setup.nonces() == 0

    done = setup.post(ack, name="Ana Lima")
    assert done.status_code == 200 and "acknowledged by Ana Lima" in done.text
    (row,) = setup.stored()
    assert (row.kind, row.fingerprint, row.author, row.incident_id) == (
        "ack",
        "dagster:run:loans_daily",
        "Ana Lima",
        setup.router.incident("dagster:run:loans_daily").incident_id,
    )

    for _ in range(3):  # past the reminder interval, three times
        setup.clock.advance(hours=5)
        setup.fail("loans_daily", "payments_daily")
    assert setup.transitions("loans_daily") == ["new"]
    assert setup.transitions("payments_daily") == ["new", "reminder", "reminder", "reminder"]
    acked = [d for d in setup.decisions if d.fingerprint == "dagster:run:loans_daily" and d.transition is Transition.REMINDER]
    assert len(acked) == 3 and all(d.silenced_by == "acknowledged by Ana Lima: from the card link" for d in acked)

    assert setup.post(ack).status_code == 409  # single use
    assert setup.get(ack).status_code == 409
    assert len(setup.stored()) == 1

    setup.clock.advance(minutes=1)
    setup.router.process([make_event("loans_daily", Status.PASSING, setup.clock.now)])
    assert setup.transitions("loans_daily") == ["new", "recovered"]  # the recovery is still told
    setup.clock.advance(minutes=1)
    setup.fail("loans_daily")
    assert setup.transitions("loans_daily") == ["new", "recovered", "new"]  # and a new failure
    assert ack.removeprefix("/actions/") not in caplog.text


def test_silence_silences_exactly_that_incident(setup):
    setup.fail("loans_daily", source="dbt")  # same entity, another source: another incident
    setup.fail("loans_daily")
    setup.fail("loans_daily_v2")
    silence = setup.link("loans_daily", "Silence 4 h")  # the dagster one's
    assert setup.get(silence).status_code == 200 and setup.stored() == []

    done = setup.post(silence)
    assert done.status_code == 200 and "silenced by teams-link until 2026-11-25 07:00 UTC" in done.text
    (row,) = setup.stored()
    assert (row.kind, row.matchers, row.author) == ("silence", (("fingerprint", "dagster:run:loans_daily"),), "teams-link")

    def remind_all() -> set[str]:
        before = len(setup.sent())
        setup.fail("loans_daily", source="dbt")
        setup.fail("loans_daily")
        setup.fail("loans_daily_v2")
        return {n["incident"]["fingerprint"] for n in setup.sent()[before:] if n["transition"] == "reminder"}

    setup.clock.advance(hours=2)  # past the 1 h reminder interval, inside the 4 h silence
    assert remind_all() == {"dbt:run:loans_daily", "dagster:run:loans_daily_v2"}
    silenced = [d for d in setup.decisions if d.silenced_by]
    assert [(d.fingerprint, d.transition) for d in silenced] == [("dagster:run:loans_daily", Transition.REMINDER)]
    assert silenced[0].silenced_by.startswith(f"silence {row.id} by teams-link")
    assert setup.post(silence).status_code == 409
    setup.clock.advance(hours=2, minutes=1)  # the silence is over: reminded again
    assert remind_all() == {"dbt:run:loans_daily", "dagster:run:loans_daily", "dagster:run:loans_daily_v2"}


def test_forged_links_are_refused_and_nothing_is_recorded(setup, caplog):
    setup.fail("loans_daily")
    token = setup.link("loans_daily", "Acknowledge").removeprefix("/actions/")
    body, signature = token.split(".")
    other = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    other["incidents"] = [["dagster:run:payments_daily", "x"]]
    tampered = base64.urlsafe_b64encode(json.dumps(other).encode()).rstrip(b"=").decode() + "." + signature
    wrong_key = sign_token(OTHER_KEY, "silence", [("dagster:run:loans_daily", "x")], setup.clock.now + timedelta(days=1))
    flipped = body + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    for bad in (tampered, wrong_key, flipped, "not-a-token", body, "a.b.c"):
        for method in (setup.get, setup.post):
            answer = method(f"/actions/{bad}")
            assert answer.status_code == 403, (bad, answer.status_code)
            assert "not valid" in answer.text and "Nothing was done" in answer.text
    assert setup.stored() == [] and setup.nonces() == 0
    assert "bad signature" in caplog.text and tampered not in caplog.text and wrong_key not in caplog.text


def test_an_expired_link_is_refused(setup):
    setup.fail("loans_daily")
    ack = setup.link("loans_daily", "Acknowledge")
    setup.clock.advance(days=7, seconds=1)
    assert setup.get(ack).status_code == 410
    answer = setup.post(ack)
    assert answer.status_code == 410 and "expired" in answer.text
    assert setup.stored() == [] and setup.nonces() == 0


def test_two_concurrent_clicks_act_once(setup):
    setup.fail("loans_daily")
    silence = setup.link("loans_daily", "Silence 4 h")
    answers: list[int] = []
    barrier = threading.Barrier(4)

    def click() -> None:
        barrier.wait()
        answers.append(setup.post(silence).status_code)

    threads = [threading.Thread(target=click) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(answers) == [200, 409, 409, 409]
    assert len(setup.stored()) == 1 and setup.nonces() == 1


def test_acknowledging_a_recovered_incident_does_nothing(setup):
    setup.fail("loans_daily")
    ack = setup.link("loans_daily", "Acknowledge")
    setup.clock.advance(minutes=1)
    setup.router.process([make_event("loans_daily", Status.PASSING, setup.clock.now)])
    answer = setup.post(ack)
    assert answer.status_code == 200 and "already recovered, nothing to acknowledge" in answer.text
    assert setup.stored() == []


def test_a_group_message_links_act_on_each_member(tmp_path):
    s = Setup(tmp_path, ("run_id",), silence_duration="30m")
    with s.server:
        s.fail("a", "b", "c", run_id="r1")
        (message,) = s.sent()
        assert [title for title, _ in message["actions"]] == ["Acknowledge all 3", "Silence all 3 for 30 min"]
        assert s.post(urlsplit(dict(map(tuple, message["actions"]))["Silence all 3 for 30 min"]).path).status_code == 200
        assert sorted(r.fingerprint for r in s.stored()) == ["dagster:run:a", "dagster:run:b", "dagster:run:c"]
        assert {r.ends_at for r in s.stored()} == {s.clock.now + timedelta(minutes=30)}


def test_without_actions_the_route_is_not_mounted_and_cards_have_no_links(tmp_path):
    data = monitoring(tmp_path)
    del data["actions"]
    config = config_from_dict(data)
    router = AlertRouter(config, clock=SimClock(), sleep=lambda s: None)
    router.process([make_event("loans_daily")])
    (line,) = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert "actions" not in json.loads(line)
    with ServerThread(build_app(config, router=router)) as server:
        token = sign_token(KEY, "ack", [("dagster:run:loans_daily", "x")], router.clock() + timedelta(days=1))
        assert requests.get(server.url(f"/actions/{token}"), timeout=10).status_code == 404


@pytest.mark.parametrize(
    ("actions", "said"),
    [
        ({"signing_key": "short"}, "actions.signing_key: must be at least 32 characters"),
        ({"base_url": "alerts.example.com"}, "actions.base_url: must start with https://"),
        ({"link_ttl": "0s"}, "link_ttl must be longer than 0s"),
    ],
)
def test_bad_actions_config_fails_at_load_naming_the_field(tmp_path, actions, said):
    from dagster_monitoring.alerting.config import ConfigError

    with pytest.raises(ConfigError, match=said):
        config_from_dict(monitoring(tmp_path, **actions))


def test_a_signing_key_written_into_the_file_is_refused(tmp_path):
    from dagster_monitoring.alerting.config import ConfigError
    from dagster_monitoring.config import load_config

    path = tmp_path / "m.yaml"
    path.write_text(f"actions: {{base_url: {PUBLIC}, signing_key: {KEY}}}\n")
    with pytest.raises(ConfigError, match="actions.signing_key: secrets must not be written into the config file"):
        load_config(path)


def test_the_key_is_never_logged_or_in_a_message(setup, caplog):
    caplog.set_level(logging.DEBUG)
    setup.fail("loans_daily")
    assert KEY not in (setup.tmp_path / "alerts.jsonl").read_text()
    assert setup.post("/actions/forged.token").status_code == 403
    assert KEY not in caplog.text


def test_the_cli_serves_the_links_to_another_process_router(tmp_path, monkeypatch):
    """`dagster-monitoring serve` with only actions: (no sources), and the router of another
    process (the daemon's sensor) on the same state DB obeys the acknowledgement."""
    from dagster_monitoring.alerting import router as router_module

    from .test_serve import ServeProcess

    data = monitoring(tmp_path)
    data["actions"]["signing_key"] = {"env": "DM_LINK_KEY"}
    path = tmp_path / "monitoring.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    monkeypatch.setenv("DM_LINK_KEY", KEY)
    clock = SimClock(datetime.now(timezone.utc))  # the server checks expiry against the real clock
    from dagster_monitoring.config import load_config

    router = AlertRouter(load_config(path), clock=clock, sleep=lambda s: None)
    router.process([make_event("loans_daily", Status.FAILING, clock.now)])
    (message,) = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    ack = urlsplit(dict(map(tuple, message["actions"]))["Acknowledge"]).path

    with ServeProcess(path, {"DM_LINK_KEY": KEY}) as server:
        assert requests.get(server.url + ack, timeout=10).status_code == 200
        assert requests.post(server.url + ack.replace(".", ".x", 1), timeout=10).status_code == 403
        assert requests.post(server.url + ack, data={"name": "Ana"}, timeout=10).status_code == 200
    err = server.stderr
    assert "GET/POST /actions/{token}" in err and ack.rsplit("/", 1)[1] not in err and KEY not in err

    monkeypatch.setattr(router_module, "SILENCES_MAX_AGE", 0.0)  # the sensor's next tick reads them again
    clock.advance(hours=5)
    router.process([make_event("loans_daily", Status.FAILING, clock.now)])
    assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 1  # no reminder: acknowledged
