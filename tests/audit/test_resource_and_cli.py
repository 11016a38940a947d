"""AuditResource inside a real Dagster materialization, and the audit CLI."""


import csv
import io
import json
from datetime import datetime, timezone

import dagster as dg
import duckdb
import pytest
from click.testing import CliRunner

from dagster_monitoring.audit import schema
from dagster_monitoring.audit.records import AssetMaterializationRecord
from dagster_monitoring.audit.resource import AuditResource
from dagster_monitoring.audit.sinks.base import AuditSinkError
from dagster_monitoring.audit.sinks.duckdb import DuckDBSink
from dagster_monitoring.cli import LAYOUTS, main

from . import timeline as tl


def test_resource_writes_from_a_real_asset_and_env_var_secrets_resolve(tmp_path, monkeypatch):
    monkeypatch.setenv("DM_AUDIT_PATH", str(tmp_path / "audit.duckdb"))

    @dg.asset
    def loans(context: dg.AssetExecutionContext, audit: AuditResource) -> None:
        record = AssetMaterializationRecord.build(
            event_ts=datetime.now(timezone.utc), run_id=context.run.run_id, asset_key="loans", row_count=42, metadata={"source": "test"}
        )
        result = audit.get_trail().write([record])
        assert result.inserted == 1

    resource = AuditResource(duckdb_path=dg.EnvVar("DM_AUDIT_PATH"), spool_dir=str(tmp_path / "spool"))
    assert dg.materialize([loans], resources={"audit": resource}, instance=dg.DagsterInstance.ephemeral()).success
    trail = AuditResource(duckdb_path=str(tmp_path / "audit.duckdb")).get_trail()
    assert trail.sink.query("SELECT asset_key, row_count FROM dagster_audit.asset_materializations")[1] == [("loans", 42)]


def duckdb_config(tmp_path, name="a.duckdb"):
    config = tmp_path / "m.yaml"
    config.write_text(f"audit:\n  duckdb_path: {tmp_path / name}\n  spool_dir: {tmp_path / 'spool'}\n")
    return config


def query(config, *args):
    result = CliRunner().invoke(main, ["audit", "query", *args, "--config", str(config)])
    return result


SEVERITY_RANK = {"CRITICAL": 0, "ERROR": 1, "WARN": 2}
LONG_ERROR = "negative principal on loan 1187 " + "x" * 300 + " END"


def write_story(tmp_path, config):
    assert CliRunner().invoke(main, ["audit", "init", "--config", str(config)]).exit_code == 0
    trail = AuditResource(duckdb_path=str(tmp_path / "a.duckdb")).get_trail()
    long_run = tl.run("r9", "a_job_whose_name_is_rather_long_for_a_terminal", "FAILURE", 5, 10, LONG_ERROR)
    trail.write(tl.before_recovery() + tl.dbt_in_dagster_failing() + [long_run])
    return long_run


def test_cli_init_and_query(tmp_path):
    config = duckdb_config(tmp_path)
    result = CliRunner().invoke(main, ["audit", "init", "--config", str(config)])
    assert result.exit_code == 0 and "7 tables, 9 views" in result.output

    trail = AuditResource(duckdb_path=str(tmp_path / "a.duckdb")).get_trail()
    trail.write(tl.before_recovery())
    result = query(config, "vw_recent_failures", "--limit", "10")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["type", "entity", "severity", "failing", "since", "streak", "owners", "last", "error"]
    assert any(line.startswith("job") and "loans_daily" in line and "ValueErr" in line for line in lines)
    assert lines[-1] == "(4 rows, times in UTC)"

    bad = query(config, "vw_nope")
    assert bad.exit_code == 2 and "unknown view 'vw_nope'" in bad.output and "'vw_recent_failures'" in bad.output


def test_table_fits_100_characters_worst_and_oldest_first(tmp_path):
    config = duckdb_config(tmp_path)
    write_story(tmp_path, config)
    result = query(config, "vw_recent_failures")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 100
    rows = lines[2:-1]
    severities = [next(w for w in line.split() if w in SEVERITY_RANK) for line in rows]
    since = [line[line.index(sev) + len(sev):].split()[:2] for line, sev in zip(rows, severities)]
    assert [(SEVERITY_RANK[s], d) for s, d in zip(severities, since)] == sorted((SEVERITY_RANK[s], d) for s, d in zip(severities, since))
    assert severities == ["CRITICAL", "CRITICAL", "ERROR", "ERROR", "ERROR", "ERROR", "WARN"]
    assert since[0] == tl.at(2).strftime("%Y-%m-%d %H:%M").split()  # to the minute, no seconds, no offset
    long_row = next(line for line in rows if line.startswith("job") and "a_job_whose" in line)
    assert "…" in long_row and "END" not in long_row  # the error is cut to fit, with an ellipsis
    assert query(config, "vw_recent_failures").output == result.output  # the same order every time


