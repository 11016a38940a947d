"""How many tickets 20 noisy incidents open and close (goal: 20 opened, 20 closed, 0 duplicates).

20 jobs each fail 10 times a minute apart, then recover. 30 % of the create calls (seeded) are
answered only after the receiver's timeout although the server made the ticket: the case where a
receiver that simply retries opens a duplicate (alertmanager#4309). Jira's search index lags 10 s.

Real router, real SQLite state, real HTTP to the stateful fake Jira and ServiceNow servers of the
test suite (tests/helpers), which check the API contracts; only the clock is simulated.
Run: python benchmarks/ticket_noise.py
"""

from __future__ import annotations

import logging
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.helpers

from dagster_monitoring.alerting import AlertEvent, AlertingConfig, AlertRouter, Severity, Status  # noqa: E402
from tests.helpers.fake_jira import FakeJira  # noqa: E402
from tests.helpers.fake_servicenow import FakeServiceNow  # noqa: E402

INCIDENTS = 20
FAILURES = 10
TIMEOUT_SHARE = 0.30
RECEIVER_TIMEOUT = 0.2  # seconds; a held create answers after 1 s, long after the client gave up
SEED = 7
TOKEN = "bench-token-0123456789"


class SimClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def slow_creates(rng: random.Random) -> Callable[[int], float]:
    """Which creates (by their order at the server) are held: exactly 30 % of the 20, seeded."""
    held = set(rng.sample(range(1, INCIDENTS + 1), round(INCIDENTS * TIMEOUT_SHARE)))
    return lambda n: 1.0 if n in held else 0.0


def event(entity: str, status: Status, at: datetime) -> AlertEvent:
    return AlertEvent(
        source="dagster",
        kind="run",
        entity=entity,
        status=status,
        severity=Severity.ERROR,
        occurred_at=at,
        summary=f"Run of {entity} failed",
        details={"error": "ValueError: negative principal"},
        owners=("team:data-eng",),
        links={"run": f"https://dagster.example.com/runs/{entity}"},
    )


def run(receiver: dict[str, Any], server: Any, clock: SimClock, tmp: Path) -> AlertRouter:
    config = AlertingConfig.model_validate(
        {
            "receivers": [receiver],
            "routes": [{"receivers": [receiver["name"]]}],
            "policy": {"repeat_interval": "4h", "flap_window": "15m"},
            "state": {"path": str(tmp / "state.db")},
        }
    )
    router = AlertRouter(config, clock=clock, sleep=lambda s: clock.advance(seconds=s))
    jobs = [f"job_{i:02d}" for i in range(INCIDENTS)]
    for _ in range(FAILURES):
        router.process([event(job, Status.FAILING, clock.now) for job in jobs])
        clock.advance(minutes=1)
    router.process([event(job, Status.PASSING, clock.now) for job in jobs])
    clock.advance(minutes=16)  # past the flap window: the recoveries are announced
    router.tick()
    for _ in range(60):  # then until every delivery is settled
        if not router.store.outbox_counts().get("pending"):
            break
        clock.advance(minutes=1)
        router.tick()
    server.settled()
    return router


def bench_jira(tmp: Path) -> str:
    clock = SimClock(datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc))
    with FakeJira(api_token=TOKEN, clock=clock, index_lag=timedelta(seconds=10), create_delay=slow_creates(random.Random(SEED))) as server:
        receiver = {
            "type": "jira",
            "name": "jira",
            "base_url": server.base_url,
            "email": "alerts@example.com",
            "api_token": TOKEN,
            "project": "DATA",
            "timeout": RECEIVER_TIMEOUT,
        }
        router = run(receiver, server, clock, tmp)
    assert not server.violations, server.violations
    return line("jira", len(server.issues), len(server.closed), server.duplicates(), server.creates_held, len(server.requests), router)


def bench_servicenow(tmp: Path) -> str:
    clock = SimClock(datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc))
    with FakeServiceNow(password=TOKEN, create_delay=slow_creates(random.Random(SEED))) as server:
        receiver = {
            "type": "servicenow",
            "name": "snow",
            "base_url": server.base_url,
            "username": "svc-dagster",
            "password": TOKEN,
            "default_assignment_group": "Data Engineering",
            "timeout": RECEIVER_TIMEOUT,
        }
        router = run(receiver, server, clock, tmp)
    assert not server.violations, server.violations
    return line(
        "servicenow", len(server.records), len(server.resolved), server.duplicates(), server.creates_held, len(server.requests), router
    )


def line(system: str, opened: int, closed: int, duplicates: int, timeouts: int, requests: int, router: AlertRouter) -> str:
    left = router.store.outbox_counts()
    return (
        f"system={system} tickets_opened={opened} tickets_closed={closed} duplicates={duplicates} "
        f"create_timeouts={timeouts} http_requests={requests} outbox={dict(sorted(left.items()))}"
    )


def main() -> int:
    logging.getLogger("dagster_monitoring").setLevel(logging.ERROR)  # each held create logs a retry warning
    for bench in (bench_jira, bench_servicenow):
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            result = bench(Path(tmp))
        print(f"{result} seconds={time.perf_counter() - started:.1f}")
    print(
        f"goal: tickets_opened={INCIDENTS} tickets_closed={INCIDENTS} duplicates=0; "
        "a receiver that retries a timed-out create without looking first opens one duplicate per create_timeouts"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
