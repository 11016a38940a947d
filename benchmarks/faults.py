"""The fault-injection table: every fault the probe found, what it cost.

Runs the scenarios of ``tests/faults`` (the same functions the tests assert on) and prints one
row each: alerts queued, lost (must be 0), duplicates and the bound the design allows (the
deliveries in flight when the fault struck), fallback messages about the monitoring itself, and
the longest router call (a sensor tick) while the fault lasted. Loopback only.
Run: python benchmarks/faults.py
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.faults import delivery_harness, state_harness  # noqa: E402
from tests.helpers.postgres import PostgresCluster, find_pg_bin  # noqa: E402


def main() -> int:
    logging.disable(logging.ERROR)  # the scenarios log every failed attempt, by design
    base = Path(tempfile.mkdtemp(prefix="dm-faults-"))
    counter = iter(range(1000))

    def tmp(name: str) -> Path:
        path = base / f"{next(counter):02d}-{name}"
        path.mkdir()
        return path

    results = delivery_harness.all_scenarios(tmp)
    results += [
        state_harness.deleted_at_rest(tmp("deleted")),
        state_harness.deleted_at_rest(tmp("deleted-trail"), audit_trail=True),
        state_harness.deleted_while_running(tmp("deleted-running")),
        state_harness.corrupt(tmp("corrupt")),
        state_harness.locked(tmp("locked")),
    ]
    bin_dir = find_pg_bin()
    if bin_dir is not None:
        cluster = PostgresCluster(bin_dir).start()
        try:
            results.append(state_harness.postgres_restarted_mid_delivery(tmp("pg"), cluster))
        finally:
            cluster.stop()
    header = f"{'scenario':<40} {'alerts':>6} {'lost':>5} {'dups':>5} {'bound':>6} {'fallback':>8} {'max_tick_s':>10}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.scenario:<40} {r.alerts:>6} {r.lost:>5} {r.duplicates:>5} {r.duplicate_bound:>6} "
            f"{r.notes.get('fallback', '-')!s:>8} {r.max_tick_s:>10.3f}"
        )
    if bin_dir is None:
        print("(PostgreSQL restart skipped: server binaries not found)")
    lost = sum(r.lost for r in results)
    over = [r.scenario for r in results if r.duplicates > r.duplicate_bound]
    print(f"alerts_lost_total={lost} scenarios_over_duplicate_bound={len(over)}")
    return 1 if lost or over else 0


if __name__ == "__main__":
    sys.exit(main())
