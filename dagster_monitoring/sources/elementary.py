"""Elementary OSS results as alerts: the rows its dbt package writes to ``elementary_test_results``
in the warehouse (its anomaly, schema-change and dbt tests), read on a cursor.

Plain Python (the Dagster sensor is in :mod:`dagster_monitoring.sensors.sources`). Only the
package's documented columns are read. Each row becomes an :class:`AlertEvent` for the router
(state, dedup, reminders, recoveries) and a ``dbt_test_results`` row for the audit trail:

* one incident per test and column: entity ``<test_unique_id>`` (``:<column_name>`` for a
  column-level test, as Elementary's column anomalies write one row per column), fingerprint
  ``elementary:<kind>:<entity>``; kind ``anomaly`` (test_type ``anomaly_detection``),
  ``schema_change``, else ``dbt_test``;
* ``fail`` / ``error`` are failing at the source's severity (CRITICAL when the test is tagged
  ``critical``), ``warn`` failing at WARN, ``pass`` resolves the incident; other statuses are
  neither (no event, still an audit row when the trail can name them);
* the cursor is ``(created_at, id)``, the columns Elementary's incremental model is keyed and
  timed by: every row is read once, in the order Elementary wrote it, whenever the dbt run that
  wrote it started (``detected_at`` is the test's time, on the card and in the trail).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from ..alerting.events import AlertEvent, Severity, Status
from ..audit.records import DbtTestResultRecord
from .config import ElementarySourceConfig

TEST_RESULTS = "elementary_test_results"
# The documented columns this reads (elementary-data/dbt-data-reliability, elementary_test_results).
COLUMNS = (
    "id",
    "test_unique_id",
    "model_unique_id",
    "invocation_id",
    "detected_at",
    "created_at",
    "database_name",
    "schema_name",
    "table_name",
    "column_name",
    "test_type",
    "test_sub_type",
    "test_results_description",
    "owners",
    "tags",
    "test_name",
    "test_short_name",
    "severity",
    "status",
    "failures",
)
_AUDIT_STATUS = {"pass": "pass", "warn": "warn", "fail": "fail", "error": "error", "runtime error": "error", "skipped": "skipped"}


class ElementaryReader(Protocol):
    dialect: str  # duckdb | bigquery: what results_sql transpiles to

    def rows(self, sql: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: str

    def to_json(self) -> dict[str, str]:
        return {"created_at": self.created_at.isoformat(), "id": self.id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Cursor | None:
        if not data or "created_at" not in data:
            return None
        return cls(datetime.fromisoformat(str(data["created_at"])), str(data.get("id") or ""))


def _utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if isinstance(value, str) and value:
        from ._common import parse_time

        return parse_time(value)
    return None


def _literal_ts(at: datetime) -> str:
    return "TIMESTAMP '" + at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f") + "'"


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def table_name(config: ElementarySourceConfig) -> str:
    return ".".join(part for part in (config.database, config.dataset, TEST_RESULTS) if part)


def where(config: ElementarySourceConfig, audit: Any) -> str:
    """The warehouse read, for messages: the DuckDB file or the BigQuery project."""
    if config.duckdb_path or audit.backend == "duckdb":
        return str(config.duckdb_path or audit.resolved_duckdb_path())
    return f"BigQuery project {config.database or audit.project or '(the client default)'}"


def results_sql(config: ElementarySourceConfig, after: Cursor | None, since: datetime, dialect: str, limit: int) -> str:
    """The page after ``after`` (or, on a first tick, everything created since ``since``), in the
    reader's dialect: written once in BigQuery SQL, transpiled for DuckDB."""
    import sqlglot

    table = ".".join(f"`{part}`" for part in (config.database, config.dataset, TEST_RESULTS) if part)
    if after is None:
        where = f"created_at >= {_literal_ts(since)}"
    else:
        at = _literal_ts(after.created_at)
        where = f"(created_at > {at} OR (created_at = {at} AND CAST(id AS STRING) > {_quote(after.id)}))"
    if config.test_types:
        where += " AND test_type IN (" + ", ".join(_quote(t) for t in config.test_types) + ")"
    sql = f"SELECT {', '.join(COLUMNS)} FROM {table} WHERE {where} ORDER BY created_at, CAST(id AS STRING) LIMIT {int(limit)}"
    return sql if dialect == "bigquery" else sqlglot.transpile(sql, read="bigquery", write=dialect)[0]


