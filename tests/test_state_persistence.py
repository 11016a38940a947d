"""Alert memory and the outbox survive a restart, on SQLite (a file) and on a real PostgreSQL.

Each scenario runs events through one ``AlertRouter``, disposes it, and builds a new router on
the same state (``state: {path: ...}`` for SQLite, ``state: {url: ...}`` for Postgres), as a
restarted daemon would. Two routers delivering from the same outbox at the same time must not
send a row twice (``BEGIN IMMEDIATE`` on SQLite, ``FOR UPDATE SKIP LOCKED`` on Postgres).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa

from dagster_monitoring.alerting import AlertRouter, IncidentState, Observation, Phase, Severity, Status, Transition
from dagster_monitoring.alerting.lifecycle import ReceiverMark
from dagster_monitoring.alerting.notification import Notification
from dagster_monitoring.alerting.state import decode_state, encode_state
from dagster_monitoring.alerting.transports.base import DeliveryResult
from dagster_monitoring.config import config_from_dict

from .helpers.factories import T0, SimClock, make_event, make_router
from .helpers.postgres import postgres_cluster, postgres_url  # noqa: F401  (fixtures)

ENTITY = "loans_daily"


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The ``state:`` section of the config: a SQLite file, or a fresh Postgres database."""
    if request.param == "sqlite":
        return {"path": str(tmp_path / "state" / "alerts.db")}
    return {"url": request.getfixturevalue("postgres_url")}


RouterFactory = Callable[..., AlertRouter]


@pytest.fixture
def new_router(clock: SimClock) -> Iterator[RouterFactory]:
    """Build a router the way a (re)started process does; every one is disposed at the end."""
    made: list[AlertRouter] = []

    def build(config: dict[str, Any], **kwargs: Any) -> AlertRouter:
        router = make_router(config_from_dict(config), clock, **kwargs)
        made.append(router)
        return router

    yield build
    for router in made:
        router.store.dispose()


def at(minutes: float) -> Any:
    return T0 + timedelta(minutes=minutes)


def fail(minutes: float, entity: str = ENTITY) -> Any:
    return make_event(entity, Status.FAILING, at(minutes))


def ok(minutes: float, entity: str = ENTITY) -> Any:
    return make_event(entity, Status.PASSING, at(minutes))


