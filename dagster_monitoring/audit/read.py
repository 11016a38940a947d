"""Reading the audit trail: the views in their documented order, in the sink's dialect.

Every read query is written once, in BigQuery SQL on the canonical dataset, and transpiled for
the sink (:func:`~.schema.query_sql`), so ``audit query``, the on-call report and the digest
print the same rows in the same order on DuckDB and BigQuery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # schema imports sqlglot: only when a query runs (the CLI starts faster)
    import pyarrow as pa

    from .sinks.base import AuditSink


@dataclass(frozen=True)
class ViewLayout:
    """How ``audit query`` shows one view: the ORDER BY it runs (BigQuery SQL, transpiled like the
    views, so both sinks agree) and the table's columns as (column, header); () shows them all."""

    order_by: str
    columns: tuple[tuple[str, str], ...] = ()
    cut: Mapping[str, int] = field(default_factory=dict)  # text columns that may be cut to fit, and the width kept if possible


def _by_severity(column: str) -> str:
    return f"CASE UPPER({column}) WHEN 'CRITICAL' THEN 0 WHEN 'ERROR' THEN 1 WHEN 'WARN' THEN 2 ELSE 3 END"


# The on-call reads the worst first, then the oldest; ties are broken down to the row's key, so
# the same trail always prints in the same order (on DuckDB and BigQuery alike).
LAYOUTS: dict[str, ViewLayout] = {
    "vw_recent_failures": ViewLayout(
        order_by=f"{_by_severity('severity')}, failing_since, entity_type, entity",
        columns=(
            ("entity_type", "type"),
            ("entity", "entity"),
            ("severity", "severity"),
            ("failing_since", "failing since"),
            ("failures_in_streak", "streak"),
            ("owners", "owners"),
            ("last_error", "last error"),
        ),
        cut={"entity": 26, "owners": 11, "last_error": 10},
    ),
    "vw_open_alerts": ViewLayout(
        order_by=f"{_by_severity('severity')}, opened_at, fingerprint",
        columns=(
            ("severity", "severity"),
            ("fingerprint", "fingerprint"),
            ("state", "state"),
            ("opened_at", "opened"),
            ("failures_seen", "fails"),
            ("notifications", "sent"),
            ("owners", "owners"),
            ("ticket_key", "ticket"),
        ),
        cut={"fingerprint": 30, "owners": 20, "ticket_key": 10},
    ),
    "vw_open_alert_receivers": ViewLayout(
        order_by="fingerprint, incident_id, receiver",
        columns=(
            ("fingerprint", "fingerprint"),
            ("receiver", "receiver"),
            ("last_notice", "last notice"),
            ("severity", "severity"),
            ("notified_at", "at"),
            ("ticket_key", "ticket"),
        ),
        cut={"fingerprint": 30, "ticket_key": 10},
    ),
    "vw_external_job_runs": ViewLayout(
        order_by="failed DESC, " + _by_severity("severity") + ", last_event_at DESC, source, job_name",
        columns=(
            ("source", "source"),
            ("job_name", "job"),
            ("last_status", "last status"),
            ("last_event_at", "at"),
            ("failures_9d", "fails 9d"),
            ("owners", "owners"),
            ("message", "message"),
        ),
        cut={"job_name": 24, "owners": 11, "message": 10},
    ),
    "vw_run_summary": ViewLayout(
        order_by="run_date DESC, job_name, source",
        columns=(
            ("job_name", "job"),
            ("run_date", "date"),
            ("runs", "runs"),
            ("failures", "failed"),
            ("success_rate", "success"),
            ("p50_duration_s", "p50 s"),
            ("p95_duration_s", "p95 s"),
            ("last_status", "last status"),
        ),
        cut={"job_name": 30},  # job names stay whole (the last run's time is in --wide / json)
    ),
    "vw_failures_9d": ViewLayout(
        order_by="failures_9d DESC, entity_type, entity, day",
        columns=(
            ("entity_type", "type"),
            ("entity", "entity"),
            ("day", "day"),
            ("outcomes", "outcomes"),
            ("failures", "failures"),
            ("failures_9d", "9d"),
            ("days_with_failures_9d", "days 9d"),
        ),
        cut={"entity": 30},
    ),
    "vw_flaky_checks": ViewLayout(
        order_by="flips DESC, failures DESC, entity_type, entity",
        columns=(
            ("entity_type", "type"),
            ("entity", "entity"),
            ("outcomes", "outcomes"),
            ("failures", "failures"),
            ("flips", "flips"),
            ("last_event_at", "last event"),
        ),
        cut={"entity": 30},
    ),
    "vw_dbt_test_results": ViewLayout(
        order_by=(
            "CASE status WHEN 'error' THEN 0 WHEN 'fail' THEN 0 WHEN 'warn' THEN 1 ELSE 2 END, "
            "is_critical DESC, model, test_name, unique_id"
        ),
        columns=(
            ("status", "status"),
            ("previous_status", "before"),
            ("is_critical", "critical"),
            ("model", "model"),
            ("test_name", "test"),
            ("failures", "rows"),
            ("owners", "owners"),
            ("message", "message"),
        ),
        cut={"model": 12, "test_name": 20, "owners": 9, "message": 12},
    ),
    "vw_entity_events": ViewLayout(
        order_by="event_ts DESC, entity_type, entity, run_id, error",
        columns=(
            ("event_ts", "at"),
            ("entity_type", "type"),
            ("entity", "entity"),
            ("failed", "failed"),
            ("severity", "severity"),
            ("owners", "owners"),
            ("error", "error"),
        ),
        cut={"entity": 26, "owners": 11, "error": 10},
    ),
}
TABLE_LAYOUT = ViewLayout(order_by="event_ts DESC, event_id")  # base tables: newest first, every column


