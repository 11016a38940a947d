"""The router end to end on a real SQLite store: lifecycle, policy, outbox."""

from __future__ import annotations

import logging
from datetime import timedelta

from dagster_monitoring.alerting import Severity, Status, Transition
from dagster_monitoring.alerting.lifecycle import Observation, Phase

from .helpers.factories import make_event, make_router
from .helpers.recording import RecordingTransport, down, refused


def config(tmp_path, receivers=("a",), **extra):
    data = {
        "receivers": [{"type": "file", "name": n, "path": str(tmp_path / f"{n}.jsonl")} for n in receivers],
        "routes": [{"receivers": list(receivers)}],
        "policy": {"repeat_interval": "4h", "flap_window": "0s"},
        "state": {"path": str(tmp_path / "state.db")},
    }
    for key, value in extra.items():
        data[key] = value
    return data


def router_with(tmp_path, clock, transports, **extra):
    names = tuple(t.name for t in transports)
    return make_router(config(tmp_path, names, **extra), clock, transports={t.name: t for t in transports})


def fail(router, clock, entity="loans_daily", minutes=1, **kw):
    result = router.process([make_event(entity, Status.FAILING, clock.now, **kw)])
    clock.advance(minutes=minutes)
    return result


def succeed(router, clock, entity="loans_daily", minutes=1, **kw):
    result = router.process([make_event(entity, Status.PASSING, clock.now, **kw)])
    clock.advance(minutes=minutes)
    return result


def test_three_failures_then_success_is_one_new_and_one_recovered(tmp_path, clock):
    teams = RecordingTransport("a")
    router = router_with(tmp_path, clock, [teams])
    for _ in range(3):
        fail(router, clock)
    succeed(router, clock)
    assert teams.transitions == ["new", "recovered"]
    recovered = teams.delivered[1]
    assert recovered.incident.failures == 3
    assert recovered.incident.broken_for == timedelta(minutes=3)
    assert router.incident("dagster:run:loans_daily").phase is Phase.OK


def test_next_failure_after_recovery_opens_a_new_incident(tmp_path, clock):
    teams = RecordingTransport("a")
    router = router_with(tmp_path, clock, [teams])
    fail(router, clock)
    succeed(router, clock)
    fail(router, clock)
    assert teams.transitions == ["new", "recovered", "new"]
    assert teams.delivered[0].incident.incident_id != teams.delivered[2].incident.incident_id
    assert teams.delivered[2].incident.failures == 1


def test_reminder_after_repeat_interval_only(tmp_path, clock):
    teams = RecordingTransport("a")
    router = router_with(tmp_path, clock, [teams])
    for _ in range(5):
        fail(router, clock, minutes=60)  # 5 failures an hour apart: reminder at >= 4 h
    assert teams.transitions == ["new", "reminder"]
    assert teams.delivered[1].incident.failures == 5


def test_escalation_after_n_failures_is_announced_once(tmp_path, clock):
    teams = RecordingTransport("a")
    router = router_with(tmp_path, clock, [teams], policy={"flap_window": "0s", "escalation": [{"after_failures": 3, "to": "critical"}]})
    for _ in range(6):
        fail(router, clock)
    assert teams.transitions == ["new", "escalated"]
    assert teams.delivered[1].severity is Severity.CRITICAL
    assert teams.delivered[1].incident.failures == 3


def test_flap_damping_keeps_one_incident_and_announces_recovery_after_the_window(tmp_path, clock):
    teams = RecordingTransport("a")
    router = router_with(tmp_path, clock, [teams], policy={"flap_window": "15m"})
    for _ in range(10):
        fail(router, clock)
        succeed(router, clock)
    assert teams.transitions == ["new"]  # each success waits out the window; each failure re-opens it
    state = router.incident("dagster:run:loans_daily")
    assert state.phase is Phase.RESOLVING and state.flaps == 9
    clock.advance(minutes=10)
    router.tick()
    assert teams.transitions == ["new"]
    clock.advance(minutes=10)
    router.tick()
    assert teams.transitions == ["new", "recovered"]
    assert teams.delivered[1].incident.flaps == 9
    router.tick()
    assert teams.transitions == ["new", "recovered"]  # announced once


