"""Noise control: one message per run (grouping) and lineage inhibition, on a real SQLite store.

Incidents stay per fingerprint; what is tested here is how many messages reach a receiver, what
each says, and that the decisions and the audit rows still name every incident."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from dagster_monitoring.alerting import Notification, Severity, Status, Transition
from dagster_monitoring.alerting.config import ConfigError
from dagster_monitoring.alerting.grouping import ASSET_TAG, UPSTREAM_TAG, upstream_tag
from dagster_monitoring.alerting.lifecycle import Phase
from dagster_monitoring.alerting.transports.email import EmailConfig, build_email
from dagster_monitoring.alerting.transports.webhook import build_payload
from dagster_monitoring.audit.alert_records import decision_records, delivery_records
from dagster_monitoring.config import config_from_dict

from .helpers.factories import make_event, make_router
from .helpers.recording import RecordingTransport, down


class TicketingTransport(RecordingTransport):
    opens_tickets = True


def router_for(tmp_path, clock, *transports, policy=None):
    data = {
        "receivers": [{"type": "file", "name": t.name, "path": str(tmp_path / f"{t.name}.jsonl")} for t in transports],
        "routes": [{"receivers": [t.name for t in transports]}],
        "policy": {"repeat_interval": "4h", "flap_window": "0s", **(policy or {})},
        "state": {"path": str(tmp_path / "state.db")},
    }
    return make_router(data, clock, transports={t.name: t for t in transports})


def check(asset, name, status=Status.FAILING, at=None, *, run_id="run-1", severity=Severity.ERROR, upstream=(), source="dbt", **kw):
    tags = {ASSET_TAG: asset, **({UPSTREAM_TAG: upstream_tag(upstream)} if upstream else {})}
    return make_event(f"{asset}:{name}", status, at, source=source, kind="asset_check", severity=severity, run_id=run_id, tags=tags, **kw)


def one_bad_run(at, status=Status.FAILING, run_id="run-1"):
    """A bad source file: the dlt check fails, four dbt models downstream fail their tests, the run fails."""
    events = [check("raw/loans", "dlt_row_count", status, at, run_id=run_id, source="dlt")]
    for model in ("stg_loans", "stg_repayments", "fct_loans", "fct_balances"):
        up = ["raw/loans"] + (["stg_loans"] if model.startswith("fct") else [])
        events.append(check(model, f"not_null_{model}_id", status, at, run_id=run_id, upstream=up))
    events.append(make_event("lender_daily", status, at, run_id=run_id))
    return events


# -- grouping ----------------------------------------------------------------------------------------


def test_one_runs_failures_are_one_message_led_by_the_most_severe_and_so_are_their_recoveries(tmp_path, clock):
    teams = RecordingTransport("teams")
    router = router_for(tmp_path, clock, teams, policy={"inhibition": False})
    events = [
        make_event("lender_daily", at=clock.now, run_id="r1"),
        check("stg_loans", "not_null", at=clock.now, run_id="r1", severity=Severity.CRITICAL),
        check("stg_loans", "accepted_values", at=clock.now, run_id="r1", severity=Severity.WARN),
        make_event("other_job", at=clock.now, run_id="r2"),
        make_event("no_run", at=clock.now),
    ]
    result = router.process(events)

    assert len(teams.delivered) == 3 and len(result.notifications) == 3
    grouped = next(n for n in teams.delivered if n.members)
    assert grouped.event.entity == "stg_loans:not_null" and grouped.severity is Severity.CRITICAL  # the lead
    assert [m.event.entity for m in grouped.group] == ["stg_loans:not_null", "lender_daily", "stg_loans:accepted_values"]
    assert grouped.key.startswith("group:")
    assert grouped.title.endswith(" and 2 more") and grouped.thread_subject.endswith(" and 2 more")
    # the lifecycle is untouched: one incident per fingerprint, each remembering that teams heard "new"
    for member in grouped.group:
        state = router.incident(member.incident.fingerprint)
        assert state.phase is Phase.FAILING and state.receivers["teams"].transition is Transition.NEW
    assert {d.fingerprint for d in result.decisions if d.notifies} == {e.fingerprint for e in events}

    clock.advance(minutes=5)
    router.process([e.__class__(**{**e.to_dict(), "status": "passing", "occurred_at": clock.now}) for e in events])
    recoveries = teams.delivered[3:]
    assert len(recoveries) == 3 and all(n.transition is Transition.RECOVERED for n in recoveries)
    assert sorted(len(n.group) for n in recoveries) == [1, 1, 3]


def test_group_by_owner_groups_across_runs_and_empty_group_by_or_grouping_false_sends_each(tmp_path, clock):
    events = [make_event(f"job_{i}", at=clock.now, run_id=f"r{i}", owners=("team:a" if i < 3 else "team:b",)) for i in range(5)]
    for policy, expected in (({"group_by": ["owner"]}, 2), ({"group_by": []}, 5), ({"grouping": False}, 5), ({}, 5)):
        teams = RecordingTransport("teams")
        path = tmp_path / str(len(list(tmp_path.iterdir())))
        path.mkdir()
        router_for(path, clock, teams, policy=policy).process(events)
        assert len(teams.delivered) == expected, policy


def test_ticket_receivers_get_one_ticket_per_incident(tmp_path, clock):
    teams, jira = RecordingTransport("teams"), TicketingTransport("jira")
    router = router_for(tmp_path, clock, teams, jira, policy={"inhibition": False})
    router.process(one_bad_run(clock.now))
    assert len(teams.delivered) == 1 and len(teams.delivered[0].group) == 6
    assert len(jira.delivered) == 6 and not any(n.members for n in jira.delivered)


def test_a_grouped_message_is_one_outbox_row_retried_as_one(tmp_path, clock):
    teams = RecordingTransport("teams", [down(), down(), down()])
    router = router_for(tmp_path, clock, teams, policy={"inhibition": False})
    first = router.process(one_bad_run(clock.now))
    assert [o.status for o in first.deliveries] == ["pending"] and len(teams.attempts) == 3
    clock.advance(minutes=10)
    second = router.tick()
    assert [o.status for o in second.deliveries] == ["delivered"]
    assert len(teams.delivered) == 1 and len(teams.delivered[0].group) == 6
    assert router.tick().deliveries == []  # settled: never sent again


def test_a_grouped_message_survives_the_outbox_as_json_and_old_rows_still_read():
    lead = Notification.from_dict(_sample_dict())
    assert lead.members == () and lead.also_affected == ()  # a row written before grouping existed
    grouped = replace(lead, members=(lead,), also_affected=(lead,))
    back = Notification.from_dict(json.loads(json.dumps(grouped.to_dict())))
    assert back.members == grouped.members and back.also_affected == grouped.also_affected
    assert "members" not in lead.to_dict()  # an ungrouped row is stored exactly as before


def _sample_dict():
    from dagster_monitoring.alerting.sample import sample_notification

    data = sample_notification("teams").to_dict()
    data.pop("members", None)
    return data


# -- inhibition --------------------------------------------------------------------------------------


def test_a_bad_source_file_is_one_message_listing_the_downstream_failures_as_also_affected(tmp_path, clock):
    teams = RecordingTransport("teams")
    router = router_for(tmp_path, clock, teams)
    result = router.process(one_bad_run(clock.now))

    assert len(teams.delivered) == 1
    message = teams.delivered[0]
    assert {m.event.entity for m in message.group} == {"raw/loans:dlt_row_count", "lender_daily"}
    affected = {m.event.entity for m in message.also_affected}  # listed once, for the whole message
    assert affected == {f"{m}:not_null_{m}_id" for m in ("stg_loans", "stg_repayments", "fct_loans", "fct_balances")}
    # every downstream incident is open and recorded, inhibited by the source (chains go to the root)
    inhibited = {d.fingerprint: d.inhibited_by for d in result.decisions if d.inhibited_by}
    assert set(inhibited) == {f"dbt:asset_check:{e}" for e in affected}
    assert set(inhibited.values()) <= {"dlt:asset_check:raw/loans:dlt_row_count", "dbt:asset_check:stg_loans:not_null_stg_loans_id"}
    for fingerprint in inhibited:
        state = router.incident(fingerprint)
        assert state.phase is Phase.FAILING and state.receivers == {}  # nobody heard it
    rows = decision_records(result.decisions)
    assert sum(1 for r in rows if (r.silenced_by or "").startswith("inhibited by ")) == 4

    # the fix: the source passes, one downstream test still fails → now it is announced on its own
    clock.advance(minutes=5)
    fixed = [
        e.__class__(**{**e.to_dict(), "status": "passing", "occurred_at": clock.now, "run_id": "run-2"}) for e in one_bad_run(clock.now)
    ]
    still = check("fct_loans", "not_null_fct_loans_id", at=clock.now, run_id="run-2", upstream=["raw/loans", "stg_loans"])
    router.process([e for e in fixed if e.entity != still.entity] + [still])
    later = teams.delivered[1:]
    assert len(later) == 2
    announced = next(n for n in later if n.transition is Transition.NEW)
    assert announced.event.entity == "fct_loans:not_null_fct_loans_id" and not announced.members
    recovered = next(n for n in later if n.transition is Transition.RECOVERED)
    assert {m.event.entity for m in recovered.group} == {"raw/loans:dlt_row_count", "lender_daily"}  # inhibited ones recover silently


def test_no_inhibition_by_a_less_severe_upstream_another_run_or_when_turned_off(tmp_path, clock):
    def sent(policy, events):
        teams = RecordingTransport("teams")
        path = tmp_path / str(len(list(tmp_path.iterdir())))
        path.mkdir()
        router_for(path, clock, teams, policy={"group_by": [], **policy}).process(events)
        return len(teams.delivered)

    up = check("raw/loans", "drift", at=clock.now, severity=Severity.WARN, source="dlt")
    down_critical = check("stg_loans", "not_null", at=clock.now, severity=Severity.CRITICAL, upstream=["raw/loans"])
    down_warn = check("stg_loans", "accepted", at=clock.now, severity=Severity.WARN, upstream=["raw/loans"])
    other_run = check("stg_loans", "unique", at=clock.now, run_id="run-9", severity=Severity.WARN, upstream=["raw/loans"])
    assert sent({}, [up, down_critical, down_warn, other_run]) == 3  # only the WARN test of the same run is folded in
    assert sent({"inhibition": False}, [up, down_critical, down_warn, other_run]) == 4


# -- config ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group_by", "message"),
    [(["run", "owner"], "unknown group_by field 'run'"), ("run_id", "a single string is not a list"), (["owner", "owner"], "twice")],
)
def test_invalid_group_by_fails_at_load_naming_the_field(group_by, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"policy": {"group_by": group_by}})
    assert "policy.group_by" in str(info.value) and message in str(info.value)


def test_group_by_accepts_tags_and_the_documented_fields():
    policy = config_from_dict({"policy": {"group_by": ["run_id", "source", "kind", "owner", "severity", "tags.team"]}}).policy
    assert policy.grouped_by[-1] == "tags.team"
    assert config_from_dict({"policy": {"grouping": False}}).policy.grouped_by == ()


# -- what receivers get ------------------------------------------------------------------------------


def _grouped(tmp_path, clock):
    teams = RecordingTransport("teams")
    router_for(tmp_path, clock, teams).process(one_bad_run(clock.now))
    return teams.delivered[0]


def test_email_is_one_message_with_a_group_subject_and_every_member(tmp_path, clock):
    message = _grouped(tmp_path, clock)
    config = EmailConfig(name="mail", host="localhost", **{"from": "a@example.com"}, to=("b@example.com",))
    mail = build_email(config, message)
    assert mail["Subject"].endswith(" and 1 more")
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "2 alerts in this message:" in text and "Also affected (4, downstream in the same run):" in text
    for entity in ("lender_daily", "raw/loans:dlt_row_count", "stg_loans:not_null_stg_loans_id", "fct_balances:not_null_fct_balances_id"):
        assert entity in text and entity in html


def test_webhook_payload_lists_members_and_rebuilds_the_message(tmp_path, clock):
    message = _grouped(tmp_path, clock)
    payload = json.loads(json.dumps(build_payload(message), default=str))
    assert payload["group_size"] == 2 and len(payload["members"]) == 1 and len(payload["also_affected"]) == 4
    assert Notification.from_dict(payload).group == message.group


def test_the_audit_trail_records_a_delivery_per_member(tmp_path, clock):
    teams = RecordingTransport("teams")
    router = router_for(tmp_path, clock, teams, policy={"inhibition": False})
    result = router.process(one_bad_run(clock.now))
    assert len(result.deliveries) == 1
    rows = delivery_records(result.deliveries)
    assert len(rows) == 6 and len({r.fingerprint for r in rows}) == 6 and all(r.delivered for r in rows)


# -- group_wait --------------------------------------------------------------------------------------


def test_group_wait_holds_a_runs_first_message_so_members_from_later_ticks_join_it(tmp_path, clock):
    teams, jira = RecordingTransport("teams"), TicketingTransport("jira")
    router = router_for(tmp_path, clock, teams, jira, policy={"group_wait": "60s", "inhibition": False})
    first = router.process([check("stg_loans", "not_null", at=clock.now, run_id="r1", severity=Severity.CRITICAL)])
    assert teams.delivered == [] and first.notifications == [n for n in first.notifications if n.receiver == "jira"]
    assert len(jira.delivered) == 1  # tickets follow their incident at once, never held

    clock.advance(seconds=20)  # the run's failure, a tick later, and another run's
    router.process([make_event("lender_daily", at=clock.now, run_id="r1"), make_event("partner_import", at=clock.now, run_id="r2")])
    assert teams.delivered == []
    clock.advance(seconds=30)
    assert router.tick().deliveries == [] and teams.delivered == []  # r1's wait (60 s) is not over

    clock.advance(seconds=11)  # 61 s after r1's first alert: r1's message, both members; r2 waits until 80 s
    router.tick()
    assert len(teams.delivered) == 1
    message = teams.delivered[0]
    assert [m.event.entity for m in message.group] == ["stg_loans:not_null", "lender_daily"]
    assert all(m.transition is Transition.NEW for m in message.group) and message.severity is Severity.CRITICAL
    clock.advance(seconds=20)
    router.tick()
    assert [n.event.entity for n in teams.delivered[1:]] == ["partner_import"]
    assert router.tick().deliveries == [] and len(teams.delivered) == 2 and len(jira.delivered) == 3


def test_a_held_group_survives_a_restart_and_is_sent_by_the_next_process(tmp_path, clock):
    teams = RecordingTransport("teams")
    router_for(tmp_path, clock, teams, policy={"group_wait": "1m"}).process(one_bad_run(clock.now))
    assert teams.delivered == []
    clock.advance(minutes=2)
    again = RecordingTransport("teams")
    router_for(tmp_path, clock, again, policy={"group_wait": "1m"}).tick()
    assert len(again.delivered) == 1 and len(again.delivered[0].group) == 2 and len(again.delivered[0].also_affected) == 4
    # turned off while a group is held: it is still sent when its wait is over
    router_for(tmp_path, clock, teams, policy={"group_wait": "1m"}).process([make_event("job_x", at=clock.now, run_id="r9")])
    off = RecordingTransport("teams")
    router = router_for(tmp_path, clock, off)
    router.tick()
    assert off.delivered == []
    clock.advance(minutes=1)
    router.tick()
    assert [n.event.entity for n in off.delivered] == ["job_x"]


def test_an_alert_that_fails_and_recovers_inside_group_wait_is_never_sent_but_a_heard_one_recovers(tmp_path, clock):
    teams = RecordingTransport("teams")
    router = router_for(tmp_path, clock, teams, policy={"group_wait": "5m"})
    router.process([make_event("flaky_job", at=clock.now, run_id="r1")])
    clock.advance(minutes=1)
    router.process([make_event("flaky_job", Status.PASSING, clock.now, run_id="r2")])
    clock.advance(minutes=5)
    router.tick()
    assert teams.delivered == []
    assert router.incident("flaky_job") is None or router.incident("flaky_job").phase is not Phase.FAILING

    router.process([make_event("steady_job", at=clock.now, run_id="r3")])
    clock.advance(minutes=6)
    router.tick()
    clock.advance(minutes=1)
    router.process([make_event("steady_job", Status.PASSING, clock.now, run_id="r4")])
    clock.advance(minutes=6)
    router.tick()
    assert [(n.event.entity, n.transition) for n in teams.delivered] == [
        ("steady_job", Transition.NEW),
        ("steady_job", Transition.RECOVERED),
    ]


@pytest.mark.parametrize(("wait", "message"), [("2h", "at most 1h"), (-5, "cannot be negative"), ("soon", "invalid duration")])
def test_invalid_group_wait_fails_at_load_naming_the_field(wait, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict({"policy": {"group_wait": wait}})
    assert "policy.group_wait" in str(info.value) and message in str(info.value)
