"""The BI export from a real DuckDB audit trail (and the BigQuery emulator): files read back with
pyarrow and compared with the views, the schema pinned (and documented), the real schedule and
job idempotent per slot, the CLI, invalid export config failing at load naming the field."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import fsspec
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from dagster_monitoring import build_monitoring_defs
from dagster_monitoring.alerting.config import ConfigError
from dagster_monitoring.audit.read import read_view
from dagster_monitoring.audit.sinks.bigquery import BigQuerySink
from dagster_monitoring.audit.spool import Spool
from dagster_monitoring.audit.trail import AuditTrail
from dagster_monitoring.cli import main
from dagster_monitoring.config import config_from_dict
from dagster_monitoring.report.export import EXPORT_TABLES, export_audit

from ..audit import timeline as tl
from ..helpers.bigquery import bq_emulator  # noqa: F401
from . import story

REPO = Path(__file__).resolve().parents[2]
T = "timestamp[us, tz=UTC]"
# The exported columns and their Arrow types, pinned: changing one is a deliberate, documented act.
PINNED = {
    "runs": [
        ("event_id", "string"), ("event_ts", T), ("run_id", "string"), ("job_name", "string"), ("code_location", "string"),
        ("status", "string"), ("partition_key", "string"), ("started_at", T), ("ended_at", T), ("duration_s", "double"),
        ("error_class", "string"), ("error_message", "string"), ("owners", "string"), ("run_url", "string"), ("tags", "string"),
        ("ingested_at", T),
    ],
    "asset_check_evaluations": [
        ("event_id", "string"), ("event_ts", T), ("run_id", "string"), ("job_name", "string"), ("asset_key", "string"),
        ("check_name", "string"), ("passed", "bool"), ("severity", "string"), ("blocking", "bool"), ("description", "string"),
        ("owners", "string"), ("run_url", "string"), ("metadata", "string"), ("ingested_at", T),
    ],
    "dbt_test_results": [
        ("event_id", "string"), ("event_ts", T), ("invocation_id", "string"), ("run_id", "string"), ("unique_id", "string"),
        ("test_name", "string"), ("model", "string"), ("status", "string"), ("failures", "int64"), ("message", "string"),
        ("is_critical", "bool"), ("tags", "string"), ("execution_time_s", "double"), ("compiled_path", "string"),
        ("owners", "string"), ("run_url", "string"), ("ingested_at", T),
    ],
    "external_job_runs": [
        ("event_id", "string"), ("event_ts", T), ("source", "string"), ("job_id", "string"), ("job_name", "string"),
        ("run_id", "string"), ("status", "string"), ("failed", "bool"), ("severity", "string"), ("started_at", T),
        ("finished_at", T), ("duration_s", "double"), ("message", "string"), ("fingerprint", "string"), ("owners", "string"),
        ("run_url", "string"), ("via", "string"), ("account", "string"), ("region", "string"), ("details", "string"),
        ("ingested_at", T),
    ],
}  # fmt: skip
DOC_TYPES = {"string": "string", T: "timestamp (µs, UTC)", "int64": "int64", "double": "float64", "bool": "boolean"}
END = story.NOW + timedelta(minutes=1)


def files(fs, root: str, table: str, date: str) -> tuple:
    base = f"{root.rstrip('/')}/{table}/export_date={date}"
    with fs.open(f"{base}/part.parquet", "rb") as fh:
        parquet = pq.read_table(fh)
    with fs.open(f"{base}/part.csv", "rb") as fh:
        text = fh.read().decode("utf-8")
    return parquet, list(csv.DictReader(io.StringIO(text))), next(csv.reader(io.StringIO(text)))


def records():
    """The report's story plus external jobs (Fivetran, dbt Cloud), so every exported table has rows."""
    return story.records() + tl.external_failing() + tl.external_recovered()


@pytest.fixture(scope="module")
def trail(story_trail):
    assert story_trail.write(tl.external_failing() + tl.external_recovered()).spooled == 0
    return story_trail


@pytest.fixture(scope="module")
def exported(trail, tmp_path_factory):
    out = tmp_path_factory.mktemp("bi") / "exports"
    result = export_audit(trail.sink, str(out), days=30, end=END)
    fs = fsspec.filesystem("file")
    return result, {t: files(fs, str(out), t, result.export_date) for t in EXPORT_TABLES}, out


