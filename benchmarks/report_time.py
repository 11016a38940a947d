"""On-call report time: 30 days x 1,000 entities of audit rows in DuckDB.

Entities: 500 jobs (2 runs a day, durations with noise; 50 of them 1.5x slower over the last 3
days), 300 asset checks (2 evaluations a day) and 200 dbt tests (1 result a day; 10 critical).
About 4 % of outcomes fail, and 40 entities fail on their latest outcome; 60 open incidents with
alert decisions, half with a ticket. The rows are built with the trail's record types and written
through AuditTrail (one session, 5,000-row calls), as the audit sensor would have written them.

Timed (median of ``--repeat``): reading every section from the views (``fetch_report``) and
rendering the page (``render_html``) and the text (``render_text``). Printed: rows, seconds per
phase, the page's size and what it shows.
Run: python benchmarks/report_time.py [--entities N] [--days D] [--repeat R]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dagster_monitoring.audit.config import AuditConfig  # noqa: E402
from dagster_monitoring.audit.records import (  # noqa: E402
    AlertNotificationRecord,
    AssetCheckEvaluationRecord,
    AuditRecord,
    DbtTestResultRecord,
    RunRecord,
)
from dagster_monitoring.audit.trail import AuditTrail  # noqa: E402
from dagster_monitoring.report import fetch_report, render_html, render_text  # noqa: E402

OWNERS = ("team:data-eng", "team:credit", "team:finance", "team:risk", "team:platform")


def build(entities: int, days: int, now: datetime, seed: int = 7) -> list[AuditRecord]:
    rnd = random.Random(seed)
    jobs, checks = entities // 2, entities * 3 // 10
    tests = entities - jobs - checks
    out: list[AuditRecord] = []
    failing_now = set(rnd.sample(range(entities), 40))
    for day in range(days - 1, -1, -1):
        base = now - timedelta(days=day, hours=1)
        for j in range(jobs):
            owner = OWNERS[j % len(OWNERS)]
            for k in range(2):
                at = base - timedelta(hours=6 * k, minutes=j % 60)
                last = day == 0 and k == 0
                failed = (j in failing_now) if last else rnd.random() < 0.04
                duration = (60 + j % 300) * (1.5 if j < 50 and day < 3 else 1.0) * rnd.uniform(0.9, 1.1)
                out.append(
                    RunRecord.build(
                        event_ts=at,
                        run_id=f"r{j}-{day}-{k}",
                        job_name=f"job_{j:04d}",
                        status="FAILURE" if failed else "SUCCESS",
                        duration_s=round(duration, 1),
                        error_class="ValueError" if failed else None,
                        error_message=f"step failed on partition {day}" if failed else None,
                        owners=owner,
                        run_url=f"http://dagster.example.test/runs/r{j}-{day}-{k}",
                    )
                )
        for c in range(checks):
            n = jobs + c
            for k in range(2):
                last = day == 0 and k == 0
                failed = (n in failing_now) if last else rnd.random() < 0.04
                out.append(
                    AssetCheckEvaluationRecord.build(
                        event_ts=base - timedelta(hours=6 * k, minutes=c % 60),
                        run_id=f"c{c}-{day}-{k}",
                        asset_key=f"asset_{c:04d}",
                        check_name="row_count_ok",
                        passed=not failed,
                        severity="WARN" if c % 3 else "ERROR",
                        description="row count below minimum" if failed else None,
                        owners=OWNERS[c % len(OWNERS)],
                    )
                )
        for t in range(tests):
            n = jobs + checks + t
            failed = (n in failing_now) if day == 0 else rnd.random() < 0.04
            out.append(
                DbtTestResultRecord.build(
                    event_ts=base - timedelta(minutes=t % 60),
                    invocation_id=f"inv-{day}",
                    unique_id=f"test.lender.t{t:04d}",
                    test_name=f"test_{t:04d}",
                    model=f"model_{t % 40:02d}",
                    status="fail" if failed else "pass",
                    is_critical=t < 10,
                    failures=3 if failed else 0,
                    owners=OWNERS[t % len(OWNERS)],
                )
            )
    for i in range(60):
        out.append(
            AlertNotificationRecord.build(
                event_ts=now - timedelta(hours=2, minutes=i),
                record_type="decision",
                fingerprint=f"fp-{i}",
                incident_id=f"inc-{i}",
                source="dagster",
                kind="run_failure",
                entity=f"job_{i:04d}",
                observation="opened",
                transition="new",
                severity="ERROR",
                ticket_key=f"DM-{i}" if i % 2 else None,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    now = datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory(prefix="dm-report-bench-") as tmp:
        trail = AuditTrail.from_config(AuditConfig(duckdb_path=f"{tmp}/audit.duckdb", spool_dir=f"{tmp}/spool"))
        started = time.perf_counter()
        records = build(args.entities, args.days, now)
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        with trail.session():
            for i in range(0, len(records), 5000):
                result = trail.write(records[i : i + 5000])
                assert result.spooled == 0 and result.held == 0, result
        write_s = time.perf_counter() - started
        fetch, html, text = [], [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            data = fetch_report(trail.sink, now=now)
            t1 = time.perf_counter()
            page = render_html(data)
            t2 = time.perf_counter()
            render_text(data)
            t3 = time.perf_counter()
            fetch.append(t1 - t0)
            html.append(t2 - t1)
            text.append(t3 - t2)
        fetch_s, html_s, text_s = (statistics.median(x) for x in (fetch, html, text))
        size = Path(tmp, "audit.duckdb").stat().st_size
    print(
        f"entities={args.entities} days={args.days} audit_rows={len(records)} duckdb_mb={size / 1e6:.0f} "
        f"build_s={build_s:.1f} write_s={write_s:.1f}"
    )
    print(
        f"report_fetch_s={fetch_s:.2f} render_html_s={html_s:.3f} render_text_s={text_s:.3f} "
        f"report_total_s={fetch_s + html_s + text_s:.2f} (median of {args.repeat}) html_kb={len(page.encode()) / 1024:.0f}"
    )
    print(
        f"shows: failing={len(data.failing)} heatmap_rows={len(data.heatmap)} (+{data.heatmap_more} more) "
        f"flaky={len(data.flaky)} slowest={len(data.slowest)} regressing={len(data.regressing)} open_alerts={len(data.open_alerts)}"
    )


if __name__ == "__main__":
    main()
