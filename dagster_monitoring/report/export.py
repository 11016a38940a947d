"""The BI export: the last N days of job executions as Parquet and CSV files, for Power BI,
Looker Studio, Excel or a lake.

Four tables, read from the audit trail with one query each (BigQuery SQL, transpiled like the
views; one row per ``event_id``, as the views keep): ``runs``, ``asset_check_evaluations``,
``dbt_test_results`` (Elementary's results too), ``external_job_runs``. Their columns are the
audit tables' (``audit_sql/tables``), in the same order, with fixed Arrow types (documented in
``docs/bi_export.md``, pinned by a test): timestamps are UTC timestamps, JSON columns are JSON
text, booleans are booleans (``true`` / ``false`` in CSV), so nothing nested reaches a CSV.

Files go to ``<url>/<table>/export_date=YYYY-MM-DD/part.parquet`` (and ``part.csv``) through
fsspec: a local folder, ``memory://``, ``gs://`` (gcsfs), ``s3://`` (s3fs), ``az://`` (adlfs).
The window is ``[end - days, end)`` and the partition is ``end``'s UTC date, so exporting the
same slot again overwrites the same files: never a duplicate. From BigQuery the rows come back
as query results (``to_arrow``): no load or extract job, so no job quota is involved.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from ..audit.sinks.base import AuditSink

EXPORT_TABLES = ("runs", "asset_check_evaluations", "dbt_test_results", "external_job_runs")
FORMATS = ("parquet", "csv")


def export_schema(table: str) -> pa.Schema:
    """The exported file's columns and types: the audit table's columns, in order."""
    from ..audit import schema
    from ..audit.sinks.duckdb import arrow_schema

    if table not in EXPORT_TABLES:
        raise KeyError(f"not an exported table: {table!r} (exported: {', '.join(EXPORT_TABLES)})")
    return arrow_schema(schema.table(table))  # the sink's own Arrow types: JSON as text, timestamps in UTC


def export_sql(table: str, start: datetime, end: datetime) -> str:
    """BigQuery SQL on ``dagster_audit``: one row per event_id in ``[start, end)``, oldest first."""
    from ..audit import schema

    cols = ", ".join(f"TO_JSON_STRING({c.name}) AS {c.name}" if c.bq_type == "JSON" else c.name for c in schema.table(table).columns)
    lo, hi = (t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00") for t in (start, end))
    return (
        f"SELECT {cols} FROM {schema.CANONICAL_DATASET}.{table} "
        f"WHERE event_ts >= TIMESTAMP '{lo}' AND event_ts < TIMESTAMP '{hi}' "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ingested_at) = 1 "
        "ORDER BY event_ts, event_id"
    )


def read_table(sink: AuditSink, table: str, start: datetime, end: datetime) -> pa.Table:
    """``table``'s rows in the window as an Arrow table of :func:`export_schema`."""
    from ..audit.read import run_arrow_query

    target = export_schema(table)
    got = run_arrow_query(sink, export_sql(table, start, end))
    arrays = [got.column(f.name).cast(f.type) for f in target]
    return pa.Table.from_arrays(arrays, schema=target)


def csv_bytes(table: pa.Table) -> bytes:
    """CSV with a header row: timestamps as ISO 8601 UTC (``2026-05-04T08:00:00.000000Z``),
    booleans ``true`` / ``false``, NULL as an empty field, JSON as quoted text."""
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    columns = [pc.strftime(col, format="%Y-%m-%dT%H:%M:%SZ") if pa.types.is_timestamp(col.type) else col for col in table.columns]
    out = io.BytesIO()
    pcsv.write_csv(pa.Table.from_arrays(columns, names=table.column_names), out)
    return out.getvalue()


def parquet_bytes(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def partition_path(url: str, table: str, export_date: str, fmt: str) -> str:
    return f"{url.rstrip('/')}/{table}/export_date={export_date}/part.{fmt}"


@dataclass
class ExportResult:
    url: str
    export_date: str
    start: datetime
    end: datetime
    rows: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        counts = ", ".join(f"{t} {n}" for t, n in self.rows.items())
        return f"export {self.export_date} ({self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC) to {self.url}: {counts}; {len(self.files)} file(s)"


def export_audit(
    sink: AuditSink,
    url: str,
    *,
    days: int = 7,
    end: datetime | None = None,
    formats: Sequence[str] = FORMATS,
    tables: Sequence[str] = EXPORT_TABLES,
    storage_options: dict[str, Any] | None = None,
) -> ExportResult:
    """Write the last ``days`` days before ``end`` (default now) of every table in ``tables`` to
    ``url``, one file per format, under ``export_date=<end's UTC date>``. Idempotent per date:
    files appear whole (locally: a temporary name, then moved) and overwrite the date's earlier ones."""
    import time

    import fsspec

    started = time.perf_counter()
    end = (end or datetime.now(timezone.utc)).astimezone(timezone.utc)
    start = end - timedelta(days=days)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"unknown export formats {bad}; use {list(FORMATS)}")
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    result = ExportResult(url=url, export_date=end.strftime("%Y-%m-%d"), start=start, end=end)
    for table in tables:
        data = read_table(sink, table, start, end)
        result.rows[table] = data.num_rows
        for fmt in formats:
            path = partition_path(root, table, result.export_date, fmt)
            payload = parquet_bytes(data) if fmt == "parquet" else csv_bytes(data)
            fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
            target = f"{path}.tmp" if local else path  # an object store's upload appears whole at close
            with fs.open(target, "wb") as fh:
                fh.write(payload)
            if local:
                fs.mv(target, path)
            result.files.append(partition_path(url, table, result.export_date, fmt))
    result.seconds = time.perf_counter() - started
    return result
