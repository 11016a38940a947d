"""How many messages reach a channel in three noisy scenarios.

1. One job fails 100 times a minute apart on a simulated clock, then succeeds once (goal 2: new + recovered).
2. A job flaps: fail / pass alternating 50 times inside the flap window, then stays green (goal 2).
3. One bad source file in one run: the dlt asset's check fails, 4 downstream dbt models fail their
   tests (2 each), the run fails; a later run fixes it all (goal ≤ 2 cards for the failure). Printed
   with grouping and inhibition (the defaults), with both off, and for a per-event notifier.

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
from dagster_monitoring.alerting.grouping import ASSET_TAG, UPSTREAM_TAG, upstream_tag


class SimClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def make_router(tmp: Path, clock: SimClock, **policy: object) -> tuple[AlertRouter, Path]:
    out = tmp / "sent.jsonl"
    config = AlertingConfig.model_validate(
        {
            "receivers": [{"type": "file", "name": "channel", "path": str(out)}],
            "routes": [{"receivers": ["channel"], "min_severity": "warn"}],
            "policy": {"repeat_interval": "4h", "flap_window": "15m", **policy},
            "state": {"path": str(tmp / "state.db")},
        }
    )
    return AlertRouter(config, clock=clock, sleep=lambda s: None), out


def event(
    entity: str,
    status: Status,
    at: datetime,
    *,
    source: str = "dagster",
    kind: str = "run",
    summary: str | None = None,
    tags: dict[str, str] | None = None,
    run_id: str | None = None,
) -> AlertEvent:
    return AlertEvent(
        source=source,
        kind=kind,
        entity=entity,
        status=status,
        severity=Severity.ERROR,
        occurred_at=at,
        summary=summary or f"Run of {entity} failed",
        owners=("team:data-eng",),
        tags=tags or {},
        run_id=run_id,
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


MODELS = ("stg_loans", "stg_repayments", "fct_loans", "fct_balances")


def bad_source_run(at: datetime, status: Status, run_id: str) -> list[AlertEvent]:
    """What the alert sensor reads for one run of a dlt → dbt job whose source file is bad."""
    source_check = "raw/loans:dlt_row_count"
    events = [event(source_check, status, at, source="dlt", kind="row_count", tags={ASSET_TAG: "raw/loans"}, run_id=run_id)]
    for model in MODELS:
        upstream = ["raw/loans", *(["stg_loans"] if model.startswith("fct") else [])]
        tags = {ASSET_TAG: model, UPSTREAM_TAG: upstream_tag(upstream)}
        for test in ("not_null", "unique"):
            check = f"{test}_{model}_id"
            at_check = at + timedelta(seconds=30)
            summary = f"Check {check} on {model}"
            events.append(
                event(f"{model}:{check}", status, at_check, source="dbt", kind="asset_check", summary=summary, tags=tags, run_id=run_id)
            )
    events.append(event("lender_daily", status, at + timedelta(seconds=60), run_id=run_id))
    return events


def scenario_bad_source(tmp: Path, **policy: object) -> tuple[int, int, int]:
    """(cards for the failure, cards for the fix, failing events)."""
    clock = SimClock(datetime(2026, 11, 25, 6, 0, tzinfo=timezone.utc))
    router, out = make_router(tmp, clock, flap_window="0s", **policy)
    failing = bad_source_run(clock.now, Status.FAILING, "run-1")
    router.process(failing)
    broken, _ = count(out)
    clock.now += timedelta(hours=1)
    router.process(bad_source_run(clock.now, Status.PASSING, "run-2"))
    total, _ = count(out)
    return broken, total - broken, len(failing)


def main() -> int:
    with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
        n1, t1 = scenario_repeated_failure(Path(d1))
        n2, t2 = scenario_flapping(Path(d2))
    print(f"scenario=fail_100_then_recover messages_sent={n1} transitions={','.join(t1)}")
    print(f"scenario=flap_50_in_window messages_sent={n2} transitions={','.join(t2)}")
    print("baseline (one message per failed run, e.g. dagster-msteams): 100 and 25")
    with tempfile.TemporaryDirectory() as d3, tempfile.TemporaryDirectory() as d4:
        grouped, grouped_fix, events = scenario_bad_source(Path(d3))
        plain, plain_fix, _ = scenario_bad_source(Path(d4), grouping=False, inhibition=False)
    print(
        f"scenario=bad_source_1_dlt_4_dbt_one_run cards_sent={grouped} recovery_cards={grouped_fix} "
        f"(grouping and inhibition off: cards_sent={plain} recovery_cards={plain_fix}; "
        f"a per-event notifier: cards_sent={events})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
