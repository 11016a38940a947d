"""Batching is only about speed: any split of the same event stream into router calls gives the
same decisions and the same messages, and what a call remembers between events (route matches,
decoded states) never leaks into the answer."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dagster_monitoring.alerting import AlertEvent, IncidentState, Observation, Phase, Severity, Status, Transition
from dagster_monitoring.alerting.lifecycle import ReceiverMark, observe

from .helpers.factories import T0, SimClock, make_event, make_router
from .helpers.recording import RecordingTransport

RECEIVERS = ("ops", "tickets", "managers")


def config(tmp_path: Path) -> dict[str, Any]:
    return {
        "receivers": [{"type": "file", "name": n, "path": str(tmp_path / f"{n}.jsonl")} for n in RECEIVERS],
        "routes": [
            {"receivers": ["ops"], "continue": True},
            {"receivers": ["tickets"], "min_failures": 3, "continue": True},
            {"receivers": ["managers"], "entity": "loans_*", "min_severity": "critical"},
        ],
        "policy": {
            "repeat_interval": "1h",
            "flap_window": "10m",
            "escalation": [{"after_failures": 4, "to": "critical"}],
        },
        "silences": [{"entity": "noisy_*", "expires_at": "2099-01-01T00:00:00Z", "comment": "known, being fixed"}],
        "state": {"path": str(tmp_path / "state.db")},
    }


def stream() -> list[AlertEvent]:
    """Three hours of five jobs, interleaved: steady failures (reminders, escalation), a flapping
    job, a silenced one, one that recovers and fails again, and one that never fails."""
    events = []
    for minute in range(0, 180, 6):
        at = T0 + timedelta(minutes=minute, seconds=1)
        events.append(make_event("loans_daily", Status.FAILING, at))
        flapping = Status.PASSING if (minute // 6) % 3 == 1 else Status.FAILING
        events.append(make_event("loans_hourly", flapping, at + timedelta(seconds=1), severity="warn"))
        events.append(make_event("noisy_export", Status.FAILING, at + timedelta(seconds=2), owners=("team:export",)))
        reopened = Status.PASSING if 60 <= minute < 90 else Status.FAILING
        events.append(make_event("payments", reopened, at + timedelta(seconds=3), source="dbt", kind="asset_check"))
        events.append(make_event("healthy_job", Status.PASSING, at + timedelta(seconds=4)))
    return events


def run_in_calls(tmp_path: Path, events: list[AlertEvent], batch: int) -> tuple[list[tuple[Any, ...]], list[str]]:
    """Decisions (everything but the decision time) and delivered keys, feeding ``batch`` events per call.
    The clock stays at T0, so only event times drive the lifecycle and every call sees the same silences."""
    recorders = [RecordingTransport(name) for name in RECEIVERS]
    router = make_router(config(tmp_path), SimClock(T0), transports={t.name: t for t in recorders})
    decisions = []
    for i in range(0, len(events), batch):
        for d in router.process(events[i : i + batch]).decisions:
            decisions.append((d.fingerprint, d.incident_id, d.observation, d.transition, d.receiver, d.severity, d.silenced_by, d.at))
    router.store.dispose()
    return decisions, sorted(n.key for t in recorders for n in t.delivered)


@pytest.mark.parametrize("batch", [7, 100, 10_000])
def test_any_batch_size_decides_and_sends_exactly_what_one_event_per_call_does(tmp_path: Path, batch: int) -> None:
    events = stream()
    one_by_one, sent_one_by_one = run_in_calls(tmp_path / "single", events, 1)
    batched, sent_batched = run_in_calls(tmp_path / "batched", events, batch)

    assert batched == one_by_one
    assert sent_batched == sent_one_by_one

    # and the stream does exercise what batching could get wrong
    seen = {(fp.split(":")[-1], tr, rcv) for fp, _, _, tr, rcv, _, _, _ in one_by_one}
    assert ("loans_daily", Transition.REMINDER, "ops") in seen
    assert ("loans_daily", Transition.ESCALATED, "ops") in seen and ("loans_daily", Transition.NEW, "managers") in seen
    assert ("payments", Transition.RECOVERED, "tickets") in seen
    assert not any(d[4] == "managers" for d in one_by_one if d[0].endswith("payments"))  # the entity glob
    flapping = {iid for fp, iid, obs, *_ in one_by_one if fp.endswith("loans_hourly") and iid}
    assert len(flapping) == 1  # flap damped: one incident for the whole run
    assert any(obs is Observation.REFAILED for fp, _, obs, *_ in one_by_one if fp.endswith("loans_hourly"))
    silenced = [d for d in one_by_one if d[0].endswith("noisy_export") and d[3] is not None]
    assert silenced and all(d[6] == "known, being fixed" for d in silenced)
    assert not any("noisy_export" in key for key in sent_one_by_one)
    assert len({iid for fp, iid, *_ in one_by_one if fp.endswith("payments") and iid}) == 2  # recovered, then reopened


def test_one_call_with_many_events_of_one_fingerprint_keeps_every_step(tmp_path: Path) -> None:
    """Ten failures and a success of one job in a single call: new, the quiet receiver on the
    third failure, escalation on the fourth, one recovery each, all from one load and one save."""
    recorders = [RecordingTransport(name) for name in RECEIVERS]
    router = make_router(config(tmp_path), SimClock(T0), transports={t.name: t for t in recorders})
    events = [make_event("loans_daily", Status.FAILING, T0 + timedelta(minutes=m)) for m in range(10)]
    events.append(make_event("loans_daily", Status.PASSING, T0 + timedelta(minutes=10)))
    events.append(make_event("loans_daily", Status.PASSING, T0 + timedelta(minutes=25)))  # the flap window has passed

    router.process(events[::-1])  # any order: sorted by time within the call

    by_receiver = {t.name: t.transitions for t in recorders}
    assert by_receiver == {
        "ops": ["new", "escalated", "recovered"],
        "tickets": ["new", "escalated", "recovered"],
        "managers": ["new", "recovered"],
    }
    state = router.incident("dagster:run:loans_daily")
    assert state is not None and state.phase is Phase.OK and state.consecutive_failures == 10
    assert state.last_event == events[9]


# -- the state one event works on ----------------------------------------------------------------


def every_field_set() -> IncidentState:
    event = make_event("loans_daily", Status.FAILING, T0)
    return IncidentState(
        "dagster:run:loans_daily", Phase.RESOLVING, "abc-1", T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2),
        T0 + timedelta(minutes=2), T0 + timedelta(minutes=2), consecutive_failures=4, flaps=1, severity=Severity.CRITICAL,
        last_event=event, receivers={"ops": ReceiverMark(T0, Severity.ERROR)}, tickets={"jira": {"key": "OPS-1", "url": ""}},
        fixed_by={"run": "https://dagster.example.com/runs/r2", "run_id": "r2"},
    )


def test_a_copy_of_a_state_is_equal_and_independent() -> None:
    original = every_field_set()
    assert all(getattr(original, f.name) != f.default for f in fields(IncidentState) if f.name not in ("receivers", "tickets"))

    copied = original.copy()
    assert copied == original and copied is not original
    copied.receivers["tickets"] = ReceiverMark(T0, Severity.WARN)
    copied.tickets["jira"]["key"] = "OPS-2"
    assert set(original.receivers) == {"ops"} and original.tickets == {"jira": {"key": "OPS-1", "url": ""}}


@pytest.mark.parametrize("status", [Status.FAILING, Status.PASSING])
def test_observe_never_changes_the_state_it_is_given(status: Status) -> None:
    before = every_field_set()
    kept = before.copy()
    after, _ = observe(before, make_event("loans_daily", status, T0 + timedelta(minutes=30)), timedelta(minutes=10))
    assert before == kept and after is not before