def sent(path: Path) -> list[dict[str, Any]]:
    """What a file receiver wrote (one JSON document per delivered notification)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def notified(result: Any) -> list[tuple[str, Transition]]:
    return [(d.receiver, d.transition) for d in result.decisions if d.notifies]


class RecordingTransport:
    """A receiver injected through ``transports=``: records keys it accepted; can be down."""

    def __init__(self, name: str, log: list[tuple[str, str]], *, up: bool = True, delay: float = 0.0) -> None:
        self.name = name
        self.log = log  # shared between routers; list.append is atomic
        self.up = up
        self.delay = delay

    def render(self, notification: Notification) -> dict[str, Any]:
        return notification.to_dict()

    def send(self, notification: Notification) -> DeliveryResult:
        if self.delay:
            time.sleep(self.delay)  # widen the window in which two deliverers could overlap
        if not self.up:
            return DeliveryResult.failure("receiver down (test)", retryable=True)
        self.log.append((self.name, notification.key))
        return DeliveryResult.success(external_id=notification.key)


def file_receivers(tmp_path: Path, *names: str) -> list[dict[str, str]]:
    return [{"type": "file", "name": name, "path": str(tmp_path / f"{name}.jsonl")} for name in names]


# -- the incident survives a restart -----------------------------------------------------------


def test_restart_continues_the_incident_and_recovers_it_once(
    tmp_path: Path, state: dict[str, str], clock: SimClock, new_router: RouterFactory
) -> None:
    config = {
        "receivers": file_receivers(tmp_path, "ops", "tickets", "managers"),
        "routes": [
            {"receivers": ["ops"], "continue": True},
            {"receivers": ["tickets"], "min_failures": 3, "continue": True},  # hears it on the 3rd failure in a row
            {"receivers": ["managers"], "min_failures": 10},  # never reached here
        ],
        "policy": {"repeat_interval": "4h", "flap_window": "0s"},
        "state": state,
    }
    fingerprint = fail(0).fingerprint

    first = new_router(config)
    opened = first.process([fail(0)])
    clock.advance(minutes=10)
    continued = first.process([fail(10)])
    before = first.incident(fingerprint)
    first.store.dispose()

    assert notified(opened) == [("ops", Transition.NEW)]
    assert notified(continued) == [] and [d.transition for d in continued.decisions] == [Transition.ONGOING]
    assert before is not None and before.phase is Phase.FAILING and before.consecutive_failures == 2

    # Restart: a new router instance on the same state.
    clock.advance(minutes=10)
    second = new_router(config)
    assert second.store is not first.store
    third = second.process([fail(20)])
    after = second.incident(fingerprint)

    assert {d.observation for d in third.decisions} == {Observation.CONTINUED}  # not re-opened
    assert [(d.receiver, d.transition) for d in third.decisions] == [("ops", Transition.ONGOING), ("tickets", Transition.NEW)]
    assert after is not None
    assert after.consecutive_failures == 3  # counted on from 2, not restarted at 1
    assert (after.incident_id, after.first_failed_at) == (before.incident_id, T0)
    assert set(after.receivers) == {"ops", "tickets"}

    clock.advance(minutes=10)
    recovered = second.process([ok(30)])
    second.store.dispose()
    assert sorted(notified(recovered)) == [("ops", Transition.RECOVERED), ("tickets", Transition.RECOVERED)]
    assert [o.status for o in recovered.deliveries] == ["delivered", "delivered"]

    # Another restart: a further success is healthy, nothing is announced again.
    clock.advance(minutes=10)
    third_router = new_router(config)
    healthy = third_router.process([ok(40)])
    idle = third_router.tick()
    assert [d.observation for d in healthy.decisions] == [Observation.HEALTHY]
    assert notified(healthy) == [] and healthy.deliveries == [] and idle.deliveries == []

    ops, tickets = sent(tmp_path / "ops.jsonl"), sent(tmp_path / "tickets.jsonl")
    assert [m["transition"] for m in ops] == ["new", "recovered"]
    assert [m["transition"] for m in tickets] == ["new", "recovered"]
    assert sent(tmp_path / "managers.jsonl") == []
    assert {m["incident"]["incident_id"] for m in ops + tickets} == {before.incident_id}
    assert ops[1]["facts"]["Failures"] == "3"
    rows = third_router.store.outbox_rows()
    assert len(rows) == 4 and {r["status"] for r in rows} == {"delivered"}
    assert third_router.incident(fingerprint).phase is Phase.OK  # type: ignore[union-attr]


def test_a_resolving_incident_is_recovered_by_the_next_instance(
    tmp_path: Path, state: dict[str, str], clock: SimClock, new_router: RouterFactory
) -> None:
    """Flap damping state (RESOLVING, resolving_since) is persisted too."""
    config = {
        "receivers": file_receivers(tmp_path, "ops"),
        "routes": [{"receivers": ["ops"]}],
        "policy": {"repeat_interval": "4h", "flap_window": "15m"},
        "state": state,
    }
    first = new_router(config)
    first.process([fail(0)])
    clock.advance(minutes=5)
    resolving = first.process([ok(5)])
    first.store.dispose()
    assert [d.observation for d in resolving.decisions] == [Observation.RESOLVING] and resolving.deliveries == []

    second = new_router(config)
    clock.advance(minutes=5)  # T0+10m: still inside the window
    assert second.tick().decisions == []
    clock.advance(minutes=11)  # T0+21m: window passed
    due = second.tick()
    again = second.tick()
    assert notified(due) == [("ops", Transition.RECOVERED)] and [o.status for o in due.deliveries] == ["delivered"]
    assert again.decisions == [] and again.deliveries == []
    assert [m["transition"] for m in sent(tmp_path / "ops.jsonl")] == ["new", "recovered"]


# -- the outbox survives a restart -------------------------------------------------------------


def test_pending_deliveries_survive_a_restart_and_are_sent_once(
    tmp_path: Path, state: dict[str, str], clock: SimClock, new_router: RouterFactory
) -> None:
    """A file receiver whose path is a directory cannot be written: the rows wait in the outbox."""
    target = tmp_path / "ops.jsonl"
    target.mkdir()  # the receiver is "down"
    config = {
        "receivers": file_receivers(tmp_path, "ops"),
        "routes": [{"receivers": ["ops"]}],
        "policy": {"repeat_interval": "4h", "flap_window": "0s"},
        "state": state,
    }
    first = new_router(config)
    result = first.process([fail(0, "loans_daily"), fail(0, "fx_rates")])
    rows = first.store.outbox_rows()
    first.store.dispose()

    assert len(result.notifications) == 2
    assert {o.status for o in result.deliveries} == {"pending"}
    assert [r["status"] for r in rows] == ["pending", "pending"]
    assert "IsADirectoryError" in (rows[0]["last_error"] or "")

    target.rmdir()  # the receiver is back
    clock.advance(minutes=1)  # past the retry backoff
    second = new_router(config)
    delivered = second.tick()
    assert sorted(o.notification.key for o in delivered.deliveries) == sorted(n.key for n in result.notifications)
    assert {o.status for o in delivered.deliveries} == {"delivered"}
    assert second.tick().deliveries == []
    second.store.dispose()

    clock.advance(hours=1)
    third = new_router(config)  # yet another instance finds nothing left to send
    assert third.tick().deliveries == []

    lines = sent(target)
    assert sorted(m["key"] for m in lines) == sorted(n.key for n in result.notifications)
    assert {m["incident"]["fingerprint"].split(":")[-1] for m in lines} == {"loans_daily", "fx_rates"}
    assert {r["status"] for r in third.store.outbox_rows()} == {"delivered"}


def test_an_injected_failing_transport_leaves_rows_for_the_next_instance(
    tmp_path: Path, state: dict[str, str], clock: SimClock, new_router: RouterFactory
) -> None:
    config = {
        "receivers": file_receivers(tmp_path, "ops"),
        "routes": [{"receivers": ["ops"]}],
        "policy": {"repeat_interval": "4h", "flap_window": "0s"},
        "state": state,
    }
    log: list[tuple[str, str]] = []
    first = new_router(config, transports={"ops": RecordingTransport("ops", log, up=False)})
    opened = first.process([fail(0)])
    clock.advance(minutes=5)
    first.process([ok(5)])  # the recovery queues behind the undelivered alert
    first.store.dispose()
    assert log == [] and {r["status"] for r in first.store.outbox_rows()} == {"pending"}

    clock.advance(minutes=30)
    second = new_router(config, transports={"ops": RecordingTransport("ops", log)})
    delivered = second.tick()
    assert second.tick().deliveries == []
    incident_id = opened.decisions[0].incident_id
    assert [key for _, key in log] == [f"{incident_id}:new:ops:1", f"{incident_id}:recovered:ops:final"]
    assert [o.notification.transition for o in delivered.deliveries] == [Transition.NEW, Transition.RECOVERED]


def test_a_delivery_leased_by_a_crashed_instance_is_sent_after_the_lease(
    tmp_path: Path, state: dict[str, str], clock: SimClock, new_router: RouterFactory
) -> None:
    """A process that claimed rows and died never settles them; the lease runs out, another sends them."""
    config = {
        "receivers": file_receivers(tmp_path, "ops"),
        "routes": [{"receivers": ["ops"]}],
        "policy": {"repeat_interval": "4h", "flap_window": "0s"},
        "delivery": {"lease": "5m"},
        "state": state,
    }
    log: list[tuple[str, str]] = []
    crashed = new_router(config, transports={"ops": RecordingTransport("ops", log)})
    crashed.process([fail(0)], deliver=False)
    claimed = crashed.store.claim_due(clock(), clock() + timedelta(minutes=5))
    crashed.store.dispose()  # ... and it never delivers or settles them
    assert len(claimed) == 1

    survivor = new_router(config, transports={"ops": RecordingTransport("ops", log)})
    clock.advance(minutes=2)
    assert survivor.tick().deliveries == []  # still leased
    clock.advance(minutes=4)
    assert [o.status for o in survivor.tick().deliveries] == ["delivered"]
    assert survivor.tick().deliveries == []
    assert log == [("ops", claimed[0].notification.key)]


# -- two instances at once ---------------------------------------------------------------------


def run_together(*jobs: Callable[[], Any]) -> list[Any]:
    """Start the jobs in threads at the same moment; re-raise the first error."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)
    errors: list[BaseException] = []

    def runner(index: int, job: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = job()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a delivery thread hung"
    if errors:
        raise errors[0]
    return results


def test_two_instances_delivering_at_once_send_each_row_once(
    tmp_path: Path, state: dict[str, str], clock: SimClock, new_router: RouterFactory
) -> None:
    entities = [f"job_{i:02d}" for i in range(40)]
    config = {
        "receivers": file_receivers(tmp_path, "ops", "audit"),
        "routes": [{"receivers": ["ops", "audit"]}],
        "policy": {"repeat_interval": "4h", "flap_window": "0s"},
        "state": state,
    }
    seeded = new_router(config, transports={})
    queued = seeded.process([fail(0, e) for e in entities], deliver=False)
    seeded.store.dispose()
    assert len(queued.notifications) == 2 * len(entities)

    log: list[tuple[str, str]] = []

    def instance() -> AlertRouter:
        transports = {name: RecordingTransport(name, log, delay=0.0005) for name in ("ops", "audit")}
        return new_router(config, transports=transports)

    a, b = instance(), instance()

    def drain(router: AlertRouter) -> Callable[[], int]:
        def job() -> int:
            count = 0
            while True:  # small batches, so the two instances interleave many claims
                outcomes = router.deliverer.deliver_due(clock(), limit=7)
                if not outcomes:
                    return count
                assert {o.status for o in outcomes} == {"delivered"}
                count += len(outcomes)

        return job

    counts = run_together(drain(a), drain(b))

    sends = Counter(key for _, key in log)
    assert sum(counts) == len(queued.notifications)
    assert set(sends) == {n.key for n in queued.notifications}
    assert max(sends.values()) == 1, [k for k, v in sends.items() if v > 1]
    rows = a.store.outbox_rows()
    assert {(r["status"], r["attempts"]) for r in rows} == {("delivered", 1)}
    assert all(r["lease_until"] is None for r in rows)


def test_two_instances_processing_the_same_events_at_once_notify_once(
    tmp_path: Path, state: dict[str, str], clock: SimClock, new_router: RouterFactory
) -> None:
    """The same failures seen by two processes at the same moment: one incident, one alert each."""
    entities = [f"job_{i:02d}" for i in range(10)]
    config = {
        "receivers": file_receivers(tmp_path, "ops"),
        "routes": [{"receivers": ["ops"]}],
        "policy": {"repeat_interval": "4h", "flap_window": "0s"},
        "state": state,
    }
    log: list[tuple[str, str]] = []
    routers = [new_router(config, transports={"ops": RecordingTransport("ops", log, delay=0.0005)}) for _ in range(2)]
    events = [fail(0, e) for e in entities]

    run_together(*[(lambda r=r: r.process(events)) for r in routers])
    for router in routers:  # whatever one instance left leased or pending, the next call settles
        router.tick()

    new_keys = Counter(key for _, key in log)
    assert max(new_keys.values()) == 1
    assert sorted(key.split(":")[1] for key in new_keys) == ["new"] * len(entities)
    assert len({routers[0].incident(e.fingerprint).incident_id for e in events}) == len(entities)  # type: ignore[union-attr]
    assert {r["status"] for r in routers[0].store.outbox_rows()} == {"delivered"}


# -- the stored state document -----------------------------------------------------------------

FP = f"dagster:run:{ENTITY}"

# A row exactly as the first stored format wrote it (one JSON object per state; produced by the
# release before format 2, with a ticket added the way ``record_tickets`` writes one).
FORMAT_1_STATE = (
    '{"fingerprint": "dagster:run:loans_daily", "phase": "failing", "incident_id": "e320e57a74-1795575600", '
    '"first_failed_at": "2026-11-25T03:00:00.000250+00:00", "last_failed_at": "2026-11-25T03:02:00.000250+00:00", '
    '"last_success_at": null, "resolving_since": null, "last_seen_at": "2026-11-25T03:02:00.000250+00:00", '
    '"consecutive_failures": 2, "flaps": 0, "severity": "error", "last_event": {"source": "dagster", "kind": "run", '
    '"entity": "loans_daily", "status": "failing", "severity": "error", "occurred_at": "2026-11-25T03:02:00.000250+00:00", '
    '"summary": "loans_daily failed", "details": {"error": "ValueError: boom", "rows": 3}, "owners": ["team:data-eng"], '
    '"tags": {"criticality": "high"}, "links": {"run": "http://dagster/runs/r2"}, "run_id": "r2", "next_action": null}, '
    '"receivers": {"ops": {"notified_at": "2026-11-25T03:00:00.000250+00:00", "severity": "error", "transition": "new"}}, '
    '"tickets": {"jira": {"key": "OPS-7", "url": "https://jira.example/browse/OPS-7", "incident_id": "e320e57a74-1795575600"}}}'
)


def ops_config(tmp_path: Path, state: dict[str, str]) -> dict[str, Any]:
    return {
        "receivers": file_receivers(tmp_path, "ops"),
        "routes": [{"receivers": ["ops"]}],
        "policy": {"repeat_interval": "4h", "flap_window": "0s"},
        "state": state,
    }


def raw_state(router: AlertRouter) -> str:
    with router.store.engine.connect() as conn:
        return conn.execute(sa.text("SELECT state FROM dm_alert_incidents WHERE fingerprint = :fp"), {"fp": FP}).scalar_one()


def write_raw_state(router: AlertRouter, document: str, phase: str = "failing") -> None:
    """Write the row behind the router's back, as another process (or an older version) would."""
    with router.store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM dm_alert_incidents WHERE fingerprint = :fp"), {"fp": FP})
        conn.execute(
            sa.text("INSERT INTO dm_alert_incidents (fingerprint, phase, updated_at, state) VALUES (:fp, :phase, 0, :state)"),
            {"fp": FP, "phase": phase, "state": document},
        )


def test_a_state_db_written_in_the_first_format_loads_and_its_incident_continues(
    tmp_path: Path, state: dict[str, str], clock: SimClock, new_router: RouterFactory
) -> None:
    router = new_router(ops_config(tmp_path, state))
    write_raw_state(router, FORMAT_1_STATE)

    loaded = router.incident(FP)
    assert loaded is not None and loaded.phase is Phase.FAILING and loaded.consecutive_failures == 2
    assert loaded.first_failed_at == T0 + timedelta(microseconds=250)
    assert loaded.receivers["ops"].transition is Transition.NEW and loaded.receivers["ops"].severity is Severity.ERROR
    assert loaded.last_event is not None and loaded.last_event.run_id == "r2"
    assert loaded.last_event.details == {"error": "ValueError: boom", "rows": 3}
    assert loaded.tickets["jira"]["key"] == "OPS-7"

    result = router.process([fail(3)])  # the third failure of the same incident: ongoing, not new
    assert [(d.transition, d.incident_id) for d in result.decisions] == [(Transition.ONGOING, "e320e57a74-1795575600")]
    assert raw_state(router).startswith("[2,")  # rewritten in the current format

    router.process([ok(5)])
    [card] = sent(tmp_path / "ops.jsonl")
    assert card["key"] == "e320e57a74-1795575600:recovered:ops:final"
    assert card["incident"]["failures"] == 3 and card["incident"]["tickets"]["jira"]["key"] == "OPS-7"


def test_every_field_of_a_state_survives_the_store(
    tmp_path: Path, state: dict[str, str], clock: SimClock, new_router: RouterFactory
) -> None:
    router = new_router(ops_config(tmp_path, state))
    event = make_event(
        ENTITY,
        Status.FAILING,
        at(3),
        details={"error": "boom", "rows": [1, 2]},
        tags={"criticality": "high"},
        links={"run": "http://dagster/runs/r9"},
        run_id="r9",
        next_action="re-run",
        owners=("team:a", "b@example.com"),
    )
    far = datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc)
    full = IncidentState(
        FP,
        Phase.RESOLVING,
        "abc-1",
        at(0) + timedelta(microseconds=1),
        at(3),
        at(4),
        at(4),
        at(4) + timedelta(microseconds=7),
        consecutive_failures=3,
        flaps=2,
        severity=Severity.CRITICAL,
        last_event=event,
        receivers={
            "ops": ReceiverMark(at(0), Severity.ERROR, Transition.NEW),
            "jira": ReceiverMark(far, Severity.CRITICAL, Transition.ESCALATED),
            "archive": ReceiverMark(datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=timezone.utc), Severity.WARN, Transition.REMINDER),
        },
        tickets={"jira": {"key": "OPS-1", "url": "https://jira.example/browse/OPS-1", "incident_id": "abc-1"}},
    )
    with router.store.transaction() as conn:
        router.store.save(conn, [full], clock.now)

    assert decode_state(FP, raw_state(router)) == full  # what another process reads
    assert router.incident(FP) == full
    assert [s.fingerprint for s in _in_phase(router, Phase.RESOLVING)] == [FP]


