"""Metadata as plain values: a dlt asset's TableSchema (a Dagster record, which refuses
iteration) once crashed the audit sensor's json.dumps."""

import json

import dagster as dg

from dagster_monitoring.sensors._status_changes import metadata_values


def test_table_schema_and_nested_values_become_json():
    schema = dg.TableSchema(columns=[dg.TableColumn("loan_id", "text"), dg.TableColumn("amount", "decimal")])
    plain = metadata_values({
        "dagster/column_schema": dg.MetadataValue.table_schema(schema),
        "rows": dg.MetadataValue.int(12),
        "tags": {"a": ("x", "y")},
    })
    assert [c["name"] for c in plain["dagster/column_schema"]["columns"]] == ["loan_id", "amount"]
    assert plain["rows"] == 12 and plain["tags"] == {"a": ["x", "y"]}
    assert json.loads(json.dumps(plain)) == plain
