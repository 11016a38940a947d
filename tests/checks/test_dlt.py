"""dlt checks and audit records against real dlt loads into DuckDB, run through @dlt_assets and a real instance."""

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import dlt
import pytest
from dagster_dlt import DagsterDltResource, dlt_assets

from dagster_monitoring.audit.resource import AuditResource
from dagster_monitoring.audit.sinks.base import AuditSinkError
from dagster_monitoring.audit.spool import Spool
from dagster_monitoring.audit.trail import AuditTrail
from dagster_monitoring.checks.dlt import (
    ROW_COUNT_CHECK,
    SCHEMA_DRIFT_CHECK,
    Column,
    audit_dlt_load,
    build_dlt_checks,
    diff_columns,
    evaluate_row_count,
)
from dagster_monitoring.translator import (
    KIND_METADATA_KEY,
    NEXT_ACTION_METADATA_KEY,
    SOURCE_METADATA_KEY,
    DagsterAlertTranslator,
)

LOANS = dg.AssetKey("dlt_lending_loans")  # dagster-dlt's default key: dlt_<source>_<resource>


def loan_rows(n: int) -> list[dict[str, Any]]:
    return [{"loan_id": i, "principal": 1000 + i, "status": "open"} for i in range(n)]


def drifted_rows(n: int) -> list[dict[str, Any]]:
    """A new column (currency) and principal as text, which dlt cannot coerce to bigint."""
    return [{"loan_id": i, "principal": f"{1000 + i} EUR", "status": "open", "currency": "EUR"} for i in range(n)]


@dlt.source(name="lending")
def lending_source(rows: list[dict[str, Any]]) -> Any:
    return dlt.resource(rows, name="loans", write_disposition="append")


@dataclass
class Lending:
    """A dlt pipeline into DuckDB (dataset raw), its @dlt_assets and one persistent Dagster instance."""

    pipeline: Any
    instance: dg.DagsterInstance
    audit_path: Path
    spool_dir: Path
    batch: list[dict[str, Any]] = field(default_factory=list)

    @property
    def assets(self) -> dg.AssetsDefinition:
        pipeline, batch = self.pipeline, self.batch

        @dlt_assets(dlt_source=lending_source([]), dlt_pipeline=pipeline, name="lending")
        def lending(context: dg.AssetExecutionContext, dlt: DagsterDltResource, audit: AuditResource) -> Iterator[Any]:
            # a fresh source object per run (dagster#34052)
            yield from dlt.run(context=context, dlt_source=lending_source(list(batch)))
            audit_dlt_load(audit, pipeline, run_id=context.run.run_id, log=context.log)

        return lending

    def load(self, rows: list[dict[str, Any]], checks: Sequence[dg.AssetChecksDefinition] = ()) -> dg.ExecuteInProcessResult:
        self.batch[:] = rows
        resources = {"dlt": DagsterDltResource(), "audit": AuditResource(duckdb_path=str(self.audit_path), spool_dir=str(self.spool_dir))}
        result = dg.materialize([self.assets, *checks], instance=self.instance, resources=resources)
        assert result.success
        return result