def _list(value: Any) -> list[str]:
    """Elementary's ``owners`` / ``tags``: a JSON array as text (or a list, or comma-separated)."""
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v]
    text = str(value).strip()
    if text.startswith("["):
        try:
            return [str(v) for v in json.loads(text) if v]
        except ValueError:
            pass
    return [part.strip().strip("'\"") for part in text.strip("[]").split(",") if part.strip()]


def kind_of(row: Mapping[str, Any]) -> str:
    test_type = str(row.get("test_type") or "").lower()
    return {"anomaly_detection": "anomaly", "schema_change": "schema_change"}.get(test_type, "dbt_test")


def entity_of(row: Mapping[str, Any]) -> str:
    column = row.get("column_name")
    return f"{row['test_unique_id']}:{column}" if column else str(row["test_unique_id"])


def event_of(row: Mapping[str, Any], config: ElementarySourceConfig) -> AlertEvent | None:
    status = str(row.get("status") or "").lower()
    if status not in ("pass", "fail", "error", "warn", "runtime error"):
        return None
    tags = _list(row.get("tags"))
    if status == "pass":
        severity = config.severity
    elif status == "warn":
        severity = Severity.WARN
    else:
        severity = Severity.CRITICAL if config.critical_tag in tags else config.severity
    at = _utc(row.get("detected_at")) or _utc(row.get("created_at")) or datetime.now(timezone.utc)
    table = ".".join(str(row[k]) for k in ("schema_name", "table_name") if row.get(k))
    target = f"{table}.{row['column_name']}" if row.get("column_name") else table
    name = row.get("test_short_name") or row.get("test_name") or row["test_unique_id"]
    kind = kind_of(row)
    label = {"anomaly": "anomaly test", "schema_change": "schema change test"}.get(kind, "test")
    verb = {"pass": "passed", "warn": "warned", "fail": "failed"}.get(status, "errored")
    details: dict[str, Any] = {
        "test": row.get("test_name") or name,
        "table": target or None,
        "description": row.get("test_results_description"),
        "failures": row.get("failures"),
        "test_type": "/".join(str(row[k]) for k in ("test_type", "test_sub_type") if row.get(k)) or None,
        "elementary/id": str(row["id"]),
        "elementary/invocation_id": row.get("invocation_id"),
        "elementary/model_unique_id": row.get("model_unique_id"),
    }
    owners = tuple(dict.fromkeys([*_list(row.get("owners")), *config.owners]))
    return AlertEvent(
        source="elementary",
        kind=kind,
        entity=entity_of(row),
        status=Status.PASSING if status == "pass" else Status.FAILING,
        severity=severity,
        occurred_at=at,
        summary=f"Elementary {label} {name} {verb}" + (f" on {target}" if target else ""),
        details={k: v for k, v in details.items() if v is not None},
        owners=owners,
        tags={**config.tags, "elementary/test_type": str(row.get("test_type") or "")},
        links={"elementary": config.report_url} if config.report_url else {},
        next_action=None if status == "pass" else "open the Elementary report for the test's history and the failing rows",
    )