def run_query(sink: AuditSink, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """``sql`` (BigQuery SQL on ``dagster_audit``) run on ``sink``, in its dialect and dataset."""
    from . import schema
    from .sinks.duckdb import DuckDBSink

    if isinstance(sink, DuckDBSink):
        return sink.query(schema.query_sql(sql, "duckdb", sink.dataset))
    return sink.query(schema.query_sql(sql, "bigquery", sink.dataset, sink.project_id))  # type: ignore[attr-defined]


def run_arrow_query(sink: AuditSink, sql: str) -> pa.Table:
    """``sql`` (BigQuery SQL on ``dagster_audit``) run on ``sink``, the rows as an Arrow table:
    DuckDB's own Arrow result, BigQuery's query results (``to_arrow``, no load or extract job)."""
    from . import schema
    from .sinks.duckdb import DuckDBSink

    if isinstance(sink, DuckDBSink):
        return sink.query_arrow(schema.query_sql(sql, "duckdb", sink.dataset))
    return sink.query_arrow(schema.query_sql(sql, "bigquery", sink.dataset, sink.project_id))  # type: ignore[attr-defined]


def read_view(sink: AuditSink, name: str, limit: int | None = None, where: str | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    """``name`` in its documented order (``where``: a BigQuery SQL condition on its columns)."""
    from . import schema

    layout = LAYOUTS.get(name, TABLE_LAYOUT)
    sql = f"SELECT * FROM {schema.CANONICAL_DATASET}.{name}" + (f" WHERE {where}" if where else "")
    sql += f" ORDER BY {layout.order_by}" + (f" LIMIT {int(limit)}" if limit else "")
    return run_query(sink, sql)


def rows_as_dicts(result: tuple[list[str], list[tuple[Any, ...]]]) -> list[dict[str, Any]]:
    """``(columns, rows)`` as one dict per row, timestamps as aware UTC datetimes (:func:`utc`)."""
    columns, rows = result
    return [{c: utc(v) for c, v in zip(columns, row, strict=True)} for row in rows]


def split_owners(owners: str | None) -> list[str]:
    """An ``owners`` column (comma-separated, as the records write it) as a list."""
    return [o.strip() for o in (owners or "").split(",") if o.strip()]


def utc(value: Any) -> Any:
    """A timestamp from either sink as an aware UTC datetime (a naive one is UTC); other values as they are."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return value
