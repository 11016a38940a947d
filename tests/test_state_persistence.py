"""Alert memory and the outbox survive a restart, on SQLite (a file) and on a real PostgreSQL.

Each scenario runs events through one ``AlertRouter``, disposes it, and builds a new router on
the same state (``state: {path: ...}`` for SQLite, ``state: {url: ...}`` for Postgres), as a
restarted daemon would. Two routers delivering from the same outbox at the same time must not
send a row twice (``BEGIN IMMEDIATE`` on SQLite, ``FOR UPDATE SKIP LOCKED`` on Postgres).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from dagster_monitoring.alerting import AlertRouter, Observation, Phase, Status, Transition
from dagster_monitoring.alerting.notification import Notification
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
