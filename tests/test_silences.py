"""Silences and acknowledgements in the state DB: the store (SQLite and PostgreSQL), the router
applying them (one query per call), and `dagster-monitoring silence add / list / expire`."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from dagster_monitoring.alerting import SqlStateStore, Status, Transition
from dagster_monitoring.alerting.silences import SilenceError, new_ack, new_silence, parse_matcher
from dagster_monitoring.audit.alert_records import decision_records
from dagster_monitoring.cli import main

from .helpers.factories import make_event, make_router
from .helpers.postgres import postgres_cluster, postgres_url  # noqa: F401  (fixtures)
from .helpers.recording import RecordingTransport


def config(tmp_path, **extra):
    data = {
        "receivers": [{"type": "file", "name": "a", "path": str(tmp_path / "a.jsonl")}],
        "routes": [{"receivers": ["a"]}],
        "policy": {"repeat_interval": "4h", "flap_window": "0s", "group_by": []},
        "state": {"path": str(tmp_path / "state.db")},
    }
    data.update(extra)
    return data


def routed(tmp_path, clock, **extra):
    teams = RecordingTransport("a")
    decisions: list = []
    router = make_router(config(tmp_path, **extra), clock, transports={"a": teams}, on_decision=decisions.extend)
    return router, teams, decisions


def sent(teams, entity):
    return [n.transition.value for n in teams.delivered if n.event.entity == entity]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("postgres_url")


def test_store_keeps_silences_and_acks_lists_them_and_expires_them(state_url, clock):
    store = SqlStateStore(state_url)
    now = clock.now
    live = new_silence(
        "s1", [("entity", "loans_daily"), ("tags.team", "risk")], author="ana", comment="deploy", now=now, ends_at=now + timedelta(hours=2)
    )
    ended = new_silence(
        "s2",
        [("kind", "run")],
        author="ana",
        comment="old",
        now=now - timedelta(hours=3),
        ends_at=now - timedelta(hours=1),
        starts_at=now - timedelta(hours=3),
    )
    store.add_silence(live)
    store.add_silence(ended)
    with store.transaction() as conn:
        store.acknowledge(new_ack("a1", "dagster:run:x", "inc-1", author="bo", comment="", now=now - timedelta(seconds=1)), conn)
        store.acknowledge(new_ack("a2", "dagster:run:x", "inc-1", author="cy", comment="", now=now), conn)
        rows = store.live_silences(conn, now)
    assert sorted(r.id for r in rows) == ["a2", "s1"]  # the ended one and the replaced ack are not read
    (s1,) = [r for r in rows if r.id == "s1"]
    assert s1.matchers == (("entity", "loans_daily"), ("tags.team", "risk")) and s1.author == "ana" and s1.ends_at == live.ends_at
    assert sorted(r.id for r in store.list_silences(now)) == ["a2", "s1"]
    assert {r.id: r.state_at(now) for r in store.list_silences(now, include_ended=True)} == {
        "s1": "active",
        "s2": "ended",
        "a1": "expired",
        "a2": "active",
    }
    assert store.expire_silences(["s1", "nope"], now) == ["s1"]
    assert store.expire_silences(["s1"], now) == []  # already expired
    assert [r.id for r in store.list_silences(now)] == ["a2"]
    store.dispose()


def test_a_nonce_is_used_once_even_by_two_stores(state_url, clock):
    first, second = SqlStateStore(state_url), SqlStateStore(state_url)
    exp = clock.now + timedelta(days=1)
    with first.transaction() as conn:
        assert first.use_nonce(conn, "n1", "ack", clock.now, exp)
    with second.transaction() as conn:
        assert not second.use_nonce(conn, "n1", "ack", clock.now, exp)
        assert second.use_nonce(conn, "n2", "ack", clock.now, exp)
    first.dispose()
    second.dispose()


def test_the_tables_are_added_to_a_state_db_made_before_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # a DB of an earlier version: only the incidents table
        conn.exec_driver_sql(
            "CREATE TABLE dm_alert_incidents (fingerprint VARCHAR(255) PRIMARY KEY, phase VARCHAR(16) NOT NULL, updated_at FLOAT NOT NULL, state TEXT NOT NULL)"
        )
    engine.dispose()
    store = SqlStateStore(url)
    assert {"dm_alert_silences", "dm_action_nonces"} <= set(sa.inspect(store.engine).get_table_names())
    store.dispose()


def test_matchers_are_checked_naming_the_bad_one():
    assert parse_matcher("tags.team=risk") == ("tags.team", "risk")
    assert parse_matcher("owner = team:data-eng") == ("owner", "team:data-eng")
    for bad, said in (
        ("entity", "expected key=value"),
        ("colour=red", "unknown key 'colour'"),
        ("tags.=x", "unknown key"),
        ("entity=", "expected key=value"),
    ):
        with pytest.raises(SilenceError, match=said) as err:
            parse_matcher(bad)
        assert repr(bad) in str(err.value)


def test_a_stored_silence_mutes_exactly_what_it_matches_and_records_it(tmp_path, clock):
    router, teams, decisions = routed(tmp_path, clock)
    router.store.add_silence(
        new_silence(
            "s1",
            [("entity", "loans_daily"), ("source", "dagster")],
            author="ana",
            comment="deploy",
            now=clock.now,
            ends_at=clock.now + timedelta(hours=1),
        )
    )
    router.process(
        [
            make_event("loans_daily", at=clock.now),
            make_event("loans_daily_v2", at=clock.now),
            make_event("loans_daily", at=clock.now, source="dbt"),
        ]
    )
    assert sent(teams, "loans_daily") == ["new"]  # the dbt one: its source differs
    assert sent(teams, "loans_daily_v2") == ["new"]  # a similar entity is not silenced
    silenced = [d for d in decisions if d.silenced_by]
    assert [(d.fingerprint, d.transition, d.silenced_by) for d in silenced] == [
        ("dagster:run:loans_daily", Transition.NEW, "silence s1 by ana: deploy")
    ]
    assert router.incident("dagster:run:loans_daily").is_open  # the state moved all the same
    clock.advance(hours=2)  # the silence ended while it still fails: announced as new now
    router.process([make_event("loans_daily", at=clock.now)])
    assert sent(teams, "loans_daily") == ["new", "new"]
    assert [n.event.source for n in teams.delivered if n.event.entity == "loans_daily"] == ["dbt", "dagster"]


def test_a_failure_silenced_throughout_recovers_silently(tmp_path, clock):
    router, teams, decisions = routed(tmp_path, clock)
    router.store.add_silence(
        new_silence("s1", [("kind", "run")], author="ana", comment="", now=clock.now, ends_at=clock.now + timedelta(hours=1))
    )
    router.process([make_event(at=clock.now)])
    clock.advance(minutes=10)
    router.process([make_event(status=Status.PASSING, at=clock.now)])
    assert teams.delivered == []  # nobody heard it fail, so nobody hears it recover
    assert [d.transition for d in decisions] == [Transition.NEW, Transition.RECOVERED]


def test_an_expired_silence_stops_muting(tmp_path, clock):
    router, teams, _ = routed(tmp_path, clock)
    router.store.add_silence(
        new_silence("s1", [("entity", "loans_daily")], author="ana", comment="", now=clock.now, ends_at=clock.now + timedelta(days=1))
    )
    router.process([make_event(at=clock.now)])
    router.store.expire_silences(["s1"], clock.now)
    clock.advance(minutes=1)
    router.process([make_event(at=clock.now)])
    assert sent(teams, "loans_daily") == ["new"]


def test_an_ack_stops_reminders_of_its_incident_until_it_recovers(tmp_path, clock):
    router, teams, decisions = routed(tmp_path, clock)
    router.process([make_event("a", at=clock.now), make_event("b", at=clock.now)])
    incident = router.incident("dagster:run:a").incident_id
    with router.store.transaction() as conn:
        router.store.acknowledge(new_ack("k1", "dagster:run:a", incident, author="ana", comment="on it", now=clock.now), conn)
    for _ in range(3):  # past the 4 h reminder interval, three times
        clock.advance(hours=5)
        router.process([make_event("a", at=clock.now), make_event("b", at=clock.now)])
    assert sent(teams, "a") == ["new"]
    assert sent(teams, "b") == ["new", "reminder", "reminder", "reminder"]
    acked = [d for d in decisions if d.fingerprint == "dagster:run:a" and d.silenced_by]
    assert [d.transition for d in acked] == [Transition.REMINDER] * 3 and acked[0].silenced_by == "acknowledged by ana: on it"
    rows = [r for r in decision_records(decisions) if r.silenced_by]  # the audit trail's alert_notifications rows
    assert [(r.fingerprint, r.transition, r.silenced_by) for r in rows] == [("dagster:run:a", "reminder", "acknowledged by ana: on it")] * 3
    clock.advance(minutes=5)
    router.process([make_event("a", Status.PASSING, at=clock.now)])
    assert sent(teams, "a") == ["new", "recovered"]  # the recovery is still announced
    assert [r.id for r in router.store.list_silences(clock.now)] == []  # the ack ended with its incident
    clock.advance(minutes=5)
    router.process([make_event("a", at=clock.now)])
    assert sent(teams, "a") == ["new", "recovered", "new"]  # a new failure notifies again
    clock.advance(hours=5)
    router.process([make_event("a", at=clock.now)])
    assert sent(teams, "a") == ["new", "recovered", "new", "reminder"]


def test_an_ack_does_not_hold_back_an_escalation(tmp_path, clock):
    router, teams, _ = routed(
        tmp_path, clock, policy={"repeat_interval": "4h", "flap_window": "0s", "escalation": [{"after_failures": 3, "to": "critical"}]}
    )
    router.process([make_event(at=clock.now)])
    incident = router.incident("dagster:run:loans_daily").incident_id
    with router.store.transaction() as conn:
        router.store.acknowledge(new_ack("k1", "dagster:run:loans_daily", incident, author="ana", comment="", now=clock.now), conn)
    for _ in range(2):
        clock.advance(minutes=1)
        router.process([make_event(at=clock.now)])
    assert teams.transitions == ["new", "escalated"]


def test_a_router_call_reads_silences_once_whatever_its_size(tmp_path, clock):
    router, _, _ = routed(tmp_path, clock)
    router.store.add_silence(
        new_silence("s1", [("entity", "e3")], author="ana", comment="", now=clock.now, ends_at=clock.now + timedelta(hours=1))
    )
    statements: list[str] = []
    sa.event.listen(router.store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    router.process([make_event(f"e{i}", at=clock.now) for i in range(50)], deliver=False)
    assert sum("dm_alert_silences" in s for s in statements) == 1


# -- the CLI --------------------------------------------------------------------------------------


def cli(*args):
    return CliRunner().invoke(main, ["silence", *args], catch_exceptions=False)


def write_config(tmp_path):
    path = tmp_path / "monitoring.yaml"
    path.write_text(f"receivers: [{{type: file, name: a, path: {tmp_path / 'a.jsonl'}}}]\nstate: {{path: {tmp_path / 'state.db'}}}\n")
    return str(path)


def test_cli_add_list_expire_and_the_router_obeys(tmp_path, clock):
    cfg = write_config(tmp_path)
    added = cli(
        "add",
        "--match",
        "entity=loans_daily",
        "--match",
        "source=dagster",
        "--duration",
        "4h",
        "--author",
        "ana",
        "--comment",
        "deploy",
        "--config",
        cfg,
    )
    assert added.exit_code == 0, added.output
    silence_id = added.output.split()[1]
    listed = cli("list", "--config", cfg)
    assert silence_id in listed.output and "entity=loans_daily, source=dagster" in listed.output and "active" in listed.output

    store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    (row,) = store.list_silences(datetime.now(timezone.utc))
    assert row.id == silence_id and row.comment == "deploy"
    store.dispose()

    expired = cli("expire", silence_id, "--config", cfg)
    assert expired.exit_code == 0 and f"expired {silence_id}" in expired.output
    assert silence_id not in cli("list", "--config", cfg).output
    assert "expired" in cli("list", "--all", "--config", cfg).output
    again = cli("expire", silence_id, "--config", cfg)
    assert again.exit_code == 1 and repr(silence_id) in again.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--match", "colour=red", "--duration", "4h"], "--match 'colour=red': unknown key 'colour'"),
        (["--match", "entity=x", "--duration", "soon"], "--duration"),
        (["--match", "entity=x", "--until", "tomorrow"], "--until"),
        (["--match", "entity=x", "--until", "2026-12-01T18:00:00"], "no timezone"),
        (["--match", "entity=x", "--until", "2020-01-01T00:00:00Z"], "not in the future"),
        (["--match", "entity=x"], "exactly one of --duration"),
        (["--match", "entity=x", "--duration", "4h", "--until", "2099-01-01T00:00:00Z"], "exactly one of --duration"),
    ],
)
def test_cli_errors_name_the_bad_argument(tmp_path, args, said):
    result = CliRunner().invoke(main, ["silence", "add", *args, "--author", "ana", "--comment", "x", "--config", write_config(tmp_path)])
    assert result.exit_code == 2 and said in result.output
    store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    assert store.list_silences(make_event().occurred_at, include_ended=True) == []  # nothing made
    store.dispose()


def test_cli_console_script_adds_a_silence(tmp_path):
    exe = str(Path(sys.executable).with_name("dagster-monitoring"))
    cfg = write_config(tmp_path)
    proc = subprocess.run(
        [
            exe,
            "silence",
            "add",
            "--match",
            "kind=freshness",
            "--until",
            "2099-01-01T00:00:00Z",
            "--author",
            "ana",
            "--comment",
            "window",
            "--config",
            cfg,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "kind=freshness" in subprocess.run([exe, "silence", "list", "--config", cfg], capture_output=True, text=True, timeout=120).stdout


def test_consecutive_calls_share_one_read_and_own_writes_apply_at_once(tmp_path, clock):
    router, teams, _ = routed(tmp_path, clock)
    statements: list[str] = []
    sa.event.listen(router.store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    for i in range(3):
        router.process([make_event(f"e{i}", at=clock.now)], deliver=False)
    assert sum("FROM dm_alert_silences" in s for s in statements) == 1  # read again after SILENCES_MAX_AGE
    router.store.add_silence(
        new_silence("s1", [("entity", "e9")], author="ana", comment="", now=clock.now, ends_at=clock.now + timedelta(hours=1))
    )
    router.process([make_event("e9", at=clock.now)])
    assert sent(teams, "e9") == []  # made through the router's store: no waiting for the next read


def test_a_silence_made_by_another_process_applies_on_the_next_read(tmp_path, clock, monkeypatch):
    from dagster_monitoring.alerting import router as router_module

    router, teams, _ = routed(tmp_path, clock)
    router.process([make_event("warm", at=clock.now)])  # the router has read the (empty) table
    other = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")  # the CLI
    other.add_silence(
        new_silence("s1", [("entity", "e1")], author="ana", comment="", now=clock.now, ends_at=clock.now + timedelta(hours=1))
    )
    other.dispose()
    monkeypatch.setattr(router_module, "SILENCES_MAX_AGE", 0.0)  # as if a second had passed
    router.process([make_event("e1", at=clock.now)])
    assert sent(teams, "e1") == []


def test_a_group_held_for_group_wait_gets_links_for_every_member_when_sent(tmp_path, clock):
    from dagster_monitoring.alerting.actions import verify_token

    key = "k3y-for-the-links-9f8e7d6c5b4a39281706"
    policy = {"repeat_interval": "4h", "flap_window": "0s", "group_by": ["run_id"], "group_wait": "60s"}
    router, teams, _ = routed(tmp_path, clock, policy=policy, actions={"base_url": "https://alerts.example.com", "signing_key": key})
    router.process([make_event("a", at=clock.now, run_id="r1")])
    clock.advance(seconds=20)
    router.process([make_event("b", at=clock.now, run_id="r1")])
    assert teams.delivered == []  # held
    clock.advance(seconds=41)
    router.tick()
    (message,) = teams.delivered
    assert [title for title, _ in message.actions] == ["Acknowledge all 2", "Silence all 2 for 4 h"]
    token = verify_token(key, message.actions[0][1].rsplit("/", 1)[1], clock.now)
    assert sorted(fp for fp, _ in token.incidents) == ["dagster:run:a", "dagster:run:b"]
    assert token.expires_at == (clock.now + timedelta(days=7)).replace(microsecond=0)  # from when it was sent


def test_send_test_shows_the_links_when_actions_are_configured(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("DM_TEST_HOOK", "http://127.0.0.1:9/workflows/x?sig=cli-secret-123")
    monkeypatch.setenv("DM_LINK_KEY", "k3y-for-the-links-9f8e7d6c5b4a39281706")
    path = tmp_path / "m.yaml"
    path.write_text(
        "receivers: [{name: teams, type: teams, webhook_url: {env: DM_TEST_HOOK}}]\n"
        "actions: {base_url: 'https://alerts.example.com', signing_key: {env: DM_LINK_KEY}}\n"
    )
    result = CliRunner().invoke(main, ["send-test", "--config", str(path), "--receiver", "teams", "--dry-run"])
    assert result.exit_code == 0, result.output
    buttons = json.loads(result.output)["attachments"][0]["content"]["actions"]
    assert [b["title"] for b in buttons][-2:] == ["Acknowledge", "Silence 4 h"]
    assert all(b["url"].startswith("https://alerts.example.com/actions/") for b in buttons[-2:])
    assert "k3y-for-the-links" not in result.output
    recovered = CliRunner().invoke(
        main, ["send-test", "--config", str(path), "--receiver", "teams", "--dry-run", "--transition", "recovered"]
    )
    assert "/actions/" not in recovered.output


def test_a_maintenance_window_silences_only_between_its_start_and_its_end(tmp_path, clock):
    router, teams, _ = routed(tmp_path, clock)
    start = clock.now + timedelta(hours=1)
    router.store.add_silence(
        new_silence("mw", [("source", "dagster")], author="ana", comment="warehouse upgrade", now=clock.now, ends_at=start + timedelta(hours=2), starts_at=start)
    )
    router.process([make_event("before_it", at=clock.now)])
    clock.advance(hours=1, seconds=1)
    router.process([make_event("inside_it", at=clock.now)])
    clock.advance(hours=2)
    router.process([make_event("after_it", at=clock.now)])
    assert [n.event.entity for n in teams.delivered] == ["before_it", "after_it"]


def test_cli_adds_a_maintenance_window_that_starts_later(tmp_path):
    cfg = write_config(tmp_path)
    starts = (datetime.now(timezone.utc) + timedelta(days=1)).replace(microsecond=0)
    added = cli("add", "--match", "source=dlt", "--starts", starts.isoformat(), "--duration", "2h", "--author", "ana", "--comment", "upgrade", "--config", cfg)
    assert added.exit_code == 0 and f"from {starts:%Y-%m-%d %H:%M:%S} UTC until {starts + timedelta(hours=2):%Y-%m-%d %H:%M:%S} UTC" in added.output
    store = SqlStateStore(f"sqlite:///{tmp_path / 'state.db'}")
    (row,) = store.list_silences(datetime.now(timezone.utc))
    store.dispose()
    assert (row.starts_at, row.ends_at) == (starts, starts + timedelta(hours=2))
    assert "pending" in cli("list", "--config", cfg).output
    bad = CliRunner().invoke(main, ["silence", "add", "--match", "source=dlt", "--starts", "tomorrow", "--duration", "1h", "--author", "a", "--comment", "x", "--config", cfg])
    assert bad.exit_code == 2 and "--starts" in bad.output