def test_schema_is_pinned_and_documented(exported):
    _, tables, _ = exported
    doc = (REPO / "docs" / "bi_export.md").read_text(encoding="utf-8")
    for table, (parquet, _rows, header) in tables.items():
        assert [(f.name, str(f.type)) for f in parquet.schema] == PINNED[table], table
        assert header == [c for c, _ in PINNED[table]], table
        section = doc.split(f"### `{table}`", 1)[1].split("###", 1)[0]
        documented = re.findall(r"^\| `(\w+)` \| ([^|]+?) \|", section, flags=re.M)
        assert [(c, t.replace(" (JSON text)", "")) for c, t in documented] == [(c, DOC_TYPES[t]) for c, t in PINNED[table]], table


def test_export_matches_the_audit_views(exported, trail):
    result, tables, out = exported
    sink = trail.sink
    assert result.export_date == END.strftime("%Y-%m-%d")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("part.*")) == sorted(
        f"{t}/export_date={result.export_date}/part.{f}" for t in EXPORT_TABLES for f in ("csv", "parquet")
    )
    assert not list(out.rglob("*.tmp"))
    for table in EXPORT_TABLES:  # every row of the trail's tables (all inside 30 days), once
        columns, rows = read_view(sink, table)
        parquet, csv_rows, _ = tables[table]
        assert parquet.num_rows == len(rows) == len(csv_rows) == result.rows[table] > 0, table
        assert sorted(parquet.column("event_id").to_pylist()) == sorted(r[columns.index("event_id")] for r in rows)
    runs = tables["runs"][0].to_pylist()
    # vw_run_summary's runs and failures per job, from the files
    cols, summary = read_view(sink, "vw_run_summary")
    for job in ("ingest_loans", "nightly_export", "healthy_job"):
        mine = [r for r in summary if r[cols.index("job_name")] == job]
        assert sum(r[cols.index("runs")] for r in mine) == sum(1 for r in runs if r["job_name"] == job)
        assert sum(r[cols.index("failures")] for r in mine) == sum(1 for r in runs if r["job_name"] == job and r["status"] == "FAILURE")
    failing = [r for r in runs if r["status"] == "FAILURE"]
    assert [r["error_message"] for r in failing] == [story.HOSTILE, story.HOSTILE]
    assert all(r["event_ts"].tzinfo is not None and r["event_ts"].utcoffset() == timedelta(0) for r in runs)
    # vw_dbt_test_results: the latest status of the critical test is the newest row of the file
    cols, dbt_view = read_view(sink, "vw_dbt_test_results")
    dbt_rows = sorted(tables["dbt_test_results"][0].to_pylist(), key=lambda r: r["event_ts"])
    assert dbt_view[0][cols.index("status")] == dbt_rows[-1]["status"] == "fail"
    assert [r["status"] for r in dbt_rows] == ["pass", "pass", "fail"] and dbt_rows[-1]["is_critical"] is True
    # vw_external_job_runs: the Fivetran connector's latest status and failures, from the file
    cols, ext_view = read_view(sink, "vw_external_job_runs")
    ext = tables["external_job_runs"][0].to_pylist()
    for row in ext_view:
        mine = sorted((r for r in ext if r["job_name"] == row[cols.index("job_name")]), key=lambda r: r["event_ts"])
        assert mine[-1]["status"] == row[cols.index("last_status")]
        assert sum(r["failed"] for r in mine) == row[cols.index("failures_9d")]
    assert json.loads(next(r["details"] for r in ext if r["source"] == "dbt_cloud"))  # JSON text, not a nested type


