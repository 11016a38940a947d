"""Elementary OSS results through the real Dagster sensor, the router and the audit trail.

Elementary's dbt package cannot be installed here (offline), so its ``elementary_test_results``
table is created with the package's documented columns and types (``empty_elementary_test_results``)
and filled the way its on-run-end hook does; the same DDL (BigQuery SQL, transpiled for DuckDB)
serves the DuckDB warehouse and the BigQuery emulator. A failing anomaly opens one alert, the
repeats are suppressed, a later pass of the same test and column recovers it once, and every
result lands in dbt_test_results and the views."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
import sqlglot

from dagster_monitoring import build_monitoring_defs
from dagster_monitoring.audit.read import read_view
from dagster_monitoring.config import ConfigError, config_from_dict

from ..helpers.bigquery import bq_emulator  # noqa: F401

# the documented columns of elementary_test_results, in the package's order (long_string: STRING)
DOCUMENTED = [
    ("id", "STRING"), ("data_issue_id", "STRING"), ("test_execution_id", "STRING"), ("test_unique_id", "STRING"),
    ("model_unique_id", "STRING"), ("invocation_id", "STRING"), ("detected_at", "TIMESTAMP"), ("created_at", "TIMESTAMP"),
    ("database_name", "STRING"), ("schema_name", "STRING"), ("table_name", "STRING"), ("column_name", "STRING"),
    ("test_type", "STRING"), ("test_sub_type", "STRING"), ("test_results_description", "STRING"), ("owners", "STRING"),
    ("tags", "STRING"), ("test_results_query", "STRING"), ("other", "STRING"), ("test_name", "STRING"), ("test_params", "STRING"),
    ("severity", "STRING"), ("status", "STRING"), ("failures", "INT64"), ("test_short_name", "STRING"), ("test_alias", "STRING"),
    ("result_rows", "STRING"), ("failed_row_count", "INT64"),
]  # fmt: skip
VOLUME = "test.lender.elementary_volume_anomalies_fct_loans_.4f1c2a"
COLUMN = "test.lender.elementary_column_anomalies_fct_loans_.9b8e7d"
NOT_NULL = "test.lender.not_null_fct_loans_loan_id.1a2b3c"
START = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)
SENSOR = "dagster_monitoring_elementary"


def ddl(table: str) -> str:
    return f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in DOCUMENTED)})"


def result(test: str, status: str, minutes: int, column: str | None = None, **extra: Any) -> dict[str, Any]:
    """One row as Elementary's on-run-end hook writes it."""
    at = START + timedelta(minutes=minutes)
    anomaly = "anomalies" in test
    invocation = f"inv-{minutes}"
    row = {
        "id": f"{invocation}.{test}.{column or ''}",
        "data_issue_id": None,
        "test_execution_id": f"{test}.{invocation}",
        "test_unique_id": test,
        "model_unique_id": "model.lender.fct_loans",
        "invocation_id": invocation,
        "detected_at": at,
        "created_at": at + timedelta(seconds=30),
        "database_name": "warehouse",
        "schema_name": "marts",
        "table_name": "fct_loans",
        "column_name": column,
        "test_type": "anomaly_detection" if anomaly else "dbt_test",
        "test_sub_type": ("zscore" if column else "row_count") if anomaly else "generic",
        "test_results_description": None if status == "pass" else "The last row_count value is 12. The average is 5,031.",
        "owners": '["team:lending"]',
        "tags": '["finance"]',
        "test_results_query": "select 1",
        "other": None,
        "test_name": test.split(".")[2],
        "test_params": "{}",
        "severity": "ERROR",
        "status": status,
        "failures": 0 if status == "pass" else 1,
        "test_short_name": ("column_anomalies" if column else "volume_anomalies") if anomaly else "not_null",
        "test_alias": test.split(".")[2],
        "result_rows": None,
        "failed_row_count": None,
    }
    row.update(extra)
    return row


