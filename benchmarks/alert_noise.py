"""How many messages reach a channel in two noisy scenarios (goal: 2 each: new + recovered).

1. One job fails 100 times a minute apart on a simulated clock, then succeeds once.
2. A job flaps: fail / pass alternating 50 times inside the flap window, then stays green.

Real router, real SQLite state, real file receiver; only the clock is simulated.
Run: python benchmarks/alert_noise.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from dagster_monitoring.alerting import AlertEvent, AlertingConfig, AlertRouter, Severity, Status


class SimClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def make_router(tmp: Path, clock: SimClock) -> tuple[AlertRouter, Path]:
    out = tmp / "sent.jsonl"
    config = AlertingConfig.model_validate(
        {
            "receivers": [{"type": "file", "name": "channel", "path": str(out)}],
            "routes": [{"receivers": ["channel"], "min_severity": "warn"}],
            "policy": {"repeat_interval": "4h", "flap_window": "15m"},
            "state": {"path": str(tmp / "state.db")},
        }
    )
    return AlertRouter(config, clock=clock, sleep=lambda s: None), out


def event(entity: str, status: Status, at: datetime) -> AlertEvent:
    return AlertEvent(
        source="dagster",
        kind="run",
        entity=entity,
        status=status,
        severity=Severity.ERROR,
        occurred_at=at,
        summary=f"Run of {entity} failed",
        owners=("team:data-eng",),
    )


def count(path: Path) -> tuple[int, list[str]]:
    if not path.exists():
        return 0, []
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return len(lines), [line["transition"] for line in lines]


def scenario_repeated_failure(tmp: Path) -> tuple[int, list[str]]:
    clock = SimClock(datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc))
    router, out = make_router(tmp, clock)
    for _ in range(100):
        router.process([event("loans_daily", Status.FAILING, clock.now)])
        clock.now += timedelta(minutes=1)
    router.process([event("loans_daily", Status.PASSING, clock.now)])
    clock.now += timedelta(minutes=20)  # past the flap window: the recovery is announced
    router.tick()
    return count(out)


def scenario_flapping(tmp: Path) -> tuple[int, list[str]]:
    clock = SimClock(datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc))
    router, out = make_router(tmp, clock)
    for i in range(50):
        status = Status.FAILING if i % 2 == 0 else Status.PASSING
        router.process([event("repayments_sync", status, clock.now)])
        clock.now += timedelta(seconds=10)
    router.process([event("repayments_sync", Status.PASSING, clock.now)])
    clock.now += timedelta(minutes=20)
    router.tick()
    return count(out)


def main() -> int:
    with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
        n1, t1 = scenario_repeated_failure(Path(d1))
        n2, t2 = scenario_flapping(Path(d2))
    print(f"scenario=fail_100_then_recover messages_sent={n1} transitions={','.join(t1)}")
    print(f"scenario=flap_50_in_window messages_sent={n2} transitions={','.join(t2)}")
    print("baseline (one message per failed run, e.g. dagster-msteams): 100 and 25")
    return 0


if __name__ == "__main__":
    sys.exit(main())
