"""The failing-rows sample: bounded, redacted, and its SQL safe to wrap (the real dbt path is in test_dbt.py)."""

from __future__ import annotations

import json
import logging

import duckdb

from dagster_monitoring.alerting.failing_rows import MASK, FailingRows, bound_rows
from dagster_monitoring.checks.dbt import _sample_failing_rows
from dagster_monitoring.checks.dbt_failing_rows import sample_query


def test_cells_columns_and_rows_are_bounded_and_the_caption_says_what_was_left_out() -> None:
    columns = [f"col_{i}" for i in range(9)]
    rows = [[f"r{r}-{'x' * 200}" for _ in columns] for r in range(20)]
    sample = bound_rows(columns, rows, total=20, max_rows=5, max_columns=6, max_cell=60, max_bytes=1500)
    assert sample.columns == columns[:6] and sample.hidden_columns == 3
    assert 1 <= len(sample.rows) <= 5 and all(len(v or "") <= 60 for row in sample.rows for v in row)
    assert len(json.dumps(sample.to_json(), ensure_ascii=False).encode()) <= 1500
    assert sample.caption == f"Failing rows ({len(sample.rows)} of 20, 3 more columns)"


def test_sensitive_columns_are_masked_and_secret_looking_values_redacted() -> None:
    sample = bound_rows(
        ["customer_id", "Password_Hash", "api_key", "note"],
        [["C-1", "5f4dcc3b", "sk-live-123", "see https://x.webhook.office.com/webhookb2/abc/IncomingWebhook/def/ghi"]],
    )
    [row] = sample.rows
    assert row[:3] == ["C-1", MASK, MASK]
    assert "webhookb2/abc" not in row[3]
    assert "5f4dcc3b" not in json.dumps(sample.to_json())


def test_nulls_stay_nulls_and_the_text_table_lines_up() -> None:
    sample = bound_rows(["loan_id", "principal_amount"], [["L-0999", None], ["L-1", 12.5]], total=2)
    assert sample.rows == [["L-0999", None], ["L-1", "12.5"]]
    assert sample.as_text().splitlines() == [
        "loan_id | principal_amount",
        "--------+-----------------",
        "L-0999  | NULL",
        "L-1     | 12.5",
    ]
    assert FailingRows.from_json(sample.to_json()) == sample
    assert FailingRows.from_json({"not": "a sample"}) is None


def test_the_wrapped_test_query_survives_a_trailing_comment_and_semicolon() -> None:
    sql, source = sample_query({"compiled_code": "select 1 as n -- the test\n;"}, 3) or ("", "")
    assert source == "test query"
    assert duckdb.sql(sql).fetchall() == [(1,)]
    assert sample_query({"relation_name": '"db"."audit"."not_null_x"', "compiled_code": "select 1"}, 3) == (
        'select * from "db"."audit"."not_null_x" limit 3',
        "stored failures",
    )
    assert sample_query({"compiled_code": ""}, 3) is None


class _Unreachable:
    """A dbt adapter whose warehouse went away after the run (the connection is refused)."""

    def connection_named(self, name: str):  # pragma: no cover - the context manager is entered
        raise ConnectionError("warehouse unreachable, password=hunter2")

    def cleanup_connections(self) -> None:
        pass


class _Invocation:
    adapter = _Unreachable()


def test_a_sampling_problem_is_logged_redacted_and_leaves_no_sample(caplog) -> None:
    log = logging.getLogger("test_failing_rows")
    with caplog.at_level(logging.WARNING):
        got = _sample_failing_rows(_Invocation(), [{"unique_id": "test.x", "compiled_code": "select 1"}], 5, log)  # type: ignore[arg-type]
    assert got == {}
    assert "could not read the failing rows of test.x" in caplog.text and "hunter2" not in caplog.text
    assert _sample_failing_rows(_Invocation(), [{"compiled_code": "select 1"}], 0, log) == {}  # type: ignore[arg-type]
