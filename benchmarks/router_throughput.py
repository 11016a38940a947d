"""Events per second through the router: SQLite state, file receiver, 10,000 events over
1,000 fingerprints (goal >= 5,000 events/s on a 2-core machine).

Each fingerprint fails 9 times then passes once, so the run exercises every path: new
(1,000 deliveries), ongoing (suppressed), recovered (1,000 deliveries). Events are fed the way
a sensor tick feeds them: in batches (one router call, one transaction per batch). A second
figure feeds one event per call (one transaction each), the worst case.
Run: python benchmarks/router_throughput.py
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from dagster_monitoring.alerting import AlertEvent, AlertingConfig, AlertRouter, Severity, Status

N_EVENTS = 10_000
N_FINGERPRINTS = 1_000


def build_events() -> list[AlertEvent]:
    t0 = datetime(2026, 11, 25, tzinfo=timezone.utc)
    events = []
    per_fp = N_EVENTS // N_FINGERPRINTS
    for round_ in range(per_fp):
        for fp in range(N_FINGERPRINTS):
            status = Status.PASSING if round_ == per_fp - 1 else Status.FAILING
            events.append(
                AlertEvent(
                    source="dagster",
                    kind="run",
                    entity=f"job_{fp:04d}",
                    status=status,
                    severity=Severity.ERROR,
                    occurred_at=t0 + timedelta(seconds=round_ * 60, microseconds=fp),
                    summary="run failed",
                    owners=("team:data-eng",),
                    details={"error": "ValueError: boom"},
                )
            )
    return events


def run(batch: int, tmp: Path) -> tuple[float, int]:
    config = AlertingConfig.model_validate(
        {
            "receivers": [{"type": "file", "name": "file", "path": str(tmp / "sent.jsonl")}],
            "routes": [{"receivers": ["file"]}],
            "policy": {"flap_window": "0s"},
            "state": {"path": str(tmp / "state.db")},
        }
    )
    clock_now = [datetime(2026, 11, 25, 1, tzinfo=timezone.utc)]
    router = AlertRouter(config, clock=lambda: clock_now[0])
    events = build_events()
    start = time.perf_counter()
    for i in range(0, len(events), batch):
        router.process(events[i : i + batch])
    elapsed = time.perf_counter() - start
    sent = sum(1 for _ in open(tmp / "sent.jsonl"))
    router.store.dispose()
    return elapsed, sent


def sqlite_limit(tmp: Path) -> float:
    """The floor from stack.md measured here: plain sqlite3 read-then-upsert pairs in one transaction."""
    con = sqlite3.connect(tmp / "raw.db")
    con.execute("CREATE TABLE s (k TEXT PRIMARY KEY, v TEXT)")
    start = time.perf_counter()
    with con:
        for i in range(N_EVENTS):
            k = f"dagster:run:job_{i % N_FINGERPRINTS:04d}"
            con.execute("SELECT v FROM s WHERE k = ?", (k,)).fetchone()
            con.execute("INSERT INTO s VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v", (k, "x" * 600))
    return N_EVENTS / (time.perf_counter() - start)


def main() -> int:
    limit = None
    for batch in (1000, 100, 1):
        with tempfile.TemporaryDirectory() as d:
            elapsed, sent = run(batch, Path(d))
            if limit is None:
                limit = sqlite_limit(Path(d))
        rate = N_EVENTS / elapsed
        print(
            f"batch={batch} events={N_EVENTS} fingerprints={N_FINGERPRINTS} messages_sent={sent} "
            f"seconds={elapsed:.2f} events_per_s={rate:,.0f}"
        )
    print(f"sqlite_read_upsert_pairs_per_s={limit:,.0f} (raw sqlite3, no router: the ceiling)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
