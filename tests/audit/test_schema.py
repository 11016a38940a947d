"""The SQL is written once (BigQuery) and everything else is derived from it."""

from __future__ import annotations

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from dagster_monitoring.audit import schema
from dagster_monitoring.audit.records import RECORD_TYPES

TABLES = {t.name for t in schema.tables()}
EXPECTED_TABLES = {"runs", "asset_materializations", "asset_check_evaluations", "dbt_test_results", "dlt_loads", "alert_notifications", "external_job_runs"}
EXPECTED_VIEWS = {"vw_run_summary", "vw_recent_failures", "vw_failures_9d", "vw_dbt_test_results", "vw_flaky_checks", "vw_open_alerts", "vw_open_alert_receivers", "vw_entity_events", "vw_external_job_runs"}


def test_all_files_parse_as_bigquery_and_round_trip():
    assert TABLES == EXPECTED_TABLES
    assert {v.name for v in schema.views()} == EXPECTED_VIEWS
    for path in sorted((schema.sql_root()).rglob("*.sql")):
        ast = sqlglot.parse_one(path.read_text(), read="bigquery")
        again = sqlglot.parse_one(ast.sql("bigquery"), read="bigquery")
        assert again == ast, path.name


@pytest.mark.parametrize("table", sorted(EXPECTED_TABLES))
def test_every_table_is_partitioned_by_day_and_clustered(table):
    t = schema.table(table)
    assert t.partition_column == "event_ts"
    assert next(c for c in t.columns if c.name == "event_ts").bq_type == "TIMESTAMP"
    assert 1 <= len(t.cluster_columns) <= 4  # BigQuery allows up to four
    assert set(t.cluster_columns) <= set(t.column_names)
    sql = schema.bigquery_sql(t.ast, "my_dataset", "my-project")
    assert "PARTITION BY DATE(event_ts)" in sql and "CLUSTER BY" in sql
    assert f"`my-project`.my_dataset.{table}" in sql or f"my-project.my_dataset.{table}" in sql


def test_every_table_has_the_audit_columns_and_matches_its_record():
    for record in RECORD_TYPES:
        t = schema.table(record.TABLE)
        assert t.column_names[:2] == ("event_id", "event_ts")
        assert "ingested_at" in t.column_names
        assert set(record.model_fields) | {"ingested_at"} == set(t.column_names), record.TABLE
        required = {c.name for c in t.columns if c.required} - {"ingested_at", "event_id"}
        for name in required:
            field = record.model_fields[name]
            assert field.is_required() or name == "is_critical", f"{record.TABLE}.{name} is NOT NULL but optional in the record"


def test_everything_transpiles_to_duckdb_and_runs(tmp_path):
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    con.execute("SET TimeZone='UTC'")
    con.execute("CREATE SCHEMA custom_name")
    for _kind, name, ast in schema.iter_all():
        sql = schema.duckdb_sql(ast, "custom_name")
        assert "PARTITION BY DATE" not in sql and "CLUSTER BY" not in sql and "NOT ENFORCED" not in sql
        con.execute(sql)
        con.execute(f"SELECT * FROM custom_name.{name} LIMIT 0")


def _base_table_reads(select: exp.Select) -> list[exp.Table]:
    return [
        t for t in select.find_all(exp.Table)
        if t.name in TABLES and t.db == schema.CANONICAL_DATASET and t.find_ancestor(exp.Select) is select
    ]


def test_views_filter_base_tables_on_the_raw_partition_column():
    """BigQuery prunes partitions only when the filter is on the raw column (no casts)."""
    for view in schema.views():
        for select in view.ast.find_all(exp.Select):
            if not _base_table_reads(select):
                continue
            where = select.args.get("where")
            assert where is not None, f"{view.name} reads a table without WHERE"
            filters = [
                cmp for cmp in where.find_all(exp.GTE)
                if isinstance(cmp.this, exp.Column) and cmp.this.name == "event_ts" and cmp.expression.find(exp.TimestampSub)
            ]
            assert filters, f"{view.name}: no `event_ts >= TIMESTAMP_SUB(...)` filter on the base table"


def test_views_dedupe_by_event_id():
    """insertAll's insertId dedup is best effort: every view that reads a base table keeps one row per event_id."""
    for view in schema.views():
        for select in view.ast.find_all(exp.Select):
            if _base_table_reads(select):
                qualify = select.args.get("qualify")
                assert qualify is not None and "PARTITION BY event_id" in qualify.sql("bigquery"), view.name


def test_dataset_name_is_configurable_and_only_our_references_move():
    view = next(v for v in schema.views() if v.name == "vw_recent_failures")
    sql = schema.bigquery_sql(view.ast, "ops_audit", "acme-prod")
    assert "dagster_audit" not in sql
    assert "`acme-prod`.ops_audit.vw_entity_events" in sql