def _in_phase(router: AlertRouter, phase: Phase) -> list[IncidentState]:
    with router.store.transaction() as conn:
        return router.store.in_phase(conn, phase)


def test_a_row_written_by_another_process_is_read_as_written(
    tmp_path: Path, state: dict[str, str], clock: SimClock, new_router: RouterFactory
) -> None:
    router = new_router(ops_config(tmp_path, state))
    router.process([fail(0)])
    theirs = IncidentState(FP, Phase.FAILING, "theirs-1", at(0), at(1), None, None, at(1), consecutive_failures=7, severity=Severity.WARN)
    write_raw_state(router, encode_state(theirs))

    assert router.incident(FP) == theirs
    router.process([fail(2)])
    after = router.incident(FP)
    assert after is not None and (after.incident_id, after.consecutive_failures) == ("theirs-1", 8)


def test_a_save_that_is_rolled_back_is_forgotten(tmp_path: Path, state: dict[str, str], clock: SimClock, new_router: RouterFactory) -> None:
    router = new_router(ops_config(tmp_path, state))
    router.process([fail(0)])
    committed = router.incident(FP)

    with pytest.raises(RuntimeError, match="before the commit"):
        with router.store.transaction() as conn:
            changed = router.store.load(conn, [FP])[FP]
            changed.consecutive_failures = 99
            router.store.save(conn, [changed], clock.now)
            raise RuntimeError("crash after the save, before the commit")

    assert router.incident(FP) == committed