def test_silence_records_but_does_not_send_and_expires(tmp_path, clock):
    teams = RecordingTransport("a")
    decisions = []
    silence = {"entity": "loans_*", "expires_at": (clock.now + timedelta(minutes=30)).isoformat(), "comment": "maintenance"}
    router = router_with(tmp_path, clock, [teams], silences=[silence])
    router.on_decision = decisions.extend
    fail(router, clock, minutes=40)
    assert teams.transitions == []
    assert decisions[-1].silenced_by == "maintenance" and decisions[-1].transition is Transition.NEW
    fail(router, clock)  # silence over, still failing: the receiver hears about it now
    assert teams.transitions == ["new"]


def test_route_with_min_failures_tells_a_quiet_receiver_only_after_repeats(tmp_path, clock):
    loud, quiet = RecordingTransport("loud"), RecordingTransport("quiet")
    router = router_with(tmp_path, clock, [loud, quiet], routes=[
        {"receivers": ["loud"], "continue": True},
        {"receivers": ["quiet"], "min_failures": 3},
    ])
    for _ in range(4):
        fail(router, clock)
    succeed(router, clock)
    assert loud.transitions == ["new", "recovered"]
    assert quiet.transitions == ["new", "recovered"]
    assert quiet.delivered[0].incident.failures == 3


def test_recovery_only_to_receivers_that_heard_new(tmp_path, clock):
    loud, quiet = RecordingTransport("loud"), RecordingTransport("quiet")
    router = router_with(tmp_path, clock, [loud, quiet], routes=[
        {"receivers": ["loud"], "continue": True},
        {"receivers": ["quiet"], "min_failures": 3},
    ])
    fail(router, clock)
    succeed(router, clock)
    assert loud.transitions == ["new", "recovered"]
    assert quiet.transitions == []


def test_a_failing_receiver_never_blocks_another_and_nothing_is_lost(tmp_path, clock, caplog):
    broken = RecordingTransport("broken", [down(), down(), down(), down(), down(), down()])
    healthy = RecordingTransport("healthy")
    router = router_with(tmp_path, clock, [broken, healthy])
    fail(router, clock, minutes=0)
    assert healthy.transitions == ["new"]
    assert broken.transitions == [] and len(broken.attempts) == 3  # attempts_per_call
    assert router.store.outbox_counts() == {"delivered": 1, "pending": 1}
    clock.advance(minutes=1)
    router.tick()  # broken still down: three more tries, still kept
    assert router.store.outbox_counts() == {"delivered": 1, "pending": 1}
    clock.advance(minutes=30)
    router.tick()  # back up
    assert broken.transitions == ["new"]
    assert router.store.outbox_counts() == {"delivered": 2}


def test_retry_after_is_honoured_across_calls(tmp_path, clock):
    throttled = RecordingTransport("a", [down(retry_after=120)])
    sleeps = []
    router = router_with(tmp_path, clock, [throttled])
    router.deliverer.sleep = sleeps.append
    fail(router, clock, minutes=0)
    assert len(throttled.attempts) == 1 and sleeps == []  # 120 s is over max_inline_wait: not slept here
    clock.advance(seconds=60)
    router.tick()
    assert len(throttled.attempts) == 1  # not before Retry-After
    clock.advance(seconds=61)
    router.tick()
    assert throttled.transitions == ["new"]


def test_short_retry_after_is_waited_inline(tmp_path, clock):
    throttled = RecordingTransport("a", [down(retry_after=2)])
    sleeps = []
    router = router_with(tmp_path, clock, [throttled])
    router.deliverer.sleep = sleeps.append
    fail(router, clock, minutes=0)
    assert throttled.transitions == ["new"] and sleeps == [2]