def test_wide_json_and_csv_carry_full_values(tmp_path):
    config = duckdb_config(tmp_path)
    long_run = write_story(tmp_path, config)

    wide = query(config, "vw_recent_failures", "--wide")
    assert wide.exit_code == 0, wide.output
    header = wide.output.splitlines()[0].split()
    assert header[:4] == ["entity_type", "entity", "severity", "failing_since"] and "last_run_url" in header
    assert f"ValueError: {LONG_ERROR}" in wide.output and tl.at(5).strftime("%Y-%m-%d %H:%M:%S") in wide.output

    as_json = query(config, "vw_recent_failures", "--format", "json")
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.output)
    job = next(r for r in rows if r["entity"] == long_run.job_name)
    assert job["last_error"] == f"ValueError: {LONG_ERROR}" and job["last_run_url"] == tl.URL + "r9"
    assert datetime.fromisoformat(job["failing_since"]) == tl.at(5) and job["failing_since"].endswith("+00:00")
    assert job["failures_in_streak"] == 1 and job["last_success_at"] is None
    assert [r["severity"] for r in rows] == sorted((r["severity"] for r in rows), key=SEVERITY_RANK.get)

    as_csv = query(config, "vw_recent_failures", "--format", "csv")
    assert as_csv.exit_code == 0, as_csv.output
    records = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert [r["entity"] for r in records] == [r["entity"] for r in rows]  # same order
    row = next(r for r in records if r["entity"] == long_run.job_name)
    assert row["last_error"] == job["last_error"] and row["failing_since"] == job["failing_since"]
    assert row["last_success_at"] == "" and row["failures_in_streak"] == "1"


def test_limit_says_when_rows_were_left_out(tmp_path):
    config = duckdb_config(tmp_path)
    write_story(tmp_path, config)
    table = query(config, "vw_recent_failures", "--limit", "2")
    assert table.output.splitlines()[-1] == "(2 rows, times in UTC; more rows: raise --limit (0: all))"
    as_json = query(config, "vw_recent_failures", "--limit", "2", "--format", "json")
    assert len(json.loads(as_json.stdout)) == 2 and "the first 2 rows" in as_json.stderr
    everything = query(config, "vw_recent_failures", "--limit", "0", "--format", "json")
    assert len(json.loads(everything.stdout)) == 7 and everything.stderr == ""


def test_query_on_a_home_without_a_trail_says_so_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(main, ["audit", "query", "vw_recent_failures"])
    assert result.exit_code == 1
    expected = tmp_path / "home" / "dagster_monitoring" / "audit.duckdb"
    assert f"no audit trail at {expected}: run the demo or `dagster-monitoring audit init`" in result.output
    assert not (tmp_path / "home").exists()  # not even the folder

    config = duckdb_config(tmp_path, "nested/a.duckdb")
    result = query(config, "vw_run_summary", "--format", "json")
    assert result.exit_code == 1 and f"audit init --config {config}`" in result.output
    assert not (tmp_path / "nested").exists()
    with pytest.raises(AuditSinkError, match="no audit trail at"):
        DuckDBSink(tmp_path / "nested" / "a.duckdb").query_view("vw_run_summary")
    assert not (tmp_path / "nested").exists()


def test_a_trail_file_without_the_views_points_at_init(tmp_path):
    config = duckdb_config(tmp_path)
    duckdb.connect(str(tmp_path / "a.duckdb")).close()  # e.g. made by hand, or before the views existed
    result = query(config, "vw_recent_failures")
    assert result.exit_code == 1
    assert "cannot read vw_recent_failures from the audit trail at" in result.output
    assert f"`dagster-monitoring audit init --config {config}` creates what is missing" in result.output
    assert len(result.output.strip().splitlines()) == 1  # duckdb's marked-up query is left out


def test_every_view_has_a_layout_whose_columns_and_order_exist(tmp_path):
    """A new view must say how the CLI orders and shows it."""
    config = duckdb_config(tmp_path)
    write_story(tmp_path, config)
    assert set(LAYOUTS) == {v.name for v in schema.views()}
    sink = DuckDBSink(tmp_path / "a.duckdb")
    for view, layout in LAYOUTS.items():
        columns = sink.query(f"SELECT * FROM dagster_audit.{view} LIMIT 0")[0]
        assert {c for c, _ in layout.columns} <= set(columns), view
        assert set(layout.cut) <= {c for c, _ in layout.columns}, view
        result = query(config, view)
        assert result.exit_code == 0, (view, result.output)
        assert max(len(line) for line in result.output.splitlines()) <= 100, (view, result.output)
    table = query(config, "runs", "--format", "json", "--limit", "0")
    stamps = [r["event_ts"] for r in json.loads(table.output)]
    assert stamps == sorted(stamps, reverse=True)  # base tables: newest first


def test_bad_audit_config_is_named(tmp_path):
    config = tmp_path / "m.yaml"
    config.write_text("audit:\n  backend: duckdb\n  project: my-project\n  dataset: 'bad-name'\n")
    result = CliRunner().invoke(main, ["validate-config", str(config)])
    assert result.exit_code == 2
    assert "audit.dataset: use letters, digits and underscores" in result.output