def settings(tmp_path: Path, elementary: dict[str, Any], audit: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "receivers": [{"type": "file", "name": "file", "path": str(tmp_path / "alerts.jsonl")}],
        "routes": [{"receivers": ["file"]}],
        "policy": {"flap_window": "0s", "group_by": []},
        "state": {"path": str(tmp_path / "state.db")},
        "audit": audit or {"duckdb_path": str(tmp_path / "audit.duckdb"), "spool_dir": str(tmp_path / "spool")},
        "sources": {"elementary": {"owners": ["team:analytics"], "report_url": "https://elementary.example.test/report", **elementary}},
    }


def sent(tmp_path: Path) -> list[tuple[str, str, str]]:
    path = tmp_path / "alerts.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(m["transition"], m["event"]["entity"], m["event"]["severity"]) for m in map(json.loads, lines)]


class Ticker:
    """The real sensor, ticked as the daemon does, carrying its cursor."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.sensor, self.instance, self.cursor = defs.resolve_sensor_def(SENSOR), instance, None

    def __call__(self) -> str:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor)
        out = self.sensor(context)
        self.cursor = context.cursor
        return out.skip_message if isinstance(out, dg.SkipReason) else str(out)


def story(insert, tick, tmp_path: Path, sink) -> None:
    """The shared story, on any warehouse: ``insert(rows)`` writes Elementary rows, ``tick()`` ticks."""
    insert([result(VOLUME, "fail", 0, tags='["finance", "critical"]'), result(VOLUME, "fail", -60 * 30)])
    insert([result(COLUMN, "fail", 1, "principal"), result(COLUMN, "pass", 1, "amount"), result(NOT_NULL, "pass", 1)])
    assert "4 result(s), 2 failing" in tick()  # the one older than the lookback (1 day) is not read
    vol, col = VOLUME, f"{COLUMN}:principal"
    assert sorted(sent(tmp_path)) == sorted([("new", vol, "critical"), ("new", col, "error")])
    failing = read_view(sink, "vw_recent_failures")
    names = [dict(zip(failing[0], r, strict=True)) for r in failing[1]]
    assert sorted((r["entity_type"], r["entity"], r["owners"]) for r in names) == sorted(
        [("dbt_test", vol, "team:lending,team:analytics"), ("dbt_test", col, "team:lending,team:analytics")]
    )
    assert "0 result(s)" in tick()
    before_repeat = tick.cursor
    insert([result(VOLUME, "fail", 10, tags='["critical"]'), result(COLUMN, "fail", 10, "principal")])
    assert "2 result(s), 2 failing" in tick()
    assert len(sent(tmp_path)) == 2  # repeats: suppressed
    tick.cursor = before_repeat  # a tick that died before saving its cursor: the same rows again
    assert "2 result(s), 2 failing" in tick()
    assert len(sent(tmp_path)) == 2
    insert([result(VOLUME, "pass", 20), result(COLUMN, "pass", 20, "principal"), result(COLUMN, "warn", 20, "amount", severity="WARN")])
    tick()
    tick()
    assert sorted(m[:2] for m in sent(tmp_path)[2:]) == sorted([("new", f"{COLUMN}:amount"), ("recovered", vol), ("recovered", col)])
    assert ("new", f"{COLUMN}:amount", "warn") in sent(tmp_path)
    columns, rows = read_view(sink, "vw_recent_failures")
    assert [r[columns.index("entity")] for r in rows] == [f"{COLUMN}:amount"]
    columns, rows = read_view(sink, "dbt_test_results")
    # every result once: the re-read is absorbed (DuckDB: the key; BigQuery: the views' event_id dedup)
    assert len({r[columns.index("event_id")] for r in rows}) == 9
    assert {r[columns.index("invocation_id")].split(":")[0] for r in rows} == {"elementary"}
    columns, rows = read_view(sink, "vw_dbt_test_results")
    latest = {r[columns.index("test_name")]: (r[columns.index("status")], r[columns.index("previous_status")]) for r in rows}
    assert latest[vol] == ("pass", "fail") and latest[col] == ("pass", "fail") and latest[NOT_NULL] == ("pass", None)
    columns, rows = read_view(sink, "vw_open_alerts")
    assert [r[columns.index("entity")] for r in rows] == [f"{COLUMN}:amount"]


def test_elementary_results_alert_resolve_and_land_in_the_audit_trail_duckdb(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE SCHEMA elementary")
        con.execute(sqlglot.transpile(ddl("elementary.elementary_test_results"), read="bigquery", write="duckdb")[0])

    def insert(rows: list[dict[str, Any]]) -> None:
        with duckdb.connect(str(warehouse)) as con:
            for row in rows:
                values = {k: (v.replace(tzinfo=None) if isinstance(v, datetime) else v) for k, v in row.items()}  # naive UTC, as dbt-duckdb
                con.execute(
                    f"INSERT INTO elementary.elementary_test_results ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                    list(values.values()),
                )

    defs = build_monitoring_defs(config_from_dict(settings(tmp_path, {"schema": "elementary", "duckdb_path": str(warehouse)})))
    from dagster_monitoring.audit.sinks.duckdb import DuckDBSink

    with dg.instance_for_test() as instance:
        story(insert, Ticker(defs, instance), tmp_path, DuckDBSink(tmp_path / "audit.duckdb"))


def test_the_same_story_on_the_bigquery_emulator(bq_emulator, tmp_path):  # noqa: F811
    from dagster_monitoring.audit.sinks.bigquery import BigQuerySink

    from ..helpers.bigquery import fast_retry, make_client

    client = make_client(bq_emulator)
    dataset = f"elementary_{uuid.uuid4().hex[:8]}"
    client.create_dataset(f"{bq_emulator.project}.{dataset}")
    client.query(ddl(f"`{bq_emulator.project}.{dataset}.elementary_test_results`")).result()

    def insert(rows: list[dict[str, Any]]) -> None:
        payload = [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()} for row in rows]
        assert client.insert_rows_json(f"{bq_emulator.project}.{dataset}.elementary_test_results", payload, retry=fast_retry()) == []

    audit = {
        "backend": "bigquery",
        "project": bq_emulator.project,
        "dataset": f"audit_{uuid.uuid4().hex[:8]}",
        "api_endpoint": bq_emulator.endpoint,
        "spool_dir": str(tmp_path / "spool"),
    }
    config = config_from_dict(settings(tmp_path, {"schema": dataset, "database": bq_emulator.project}, audit=audit))
    sink = BigQuerySink(audit["dataset"], project=bq_emulator.project, api_endpoint=bq_emulator.endpoint, retry_deadline=3, timeout=30)
    sink.init()
    defs = build_monitoring_defs(config)
    try:
        with dg.instance_for_test() as instance:
            story(insert, Ticker(defs, instance), tmp_path, sink)
    finally:
        sink.close()
        client.close()


@pytest.mark.parametrize(
    ("elementary", "field"),
    [
        ({"schema": "my elementary"}, "sources.elementary.schema"),
        ({"report_url": "ftp://x"}, "sources.elementary.report_url"),
        ({"max_rows_per_tick": 0}, "sources.elementary.max_rows_per_tick"),
        ({"lookback": "soon"}, "sources.elementary.lookback"),
    ],
)
def test_invalid_elementary_config_fails_at_load(elementary, field):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"sources": {"elementary": elementary}})
    assert field in str(err.value)


def test_a_missing_table_fails_the_tick_naming_it_and_what_to_do(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(warehouse)).close()
    defs = build_monitoring_defs(config_from_dict(settings(tmp_path, {"schema": "elementary", "duckdb_path": str(warehouse)})))
    with dg.instance_for_test() as instance, pytest.raises(Exception) as err:
        Ticker(defs, instance)()
    message = str(err.value)
    assert "elementary.elementary_test_results" in message and str(warehouse) in message and "Elementary's package" in message