def test_order_is_kept_per_receiver_while_it_is_down(tmp_path, clock):
    flaky = RecordingTransport("a", [down()] * 6)
    router = router_with(tmp_path, clock, [flaky])
    fail(router, clock)
    succeed(router, clock)  # the recovery is queued behind the undelivered new
    assert flaky.transitions == []
    assert [n.transition.value for n in flaky.attempts] == ["new"] * 6  # never the recovery first
    clock.advance(minutes=10)
    router.tick()
    assert flaky.transitions == ["new", "recovered"]


def test_dead_letter_after_max_age_with_a_log_line(tmp_path, clock, caplog):
    never = RecordingTransport("a", [down()] * 100)
    router = router_with(tmp_path, clock, [never], delivery={"max_delivery_age": "1h", "attempts_per_call": 1})
    fail(router, clock, minutes=0)
    clock.advance(minutes=61)
    with caplog.at_level(logging.ERROR, logger="dagster_monitoring"):
        outcomes = router.tick().deliveries
    assert [o.status for o in outcomes] == ["dead"]
    assert any("dead-lettered new dagster:run:loans_daily to a" in r.getMessage() for r in caplog.records)
    assert router.store.outbox_counts() == {"dead": 1}


def test_refused_delivery_is_kept_for_a_human_to_fix_not_dropped(tmp_path, clock):
    once_refused = RecordingTransport("a", [refused()])
    router = router_with(tmp_path, clock, [once_refused])
    fail(router, clock, minutes=0)
    assert len(once_refused.attempts) == 1  # a 401 is not retried inside the call
    assert router.store.outbox_counts() == {"pending": 1}
    clock.advance(minutes=16)  # max_backoff later, after the token was fixed
    router.tick()
    assert once_refused.transitions == ["new"]


def test_a_transport_that_raises_is_contained(tmp_path, clock):
    class Exploding(RecordingTransport):
        def send(self, notification):
            raise RuntimeError("bug in transport")

    healthy = RecordingTransport("b")
    router = router_with(tmp_path, clock, [Exploding("a"), healthy])
    result = fail(router, clock, minutes=0)
    assert healthy.transitions == ["new"]
    failed = [d for d in result.deliveries if not d.delivered]
    assert failed and "RuntimeError: bug in transport" in failed[0].error


def test_stale_and_replayed_events_change_nothing(tmp_path, clock):
    teams = RecordingTransport("a")
    router = router_with(tmp_path, clock, [teams])
    first = make_event(at=clock.now)
    router.process([first])
    router.process([first])  # the sensor re-read the same event after a crash
    clock.advance(minutes=5)
    router.process([make_event(status=Status.PASSING, at=clock.now - timedelta(minutes=10))])  # older than what we saw
    state = router.incident(first.fingerprint)
    assert state.consecutive_failures == 1 and state.phase is Phase.FAILING
    assert teams.transitions == ["new"]


def test_unrouted_events_are_recorded_and_default_receivers_catch_them(tmp_path, clock):
    fallback = RecordingTransport("fallback")
    decisions = []
    router = router_with(tmp_path, clock, [fallback], routes=[], default_receivers=["fallback"])
    router.on_decision = decisions.extend
    fail(router, clock)
    assert fallback.transitions == ["new"]
    assert decisions[0].observation is Observation.OPENED and decisions[0].receiver == "fallback"


def test_hooks_failing_do_not_break_alerting(tmp_path, clock):
    teams = RecordingTransport("a")
    router = router_with(tmp_path, clock, [teams])

    def broken_hook(_):
        raise RuntimeError("audit sink down")

    router.on_decision = broken_hook
    router.on_delivery = broken_hook
    fail(router, clock)
    assert teams.transitions == ["new"]


def test_batch_with_mixed_fingerprints_is_ordered_by_time(tmp_path, clock):
    teams = RecordingTransport("a")
    router = router_with(tmp_path, clock, [teams])
    t = clock.now
    batch = [
        make_event("job_b", Status.PASSING, t + timedelta(minutes=2)),
        make_event("job_a", Status.FAILING, t),
        make_event("job_b", Status.FAILING, t + timedelta(minutes=1)),
        make_event("job_a", Status.FAILING, t + timedelta(minutes=1)),
    ]
    router.process(batch)
    assert sorted((n.event.entity, n.transition.value) for n in teams.delivered) == [
        ("job_a", "new"), ("job_b", "new"), ("job_b", "recovered"),
    ]
    assert router.incident("dagster:run:job_a").consecutive_failures == 2