def test_csv_is_power_bi_friendly(exported):
    _, tables, _ = exported
    _, checks, _ = tables["asset_check_evaluations"]
    assert {r["passed"] for r in checks} == {"true", "false"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", r["event_ts"]) for r in checks)
    assert all(r["blocking"] == "" for r in checks)  # NULL: an empty field
    _, runs, _ = tables["runs"]
    assert sum(r["error_message"] == story.HOSTILE for r in runs) == 2  # quoted text round-trips


def schedule_config(trail, url: str, **export) -> dict:
    spool = Path(trail.spool.directory)
    return {
        "state": {"path": str(spool.parent / f"state-{uuid.uuid4().hex[:6]}.db")},
        "audit": {"duckdb_path": str(trail.sink.path), "spool_dir": str(spool)},
        "export": {"url": url, **export},
    }


def test_the_schedule_exports_once_per_slot(trail):
    url = f"memory://bi-{uuid.uuid4().hex[:8]}/audit"
    defs = build_monitoring_defs(config_from_dict(schedule_config(trail, url, days=7)))
    schedule = defs.resolve_schedule_def("dagster_monitoring_export_schedule")
    assert schedule.cron_schedule == "0 6 * * 1" and schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    job = defs.resolve_job_def("dagster_monitoring_export")
    fs = fsspec.filesystem("memory")
    slot = END.replace(second=0, microsecond=0)
    with dg.instance_for_test() as instance:

        def tick(at: datetime) -> None:
            data = schedule.evaluate_tick(dg.build_schedule_context(instance=instance, scheduled_execution_time=at))
            (request,) = data.run_requests or []
            assert request.run_key == at.isoformat()
            assert job.execute_in_process(run_config=request.run_config, tags=request.tags, instance=instance).success

        for _ in range(3):  # the tick, a retried tick, a re-executed run: one slot, the same files
            tick(slot)
        date = slot.strftime("%Y-%m-%d")
        parts = sorted(p for p in fs.find(url) if "part." in p)
        assert len(parts) == 2 * len(EXPORT_TABLES) and all(f"export_date={date}" in p for p in parts)
        runs, _, _ = files(fs, url, "runs", date)
        assert runs.num_rows == 7 * 5  # 7 days × 5 runs, once, however often the slot ran
        tick(slot - timedelta(days=7))  # the week before: its own partition
        earlier, _, _ = files(fs, url, "runs", (slot - timedelta(days=7)).strftime("%Y-%m-%d"))
        assert 0 < earlier.num_rows < runs.num_rows


def test_cli_exports_the_last_days(trail, tmp_path):
    cfg = tmp_path / "monitoring.yaml"
    import yaml

    settings = schedule_config(trail, str(tmp_path / "unused"))
    del settings["export"]
    cfg.write_text(yaml.safe_dump(settings))
    out = tmp_path / "cli-export"
    since = datetime.now(timezone.utc) - timedelta(days=3)
    expected = sum(1 for r in story.records() if r.TABLE == "runs" and r.event_ts >= since)
    result = CliRunner().invoke(main, ["export", "--out", str(out), "--days", "3", "--format", "parquet", "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    written = [line for line in result.stdout.splitlines() if line]
    assert len(written) == len(EXPORT_TABLES) and all(line.endswith("part.parquet") for line in written)
    runs = pq.read_table(next(p for p in written if "/runs/" in p))
    assert runs.num_rows == expected > 0
    missing = CliRunner().invoke(main, ["export", "--out", str(out)], env={"DAGSTER_HOME": str(tmp_path / "nohome")})
    assert missing.exit_code == 1 and "no audit trail" in missing.output


@pytest.mark.parametrize(
    ("export", "field"),
    [
        ({"url": "nosuch://bucket/x"}, "export.url"),
        ({"url": "./x", "cron": "every monday"}, "export.cron"),
        ({"url": "./x", "formats": ["xlsx"]}, "export.formats"),
        ({"url": "./x", "days": 0}, "export.days"),
        ({"url": "./x", "tables": ["alert_notifications"]}, "export.tables"),
    ],
)
def test_invalid_export_config_fails_at_load(export, field):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"export": export})
    assert field in str(err.value)


def test_the_export_reads_the_same_rows_from_the_bigquery_emulator(bq_emulator, trail, exported):  # noqa: F811
    sink = BigQuerySink(
        f"export_{uuid.uuid4().hex[:10]}", project=bq_emulator.project, api_endpoint=bq_emulator.endpoint, retry_deadline=3, timeout=30
    )
    sink.init()
    try:
        bq = AuditTrail(sink, Spool(Path(trail.spool.directory).parent / f"bq-spool-{uuid.uuid4().hex[:6]}"))
        rows = records()
        assert bq.write(rows).spooled == 0
        assert bq.write(rows[:5]).spooled == 0  # streamed twice (a replay): still once in the export
        url = f"memory://bq-{uuid.uuid4().hex[:8]}"
        result = export_audit(sink, url, days=30, end=END)
        _, duck_tables, _ = exported
        fs = fsspec.filesystem("memory")
        for table in EXPORT_TABLES:
            parquet, csv_rows, _ = files(fs, url, table, result.export_date)
            duck, duck_csv, _ = duck_tables[table]
            assert parquet.schema == duck.schema, table
            keep = [c for c in parquet.column_names if c != "ingested_at"]
            assert parquet.select(keep).to_pylist() == duck.select(keep).to_pylist(), table
            assert [{k: r[k] for k in keep} for r in csv_rows] == [{k: r[k] for k in keep} for r in duck_csv], table
    finally:
        sink.close()