def test_changing_a_state_after_loading_or_saving_it_changes_nothing_stored(
    tmp_path: Path, state: dict[str, str], clock: SimClock, new_router: RouterFactory
) -> None:
    router = new_router(ops_config(tmp_path, state))
    router.process([fail(0)])
    stored = router.incident(FP)
    assert stored is not None and stored.receivers

    loaded = router.incident(FP)
    assert loaded is not None
    loaded.consecutive_failures = 50
    loaded.receivers.clear()
    loaded.tickets["ops"] = {"key": "X-1", "url": "", "incident_id": "x"}
    assert router.incident(FP) == stored

    with router.store.transaction() as conn:
        saved = router.store.load(conn, [FP])[FP]
        router.store.save(conn, [saved], clock.now)
    saved.consecutive_failures = 77
    saved.tickets["ops"] = {"key": "X-2", "url": "", "incident_id": "x"}
    assert router.incident(FP) == stored


def test_details_json_cannot_hold_are_stored_as_text(
    tmp_path: Path, state: dict[str, str], clock: SimClock, new_router: RouterFactory
) -> None:
    router = new_router(ops_config(tmp_path, state))
    event = make_event(ENTITY, Status.FAILING, at(0), details={"day": date(2026, 11, 25), "amount": Decimal("1.50")})

    router.process([event])  # the state used to be encoded without a fallback: the whole call failed

    stored = decode_state(FP, raw_state(router)).last_event
    assert stored is not None and stored.details == {"day": "2026-11-25", "amount": "1.50"}
    [card] = sent(tmp_path / "ops.jsonl")
    assert card["event"]["details"] == {"day": "2026-11-25", "amount": "1.50"}