def test_a_ticket_opened_by_one_receiver_is_kept_and_shown_to_later_deliveries(tmp_path, clock):
    from dagster_monitoring.alerting import DeliveryResult

    class Ticketing(RecordingTransport):
        def send(self, notification):
            super().send(notification)
            mine = notification.incident.tickets.get(self.name)
            if mine:  # an update of the ticket opened earlier
                return DeliveryResult.success(external_id=mine["key"], ticket=True)
            return DeliveryResult.success(external_id="DATA-7", external_url="https://jira.example/browse/DATA-7", ticket=True)

    jira, teams = Ticketing("jira"), RecordingTransport("teams")
    router = router_with(tmp_path, clock, [jira, teams], policy={"flap_window": "0s", "repeat_interval": "1h"})
    fail(router, clock, minutes=61)
    state = router.incident("dagster:run:loans_daily")
    assert state.tickets["jira"]["key"] == "DATA-7"
    fail(router, clock)  # reminder: both receivers hear it, with the ticket
    succeed(router, clock)
    assert [n.transition.value for n in teams.delivered] == ["new", "reminder", "recovered"]
    assert teams.delivered[0].ticket is None  # opened in the same call, in parallel
    assert teams.delivered[1].ticket["key"] == "DATA-7" and teams.delivered[2].ticket["url"].endswith("DATA-7")
    assert [n.incident.tickets.get("jira", {}).get("key") for n in jira.delivered] == [None, "DATA-7", "DATA-7"]
    fail(router, clock)  # a new incident starts without the old ticket
    assert jira.delivered[-1].incident.tickets == {}


def test_a_late_recovery_card_shows_its_own_incidents_ticket_not_the_next_ones(tmp_path, clock):
    from dagster_monitoring.alerting import DeliveryResult

    class Ticketing(RecordingTransport):
        def send(self, notification):
            super().send(notification)
            mine = notification.incident.tickets.get(self.name)
            key = mine["key"] if mine else f"DATA-{len({n.incident.incident_id for n in self.delivered})}"
            return DeliveryResult.success(external_id=key, external_url=f"https://jira.example/browse/{key}", ticket=True)

    jira = Ticketing("jira")
    teams = RecordingTransport("teams", [DeliveryResult.success(), down(retry_after=900)])  # recovery card: Teams throttled
    router = router_with(tmp_path, clock, [jira, teams])
    fail(router, clock)
    succeed(router, clock)
    fail(router, clock)  # incident 2 opens DATA-2 while incident 1's recovery card still waits
    clock.advance(minutes=15)
    router.tick()

    assert jira.transitions == ["new", "recovered", "new"]
    assert router.incident("dagster:run:loans_daily").tickets["jira"]["key"] == "DATA-2"
    late = teams.delivered[-1]
    assert late.transition is Transition.RECOVERED and late.incident.incident_id == jira.delivered[0].incident.incident_id
    assert late.ticket["key"] == "DATA-1"


def test_a_later_delivery_never_overtakes_an_earlier_one_that_is_backing_off(tmp_path, clock):
    """The new is throttled for 10 minutes; the recovery, queued a minute later, waits for it."""
    throttled = RecordingTransport("a", [down(retry_after=600)])
    router = router_with(tmp_path, clock, [throttled])
    fail(router, clock, minutes=1)  # attempt 1: 429, retry in 10 min
    succeed(router, clock, minutes=5)  # recovery queued; the new is not due yet
    router.tick()
    assert [n.transition.value for n in throttled.attempts] == ["new"]
    clock.advance(minutes=5)
    router.tick()
    assert throttled.transitions == ["new", "recovered"]