@pytest.fixture
def lending(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lending]:
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    pipeline = dlt.pipeline(
        pipeline_name="lending",
        destination=dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb")),
        dataset_name="raw",
        pipelines_dir=str(tmp_path / "dlt"),
    )
    (tmp_path / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        yield Lending(pipeline, instance, tmp_path / "audit.duckdb", tmp_path / "spool")


def evaluations(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    found = {e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key == LOANS}
    assert found, "no check evaluation for dlt_lending_loans"
    return found


def values(evaluation: Any) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}


# -- real loads ---------------------------------------------------------------------------------


def test_first_load_is_the_baseline_then_an_added_and_a_type_changed_column_fail_the_drift_check(lending: Lending) -> None:
    checks = build_dlt_checks(lending.assets, min_rows=5)

    first = evaluations(lending.load(loan_rows(10), checks))
    assert first[SCHEMA_DRIFT_CHECK].passed and values(first[SCHEMA_DRIFT_CHECK])["drift_summary"] == "first load"
    assert first[ROW_COUNT_CHECK].passed and values(first[ROW_COUNT_CHECK])["rows_loaded"] == 10

    second = evaluations(lending.load(drifted_rows(10), checks))
    drift = second[SCHEMA_DRIFT_CHECK]
    meta = values(drift)
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN
    assert meta[SOURCE_METADATA_KEY] == "dlt" and meta[KIND_METADATA_KEY] == "schema_drift"
    assert meta["drift"] == {
        "added": [{"column": "currency", "type": "text"}],
        "removed": [],
        "type_changed": [{"column": "principal", "from": "bigint", "to": "text", "variant_column": "principal__v_text"}],
    }
    assert meta["drift_summary"] == "added: currency (text); type changed: principal bigint → text (principal__v_text)"
    assert "principal__v_text" in meta[NEXT_ACTION_METADATA_KEY] and "currency" in meta[NEXT_ACTION_METADATA_KEY]
    assert second[ROW_COUNT_CHECK].passed

    # what the alert sensor makes of it
    event = DagsterAlertTranslator().to_check_event(
        asset_key=LOANS, check_name=SCHEMA_DRIFT_CHECK, passed=False, severity=drift.severity,
        occurred_at=datetime.now(timezone.utc), metadata=meta, description=drift.description,
    )
    assert (event.source, event.kind, event.severity.value) == ("dlt", "schema_drift", "warn")
    assert event.next_action == meta[NEXT_ACTION_METADATA_KEY]
    assert event.details["drift_summary"] == meta["drift_summary"]

    # the same shape again is no drift: the alert recovers on the next load
    third = evaluations(lending.load(drifted_rows(10), checks))
    assert third[SCHEMA_DRIFT_CHECK].passed
    assert values(third[SCHEMA_DRIFT_CHECK])["drift"] == {"added": [], "removed": [], "type_changed": []}


def test_far_fewer_rows_fail_the_minimum_and_the_trailing_average(lending: Lending) -> None:
    checks = build_dlt_checks(lending.assets, min_rows=5, max_drop=0.5, trailing_loads=3, checks=("row_count",))

    lending.load(loan_rows(60), checks)  # the pipeline's first load: a backfill, left out of the average
    assert evaluations(lending.load(loan_rows(10), checks))[ROW_COUNT_CHECK].passed
    assert evaluations(lending.load(loan_rows(14), checks))[ROW_COUNT_CHECK].passed

    low = evaluations(lending.load(loan_rows(2), checks))[ROW_COUNT_CHECK]
    meta = values(low)
    assert not low.passed and low.severity == dg.AssetCheckSeverity.ERROR
    assert meta[SOURCE_METADATA_KEY] == "dlt" and meta[KIND_METADATA_KEY] == "row_count"
    assert (meta["rows_loaded"], meta["min_rows"], meta["trailing_average"], meta["drop_threshold"]) == (2, 5, 12.0, 6.0)
    assert meta["baseline_rows"] == [14, 10]
    assert "below the minimum of 5" in low.description
    assert "83% below the trailing average of 12.0 rows over 2 previous load(s) (allowed drop 50%)" in low.description
    assert meta[NEXT_ACTION_METADATA_KEY].startswith("Compare the 2 rows of this load of dlt_lending_loans")

    # dagster-dlt writes no rows_loaded for an empty load: it counts as 0, not as "unknown"
    empty = evaluations(lending.load([], checks))[ROW_COUNT_CHECK]
    assert not empty.passed and values(empty)["rows_loaded"] == 0


def test_probing_the_destination_reports_a_column_the_source_stopped_sending(lending: Lending) -> None:
    checks = build_dlt_checks(lending.assets, detect_removed_columns=True, checks=("schema_drift",))
    lending.load(loan_rows(10), checks)

    without_status = [{k: v for k, v in row.items() if k != "status"} for row in loan_rows(10)]
    drift = evaluations(lending.load(without_status, checks))[SCHEMA_DRIFT_CHECK]
    meta = values(drift)
    assert not drift.passed
    assert meta["drift"] == {
        "added": [], "removed": [{"column": "status", "type": "text", "reason": "no values in this load"}], "type_changed": [],
    }
    assert meta["columns_now"] == meta["columns_before"]  # dlt kept the column: only the data shows it
    assert meta["removed_columns_probe"].startswith("compared load(s)")


def test_dlt_loads_land_in_the_duckdb_audit_file_and_the_audit_never_fails_the_load(
    lending: Lending, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = lending.load(loan_rows(10))
    second = lending.load(drifted_rows(7))

    sink = AuditResource(duckdb_path=str(lending.audit_path)).get_trail().sink
    _, rows = sink.query(  # type: ignore[attr-defined]
        "SELECT pipeline_name, dataset_name, table_name, rows_loaded, run_id, load_id, schema_changes"
        " FROM dagster_audit.dlt_loads ORDER BY load_id"
    )
    assert [r[:5] for r in rows] == [
        ("lending", "raw", "loans", 10, first.run_id),
        ("lending", "raw", "loans", 7, second.run_id),
    ]
    assert rows[1][5] == lending.pipeline.last_trace.last_load_info.loads_ids[0]
    first_changes, second_changes = (json.loads(r[6]) for r in rows)
    assert {"loan_id", "principal", "status"} <= {c["column"] for c in first_changes["added"]}
    assert second_changes == {
        "added": [{"column": "currency", "type": "text"}],
        "removed": [],
        "type_changed": [{"column": "principal", "from": "bigint", "to": "text", "variant_column": "principal__v_text"}],
    }

    class DownSink:
        def write(self, records: Any) -> Any:
            raise AuditSinkError("warehouse unreachable")

    spooled = audit_dlt_load(AuditTrail(DownSink(), Spool(tmp_path / "spool_down")), lending.pipeline)  # type: ignore[arg-type]
    assert spooled is not None and spooled.spooled == 1

    class BrokenSink:
        def write(self, records: Any) -> Any:
            raise RuntimeError("driver bug")

    # Any sink failure, even a bug in a driver, is spooled (nothing lost) and logged; the load goes on.
    logger = logging.getLogger("test_dlt_audit")
    with caplog.at_level(logging.WARNING):
        broken = audit_dlt_load(AuditTrail(BrokenSink(), Spool(tmp_path / "spool_broken")), lending.pipeline, log=logger)  # type: ignore[arg-type]
    assert broken is not None and broken.spooled == 1
    assert "RuntimeError: driver bug" in caplog.text


# -- pure parts ---------------------------------------------------------------------------------


def _cols(*specs: tuple[str, str] | Column) -> dict[str, Column]:
    columns = [s if isinstance(s, Column) else Column(*s) for s in specs]
    return {c.qualified: c for c in columns}


@pytest.mark.parametrize(
    "previous, current, expected",
    [
        pytest.param(
            _cols(("id", "bigint")), _cols(("id", "bigint"), Column("id__v_text", "text", variant=True)),
            {"added": [], "removed": [], "type_changed": [{"column": "id", "from": "bigint", "to": "text", "variant_column": "id__v_text"}]},
            id="flagged variant",
        ),
        pytest.param(
            _cols(("amount", "bigint")), _cols(("amount", "bigint"), ("amount__v_double", "double")),
            {"added": [], "removed": [], "type_changed": [{"column": "amount", "from": "bigint", "to": "double", "variant_column": "amount__v_double"}]},
            id="variant by name",
        ),
        pytest.param(
            _cols(("amount", "bigint")), _cols(("amount", "decimal")),
            {"added": [], "removed": [], "type_changed": [{"column": "amount", "from": "bigint", "to": "decimal", "variant_column": None}]},
            id="same column, new type",
        ),
        pytest.param(
            _cols(("id", "bigint"), ("note", "text")), _cols(("id", "bigint")),
            {"added": [], "removed": [{"column": "note", "type": "text", "reason": "dropped from the dlt schema"}], "type_changed": []},
            id="dropped by a refresh",
        ),
        pytest.param(
            _cols(("id", "bigint")), _cols(("id", "bigint"), Column("sku", "text", table="loans__items")),
            {"added": [{"column": "loans__items.sku", "type": "text"}], "removed": [], "type_changed": []},
            id="new child-table column",
        ),
    ],
)
def test_diff_columns(previous: dict[str, Column], current: dict[str, Column], expected: dict[str, Any]) -> None:
    assert diff_columns(previous, current).as_json() == expected


@pytest.mark.parametrize(
    "rows, baseline, min_rows, max_drop, passed",
    [
        (0, [], None, 0.5, True),  # no baseline, no minimum: nothing to compare with
        (0, [], 1, None, False),
        (50, [100, 100], None, 0.5, True),  # exactly at the threshold
        (49, [100, 100], None, 0.5, False),
        (49, [100, 100], None, None, True),
        (3, [4, 4], 2, 0.5, True),
    ],
)
def test_evaluate_row_count(rows: int, baseline: list[int], min_rows: int | None, max_drop: float | None, passed: bool) -> None:
    verdict = evaluate_row_count(rows, baseline, min_rows=min_rows, max_drop=max_drop)
    assert verdict.passed is passed and bool(verdict.reasons) is not passed


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_drop": 5}, "max_drop must be a fraction between 0 and 1"),
        ({"trailing_loads": 0}, "trailing_loads must be a whole number of loads from 1 to 1000"),
        ({"min_rows": -1}, "min_rows must be a whole number of rows >= 0, got -1"),
        ({"min_rows": {"dlt_lending_payments": 5}}, "min_rows names asset(s) ['dlt_lending_payments'] that are not among the checked assets"),
        ({"max_drop": None}, "the row-count check needs min_rows or max_drop"),
        ({"checks": ("volume",)}, "checks must be a non-empty subset of ['row_count', 'schema_drift']"),
    ],
)
def test_bad_settings_are_named_at_build_time(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as err:
        build_dlt_checks([LOANS], **kwargs)
    assert message in str(err.value)


def test_wrong_types_are_type_errors_naming_the_argument() -> None:
    with pytest.raises(TypeError, match="drift_severity must be a dg.AssetCheckSeverity"):
        build_dlt_checks([LOANS], drift_severity="warn")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cannot use 42 as an asset"):
        build_dlt_checks([42])  # type: ignore[list-item]


def test_removed_column_detection_needs_the_dlt_assets_definition() -> None:
    with pytest.raises(ValueError, match=r"pass the definition instead of the key\(s\) \['dlt_lending_loans'\]"):
        build_dlt_checks([LOANS], detect_removed_columns=True)
    with pytest.raises(ValueError, match="no assets given"):
        build_dlt_checks([])