def test_a_message_delivered_by_the_process_that_queued_it_is_the_one_its_stored_row_renders(
    tmp_path: Path, state: dict[str, str], clock: SimClock, new_router: RouterFactory
) -> None:
    """Delivery reuses the notifications it just queued instead of parsing their rows again: what
    it sends must be exactly what a process that only has the row (a restart, a retry) would send."""
    router = new_router(ops_config(tmp_path, state))
    details: list[dict[str, Any]] = [
        {"error": "ValueError: boom"},
        {"day": date(2026, 11, 25), "amount": Decimal("1.50")},
        {"pair": (1, 2), "nested": {"rows": [1, 2.5, None, True], "note": "é"}},
        {1: "a key that is not a string"},
    ]
    events = [make_event(f"job_{i}", Status.FAILING, at(i), details=d) for i, d in enumerate(details)]
    events += [
        make_event(f"grouped_{i}", Status.FAILING, at(5), run_id="run-1", links={"run": "https://d.example/runs/1"}) for i in range(3)
    ]

    router.process(events)

    cards = {card["key"]: card for card in sent(tmp_path / "ops.jsonl")}
    rows = router.store.outbox_rows()
    assert len(cards) == len(rows) == len(details) + 1  # the run's three failures are one message
    transport = router.transports["ops"]
    for row in rows:
        from_row = transport.render(Notification.from_dict(json.loads(row["payload"])))  # type: ignore[attr-defined]
        assert cards[row["key"]] == json.loads(json.dumps(from_row, default=str, ensure_ascii=False))


