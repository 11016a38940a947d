"""Audit ingest: 100,000 rows into DuckDB in realistic batches, and the BigQuery request count
for 10,000 rows.

DuckDB: rows are validated records of the six tables' shapes (runs, materializations, check
evaluations, dbt results, dlt loads, alert decisions), written through AuditTrail as a sensor
would: one call per tick-sized batch. Two modes: a connection per call (what a sensor tick does,
so other processes can open the file between ticks) and one session for many batches (a
backfill). The ceiling measured on this machine (stack.md): Arrow inserts with ON CONFLICT,
~110k rows/s in 1,000-row batches.

BigQuery: the same records through the official client against the bqemulator emulator
(its own venv, created on first run), counting HTTP requests with a counting transport adapter.
Run: python benchmarks/audit_ingest.py [--skip-bigquery]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dagster_monitoring.audit.records import (  # noqa: E402
    AlertNotificationRecord,
    AssetCheckEvaluationRecord,
    AssetMaterializationRecord,
    AuditRecord,
    DbtTestResultRecord,
    DltLoadRecord,
    RunRecord,
)
from dagster_monitoring.audit.sinks.duckdb import DuckDBSink  # noqa: E402
from dagster_monitoring.audit.spool import Spool  # noqa: E402
from dagster_monitoring.audit.trail import AuditTrail  # noqa: E402

T0 = datetime.now(timezone.utc) - timedelta(days=2)


def make_records(n: int) -> list[AuditRecord]:
    out: list[AuditRecord] = []
    for i in range(n):
        ts = T0 + timedelta(seconds=i)
        kind = i % 6
        if kind == 0:
            out.append(
                RunRecord.build(
                    event_ts=ts,
                    run_id=f"run-{i}",
                    job_name=f"job_{i % 40}",
                    status="FAILURE" if i % 12 == 0 else "SUCCESS",
                    duration_s=i % 300,
                    error_class="ValueError" if i % 12 == 0 else None,
                    error_message="negative principal" if i % 12 == 0 else None,
                    tags={"team": "data-eng"},
                    run_url=f"http://localhost:3000/runs/run-{i}",
                    owners="team:data-eng",
                )
            )
        elif kind == 1:
            out.append(
                AssetMaterializationRecord.build(
                    event_ts=ts,
                    run_id=f"run-{i}",
                    asset_key=f"loans/asset_{i % 80}",
                    row_count=i,
                    metadata={"rows_loaded": i, "dagster/row_count": i},
                )
            )
        elif kind == 2:
            out.append(
                AssetCheckEvaluationRecord.build(
                    event_ts=ts,
                    run_id=f"run-{i}",
                    asset_key=f"loans/asset_{i % 80}",
                    check_name="row_count_ok",
                    passed=i % 7 != 0,
                    severity="ERROR",
                    metadata={"row_count": i},
                )
            )
        elif kind == 3:
            out.append(
                DbtTestResultRecord.build(
                    event_ts=ts,
                    invocation_id=f"inv-{i // 60}",
                    unique_id=f"test.lender.t{i}.abc",
                    test_name=f"t{i}",
                    model=f"model_{i % 30}",
                    status="pass" if i % 9 else "fail",
                    failures=0 if i % 9 else 3,
                    is_critical=i % 5 == 0,
                    tags=["critical"] if i % 5 == 0 else [],
                    execution_time_s=0.3,
                )
            )
        elif kind == 4:
            out.append(
                DltLoadRecord.build(
                    event_ts=ts,
                    pipeline_name="loans_source",
                    load_id=f"{1700000000 + i}",
                    table_name=f"table_{i % 10}",
                    rows_loaded=i,
                    schema_changes={"added": []},
                )
            )
        else:
            out.append(
                AlertNotificationRecord.build(
                    event_ts=ts,
                    record_type="decision",
                    fingerprint=f"dagster:run:job_{i % 40}",
                    incident_id=f"inc-{i % 40}",
                    transition="ongoing",
                    observation="continued",
                    receiver="teams",
                    severity="error",
                )
            )
    return out


def duckdb_rate(records: list[AuditRecord], batch: int, session: bool) -> float:
    with tempfile.TemporaryDirectory() as d:
        trail = AuditTrail(DuckDBSink(Path(d) / "audit.duckdb"), Spool(Path(d) / "spool"))
        trail.sink.init()
        start = time.perf_counter()
        if session:
            with trail.sink.session():
                for i in range(0, len(records), batch):
                    trail.write(records[i : i + batch])
        else:
            for i in range(0, len(records), batch):
                trail.write(records[i : i + batch])
        elapsed = time.perf_counter() - start
        total = trail.sink.query("SELECT (SELECT count(*) FROM dagster_audit.runs) + (SELECT count(*) FROM dagster_audit.dlt_loads)")[1][0][
            0
        ]
        assert total == sum(1 for r in records if r.TABLE in ("runs", "dlt_loads")), "rows lost"
    return len(records) / elapsed


def bigquery_requests(records: list[AuditRecord]) -> int | None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import bq_emulator  # type: ignore[import-not-found]
    except ImportError:
        return None
    from dagster_monitoring.audit.sinks.bigquery import BigQuerySink

    emulator = bq_emulator.start()
    try:
        sink = BigQuerySink(dataset="bench_audit", project=emulator.project, api_endpoint=emulator.endpoint)
        sink.init()
        counter = {"n": 0}
        session = sink.client._http
        original = session.request

        def counting(*args, **kwargs):
            counter["n"] += 1
            return original(*args, **kwargs)

        session.request = counting
        trail = AuditTrail(sink, Spool(Path(tempfile.mkdtemp()) / "spool"))
        for i in range(0, len(records), 1000):  # sensor-sized calls
            result = trail.write(records[i : i + 1000])
            assert result.spooled == 0, "the emulator refused a batch"
        return counter["n"]
    finally:
        emulator.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--skip-bigquery", action="store_true")
    args = parser.parse_args()
    records = make_records(args.rows)
    for batch, session in ((1_000, False), (5_000, False), (1_000, True)):
        rate = duckdb_rate(records, batch, session)
        mode = "one session" if session else "connection per call"
        print(f"duckdb rows={len(records)} batch={batch} mode='{mode}' duckdb_rows_per_s={rate:,.0f}")
    if not args.skip_bigquery:
        n = bigquery_requests(records[:10_000])
        if n is None:
            print("bigquery_requests_per_10k_rows=unavailable (scripts/bq_emulator.py missing)")
        else:
            print(f"bigquery_requests_per_10k_rows={n} (insertAll, 500 rows per request, six tables)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
