"""BI export time: 30 days x 1,000 entities of audit rows (report_time.py's data) from DuckDB
to Parquet + CSV files, and from the BigQuery emulator when it can be started.

Timed (median of ``--repeat``): ``export_audit`` of every table over ``--days`` days, to a local
folder and to ``memory://``. Printed: rows per table, seconds, rows/s, bytes per format.
Run: python benchmarks/export_time.py [--entities N] [--days D] [--repeat R] [--bigquery]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from report_time import build  # noqa: E402

from dagster_monitoring.audit.config import AuditConfig  # noqa: E402
from dagster_monitoring.audit.trail import AuditTrail  # noqa: E402
from dagster_monitoring.report.export import export_audit  # noqa: E402


def timed(sink, url: str, days: int, end: datetime, repeat: int):
    runs, result = [], None
    for _ in range(repeat):
        result = export_audit(sink, url, days=days, end=end)
        runs.append(result.seconds)
    assert result is not None
    return statistics.median(runs), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bigquery", action="store_true", help="also from the BigQuery emulator (its venv must build)")
    args = parser.parse_args()
    now = datetime.now(timezone.utc)
    end = now + timedelta(minutes=1)
    records = build(args.entities, args.days, now)
    with tempfile.TemporaryDirectory(prefix="dm-export-bench-") as tmp:
        trail = AuditTrail.from_config(AuditConfig(duckdb_path=f"{tmp}/audit.duckdb", spool_dir=f"{tmp}/spool"))
        with trail.session():
            for i in range(0, len(records), 5000):
                assert trail.write(records[i : i + 5000]).spooled == 0
        for label, url in (("local", f"{tmp}/exports"), ("memory", f"memory://dm-bench-{uuid.uuid4().hex[:6]}")):
            seconds, result = timed(trail.sink, url, args.days, end, args.repeat)
            rows = sum(result.rows.values())
            sizes = {fmt: sum(p.stat().st_size for p in Path(tmp, "exports").rglob(f"part.{fmt}")) for fmt in ("parquet", "csv")}
            print(
                f"duckdb->{label}: rows={rows} ({', '.join(f'{t}={n}' for t, n in result.rows.items())}) "
                f"export_s={seconds:.2f} rows_per_s={rows / seconds:,.0f} (median of {args.repeat})"
                + (f" parquet_kb={sizes['parquet'] / 1024:.0f} csv_kb={sizes['csv'] / 1024:.0f}" if label == "local" else "")
            )
        if args.bigquery:
            sys.path.insert(0, str(ROOT / "tests"))
            from helpers.bigquery import load_emulator_module

            from dagster_monitoring.audit.sinks.bigquery import BigQuerySink
            from dagster_monitoring.audit.spool import Spool

            emu_mod = load_emulator_module()
            emulator = emu_mod.start(venv=emu_mod.ensure_venv())
            try:
                sink = BigQuerySink("bench_export", project=emulator.project, api_endpoint=emulator.endpoint, batch_rows=500, timeout=120)
                sink.init()
                bq = AuditTrail(sink, Spool(Path(tmp) / "bq-spool"))
                started = time.perf_counter()
                for i in range(0, len(records), 5000):
                    assert bq.write(records[i : i + 5000]).spooled == 0
                write_s = time.perf_counter() - started
                seconds, result = timed(sink, f"memory://dm-bench-bq-{uuid.uuid4().hex[:6]}", args.days, end, args.repeat)
                rows = sum(result.rows.values())
                print(
                    f"bigquery_emulator->memory: rows={rows} export_s={seconds:.2f} rows_per_s={rows / seconds:,.0f} (write_s={write_s:.1f})"
                )
            finally:
                emulator.close()


if __name__ == "__main__":
    main()