def audit_record(row: Mapping[str, Any], event: AlertEvent | None, config: ElementarySourceConfig) -> DbtTestResultRecord | None:
    """The row as a ``dbt_test_results`` row: test_name is the alert's entity (so the views name it
    as the alert does), invocation ``elementary:<result id>`` (one row per Elementary result)."""
    status = _AUDIT_STATUS.get(str(row.get("status") or "").lower())
    at = _utc(row.get("detected_at")) or _utc(row.get("created_at"))
    if status is None or at is None:
        return None
    tags = _list(row.get("tags"))
    failures = row.get("failures")
    owners = event.owners if event is not None else tuple(_list(row.get("owners")))
    return DbtTestResultRecord.build(
        event_ts=at,
        invocation_id=f"elementary:{row['id']}",
        unique_id=entity_of(row),
        test_name=entity_of(row),
        model=row.get("table_name"),
        status=status,
        failures=int(failures) if isinstance(failures, (int, float)) or (isinstance(failures, str) and failures.isdigit()) else None,
        message=row.get("test_results_description"),
        is_critical=config.critical_tag in tags,
        tags=["elementary", *tags],
        owners=",".join(owners) or None,
        run_url=config.report_url,
    )


@dataclass
class ElementaryPoll:
    events: list[AlertEvent]
    records: list[DbtTestResultRecord]
    cursor: Cursor | None
    rows: int
    more: bool  # a full page: the next tick (or call) reads on


def poll(reader: ElementaryReader, config: ElementarySourceConfig, after: Cursor | None, *, now: datetime) -> ElementaryPoll:
    """One page of results after ``after`` as events and audit records, and the cursor past them."""
    since = now - config.lookback
    rows = reader.rows(results_sql(config, after, since, reader.dialect, config.max_rows_per_tick))
    events: list[AlertEvent] = []
    records: list[DbtTestResultRecord] = []
    cursor = after
    for row in rows:
        event = event_of(row, config)
        if event is not None:
            events.append(event)
        record = audit_record(row, event, config)
        if record is not None:
            records.append(record)
        created = _utc(row.get("created_at"))
        if created is not None:
            cursor = Cursor(created, str(row["id"]))
    if after is None and cursor is None:  # nothing yet: start at the lookback, so nothing older is read later
        cursor = Cursor(since - timedelta(microseconds=1), "")
    return ElementaryPoll(events, records, cursor, len(rows), len(rows) >= config.max_rows_per_tick)


# -- readers: the same warehouse as the audit trail --------------------------------------------


class DuckDBElementaryReader:
    """Elementary's schema in a DuckDB file (dbt-duckdb's warehouse), opened read-only per call."""

    dialect = "duckdb"

    def __init__(self, path: str) -> None:
        self.path = path

    def rows(self, sql: str) -> list[dict[str, Any]]:
        import duckdb

        con = duckdb.connect(self.path, read_only=True)
        try:
            con.execute("SET TimeZone = 'UTC'")
            cur = con.execute(sql)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            con.close()


class BigQueryElementaryReader:
    """Elementary's dataset in BigQuery, read with query results (no load or extract job)."""

    dialect = "bigquery"

    def __init__(self, client: Any, timeout: float = 30.0) -> None:
        self.client = client
        self.timeout = timeout

    def rows(self, sql: str) -> list[dict[str, Any]]:
        result = self.client.query(sql, job_retry=None, timeout=self.timeout).result(timeout=self.timeout)
        return [dict(row.items()) for row in result]


def reader_for(config: ElementarySourceConfig, audit: Any) -> DuckDBElementaryReader | BigQueryElementaryReader:
    """The reader on the warehouse the audit trail is in (``audit``: its ``AuditConfig``), or on
    ``duckdb_path`` when Elementary's schema is in another DuckDB file (dbt's warehouse)."""
    if config.duckdb_path or audit.backend == "duckdb":
        return DuckDBElementaryReader(where(config, audit))
    from ..audit.sinks.bigquery import BigQuerySink

    credentials = json.loads(audit.credentials_json.get_secret_value()) if audit.credentials_json else None
    sink = BigQuerySink(
        audit.dataset, project=config.database or audit.project, location=audit.location, api_endpoint=audit.api_endpoint,
        credentials_info=credentials,
    )  # fmt: skip
    return BigQueryElementaryReader(sink.client)