def test_a_state_remembers_the_run_that_fixed_it_and_reads_rows_written_before_that() -> None:
    fixed = {"run": "https://dagster.example.com/runs/r2", "run_id": "r2"}
    state = IncidentState(FP, Phase.RESOLVING, "abc-1", at(0), at(0), at(5), at(5), at(5), 1, fixed_by=fixed)
    blob = encode_state(state)
    assert decode_state(FP, blob) == state
    earlier = json.dumps(json.loads(blob)[:14])  # a format-2 row of the version before fixed_by
    assert decode_state(FP, earlier) == replace(state, fixed_by=None)


def test_a_state_in_an_unknown_format_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="has format 3; this version reads formats 1 and 2"):
        decode_state(FP, "[3]")


@pytest.mark.postgres
def test_loading_states_on_postgres_locks_their_rows_until_the_transaction_ends(
    tmp_path: Path, postgres_url: str, clock: SimClock, new_router: RouterFactory
) -> None:
    router = new_router(ops_config(tmp_path, {"url": postgres_url}))
    router.process([fail(0)])
    lock = "SELECT fingerprint FROM dm_alert_incidents WHERE fingerprint = :fp FOR UPDATE NOWAIT"

    with router.store.transaction() as conn:
        assert FP in router.store.load(conn, [FP])
        with router.store.engine.connect() as other:
            with pytest.raises(sa.exc.OperationalError, match="could not obtain lock"):
                other.execute(sa.text(lock), {"fp": FP})

    with router.store.engine.connect() as other:  # released at the commit
        assert other.execute(sa.text(lock), {"fp": FP}).scalar_one() == FP


def test_stored_times_come_back_to_the_microsecond() -> None:
    rng = random.Random(7)
    start = datetime(1, 1, 1, tzinfo=timezone.utc)
    span = (datetime(9999, 12, 31, tzinfo=timezone.utc) - start) // timedelta(microseconds=1)
    for _ in range(5000):
        moment = start + timedelta(microseconds=rng.randrange(span))
        assert decode_state(FP, encode_state(IncidentState(FP, last_seen_at=moment))).last_seen_at == moment
