"""The BigQuery sink through the official google-cloud-bigquery client against the local
bqemulator (its own venv, built and started by the fixtures in tests/helpers/bigquery.py)."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid

import pytest
import sqlglot

from dagster_monitoring.audit import schema
from dagster_monitoring.audit.records import RunRecord
from dagster_monitoring.audit.sinks.bigquery import BigQuerySink, chunk_rows
from dagster_monitoring.audit.sinks.duckdb import DuckDBSink
from dagster_monitoring.audit.spool import Spool
from dagster_monitoring.audit.trail import AuditTrail

from ..helpers.bigquery import bq_client, bq_emulator, bq_emulator_factory, count_http_requests  # noqa: F401
from . import timeline as tl

VIEWS = [
    "vw_recent_failures",
    "vw_run_summary",
    "vw_failures_9d",
    "vw_dbt_test_results",
    "vw_flaky_checks",
    "vw_open_alerts",
    "vw_open_alert_receivers",
    "vw_entity_events",
]


def sink_on(emulator, client=None, **kwargs) -> BigQuerySink:
    dataset = f"audit_{uuid.uuid4().hex[:10]}"
    return BigQuerySink(dataset, project=emulator.project, client=client, api_endpoint=emulator.endpoint,
                        retry_deadline=kwargs.pop("retry_deadline", 3), timeout=kwargs.pop("timeout", 10), **kwargs)


def normalise(value):
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).replace(microsecond=0)
    return value


def view_rows(sink, view):
    columns, rows = sink.query_view(view)
    return sorted((tuple(normalise(v) for v in row) for row in rows), key=repr), columns


@pytest.fixture
def bq_sink(bq_emulator):  # noqa: F811
    sink = sink_on(bq_emulator)
    sink.init()
    yield sink
    sink.close()


def test_tables_are_created_partitioned_and_clustered(bq_sink):
    for table in schema.tables():
        sent = bq_sink.table_resource(table)
        assert sent.time_partitioning.type_ == "DAY" and sent.time_partitioning.field == "event_ts"
        assert sent.clustering_fields == list(table.cluster_columns)
        got = bq_sink.client.get_table(bq_sink.table_id(table.name))
        assert [f.name for f in got.schema] == list(table.column_names)
        assert got.time_partitioning is not None and got.time_partitioning.field == "event_ts"
        assert got.clustering_fields == list(table.cluster_columns)
    # the same DDL, as BigQuery would receive it, declares partitioning and clustering
    for table in schema.tables():
        ddl = sqlglot.parse_one(schema.bigquery_sql(table.ast, bq_sink.dataset), read="bigquery")
        props = {type(p).__name__ for p in ddl.args["properties"].expressions}
        assert {"PartitionedByProperty", "ClusterProperty"} <= props


def test_same_timeline_gives_the_same_view_results_as_duckdb(bq_sink, tmp_path):
    duck = DuckDBSink(tmp_path / "audit.duckdb")
    duck.init()
    for batch in (tl.before_recovery(), tl.dbt_in_dagster_failing()):
        bq_sink.write(batch)
        duck.write(batch)
    for view in VIEWS:  # mid-story: the dbt tests recorded both ways are failing, once each
        assert view_rows(bq_sink, view) == view_rows(duck, view), view
    for batch in (tl.recovery(), tl.dbt_in_dagster_fixed()):
        bq_sink.write(batch)
        duck.write(batch)
    for view in VIEWS:
        bq_rows, bq_cols = view_rows(bq_sink, view)
        duck_rows, duck_cols = view_rows(duck, view)
        assert bq_cols == duck_cols, view
        assert bq_rows == duck_rows, view
    failing = {r[1]: r for r in view_rows(bq_sink, "vw_recent_failures")[0]}
    assert set(failing) == {"loans/fct_loans:row_count_ok", "unique_fct_loans_loan_id", f"stg_loans:{tl.WARN_DBT}"}
    assert failing[f"stg_loans:{tl.WARN_DBT}"][:3] == ("dbt_test", f"stg_loans:{tl.WARN_DBT}", "WARN")  # one row, the alert's severity


def test_views_keep_one_row_per_event_id_when_rows_arrive_twice(bq_sink):
    bq_sink.write(tl.before_recovery())
    bq_sink.write(tl.before_recovery())  # insertId dedup is not emulated (and best effort in BigQuery)
    raw = bq_sink.query(f"SELECT count(*) FROM `{bq_sink.table_id('runs')}`")[1][0][0]
    assert raw == 10  # the table holds both copies ...
    summary = {r[0]: r for r in view_rows(bq_sink, "vw_run_summary")[0]}
    assert summary["loans_daily"][2:4] == (2, 2)  # ... the views count each event once
    recent = {r[1]: r for r in view_rows(bq_sink, "vw_recent_failures")[0]}
    assert recent["loans_daily"][4] == 2  # failures_in_streak


def test_writes_are_batched_within_insertall_limits(bq_sink):
    records = tl.before_recovery() * 1  # 13 rows over 3 tables
    bq_sink.batch_rows = 2
    with count_http_requests(bq_sink.client) as log:
        result = bq_sink.write(records)
    # runs: 5 rows -> 3 requests, checks: 4 -> 2, dbt: 4 -> 2
    assert result.requests == 7 and log.by_path_suffix("/insertAll") == 7
    rows = [{"event_id": str(i), "blob": "x" * 1000} for i in range(50)]
    assert [len(c) for c in chunk_rows(rows, max_rows=500, max_bytes=10_000)] == [9, 9, 9, 9, 9, 5]


def test_a_stopped_emulator_spools_and_the_restart_recovers_with_no_loss(bq_emulator_factory, tmp_path):  # noqa: F811
    emulator = bq_emulator_factory.start(persistent=True)
    sink = sink_on(emulator, retry_deadline=1, timeout=3)
    sink.init()
    trail = AuditTrail(sink, Spool(tmp_path / "spool"))
    assert trail.write(tl.before_recovery()[:5]).spooled == 0

    emulator.stop()  # the sink goes down mid-run
    down = trail.write(tl.before_recovery()[5:])
    assert down.spooled == 8 and trail.spool.pending_rows() == 8
    also_down = trail.write(tl.recovery())
    assert also_down.spooled == 2

    emulator.start()
    back = trail.flush()
    assert back.replayed == 10 and trail.spool.pending_rows() == 0
    counts = {t: sink.query(f"SELECT count(DISTINCT event_id) FROM `{sink.table_id(t)}`")[1][0][0]
              for t in ("runs", "asset_check_evaluations", "dbt_test_results")}
    assert counts == {"runs": 6, "asset_check_evaluations": 4, "dbt_test_results": 5}
    failing = {r[1] for r in view_rows(sink, "vw_recent_failures")[0]}
    assert failing == {"loans/fct_loans:row_count_ok", "unique_fct_loans_loan_id"}


def test_json_and_timestamps_round_trip(bq_sink):
    bq_sink.write(tl.before_recovery())
    cols, rows = bq_sink.query(
        f"SELECT tags, event_ts FROM `{bq_sink.table_id('runs')}` WHERE run_id = 'r2'")
    tags, ts = rows[0]
    assert (json.loads(tags) if isinstance(tags, str) else tags) == {"team": "data-eng"}
    assert ts == tl.at(2)


def test_the_cli_prints_the_same_rows_in_the_same_order_on_bigquery_and_duckdb(bq_emulator, tmp_path):  # noqa: F811
    """`audit query` runs one ORDER BY per view, transpiled like the views: both sinks agree row for row."""
    from click.testing import CliRunner

    from dagster_monitoring.cli import main
    from dagster_monitoring.config import load_config

    bq_config = tmp_path / "bq.yaml"
    bq_config.write_text(
        f"audit:\n  backend: bigquery\n  project: {bq_emulator.project}\n  dataset: audit_{uuid.uuid4().hex[:10]}\n"
        f"  api_endpoint: {bq_emulator.endpoint}\n  spool_dir: {tmp_path / 'bq_spool'}\n"
    )
    duck_config = tmp_path / "duck.yaml"
    duck_config.write_text(f"audit:\n  duckdb_path: {tmp_path / 'a.duckdb'}\n  spool_dir: {tmp_path / 'spool'}\n")
    runner = CliRunner()
    records = tl.before_recovery() + tl.dbt_in_dagster_failing() + tl.recovery()
    for config in (bq_config, duck_config):
        assert runner.invoke(main, ["audit", "init", "--config", str(config)]).exit_code == 0
        trail = AuditTrail.from_config(load_config(str(config)).audit)
        assert trail.write(records).spooled == 0
        trail.sink.close()

    def printed(config, *args):
        result = runner.invoke(main, ["audit", "query", *args, "--config", str(config)])
        assert result.exit_code == 0, result.output
        return result.output

    for view in VIEWS:
        bq_rows = json.loads(printed(bq_config, view, "--format", "json", "--limit", "0"))
        duck_rows = json.loads(printed(duck_config, view, "--format", "json", "--limit", "0"))
        rounded = lambda rows: [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows]  # noqa: E731
        assert rounded(bq_rows) == rounded(duck_rows), view  # in order, not sorted
        assert printed(bq_config, view) == printed(duck_config, view), view
    recent = json.loads(printed(bq_config, "vw_recent_failures", "--format", "json"))
    assert [r["severity"] for r in recent] == ["CRITICAL", "CRITICAL", "ERROR", "WARN"]


def test_external_job_runs_give_the_same_views_as_duckdb(bq_sink, tmp_path):
    duck = DuckDBSink(tmp_path / "audit.duckdb")
    duck.init()
    views = ["vw_recent_failures", "vw_run_summary", "vw_failures_9d", "vw_entity_events", "vw_external_job_runs"]
    for batch in (tl.before_recovery(), tl.external_failing()):
        bq_sink.write(batch)
        duck.write(batch)
    for view in views:
        assert view_rows(bq_sink, view) == view_rows(duck, view), view
    failing = {(r[0], r[1]) for r in view_rows(bq_sink, "vw_recent_failures")[0]}
    assert {("fivetran", "warehouse_pg"), ("dbt_cloud", "daily build")} <= failing
    bq_sink.write(tl.external_recovered())
    duck.write(tl.external_recovered())
    for view in views:
        assert view_rows(bq_sink, view) == view_rows(duck, view), view
    failing = {(r[0], r[1]) for r in view_rows(bq_sink, "vw_recent_failures")[0]}
    assert ("fivetran", "warehouse_pg") not in failing and ("dbt_cloud", "daily build") in failing


def test_open_incidents_rebuild_the_same_from_bigquery_and_duckdb(bq_sink, tmp_path):
    """What a lost state DB is rebuilt from (vw_open_alerts, vw_open_alert_receivers) reads the same
    on the emulator as on DuckDB, from the decisions of a real router with two receivers."""
    from dagster_monitoring.audit.alert_records import attach_audit, decision_records, delivery_records
    from dagster_monitoring.audit.restore import open_incidents

    from ..faults.test_state_restore import _config
    from ..helpers.factories import SimClock, make_event, make_router

    duck = AuditTrail(DuckDBSink(tmp_path / "audit.duckdb"), Spool(tmp_path / "spool-duck"))
    big = AuditTrail(bq_sink, Spool(tmp_path / "spool-bq"))
    clock = SimClock(dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=2))
    router = make_router(_config(tmp_path, flap_window="15m"), clock)
    attach_audit(router, duck)
    decided, delivered = router.on_decision, router.on_delivery
    assert decided is not None and delivered is not None

    def decisions_to_both(decisions):
        decided(decisions)
        big.write(decision_records(decisions))

    def deliveries_to_both(outcomes):
        delivered(outcomes)
        big.write(delivery_records(outcomes))

    router.on_decision, router.on_delivery = decisions_to_both, deliveries_to_both
    router.process([make_event("loans_daily", at=clock(), run_id="run-6"), make_event("partner_file", at=clock())])
    router.process(
        [make_event("loans_daily", at=clock.advance(minutes=5), run_id="run-7"), make_event("partner_file", "passing", at=clock())]
    )
    router.wait_idle(10)
    router.store.dispose()
    run = RunRecord(  # the failing run's row: owners, link and error of the rebuilt event
        event_ts=clock(), run_id="run-7", job_name="loans_daily", status="FAILURE", error_class="ValueError",
        error_message="boom", owners="team:loans", run_url="http://dagster.example/runs/run-7",
    )
    for trail in (duck, big):
        trail.write([run])

    def shape(states):
        return sorted(
            (s.fingerprint, s.incident_id, s.phase.value, s.consecutive_failures, s.flaps, s.severity,
             *(normalise(t) for t in (s.first_failed_at, s.last_failed_at, s.last_success_at, s.resolving_since, s.last_seen_at)),
             sorted((name, m.transition.value, normalise(m.notified_at)) for name, m in s.receivers.items()),
             s.last_event and (s.last_event.owners, dict(s.last_event.links), dict(s.last_event.details), s.last_event.run_id))
            for s in states
        )

    from_duckdb = shape(open_incidents(duck.sink))
    assert from_duckdb == shape(open_incidents(bq_sink))
    assert [(row[0], row[2]) for row in from_duckdb] == [("dagster:run:loans_daily", "failing"), ("dagster:run:partner_file", "resolving")]
    assert from_duckdb[0][3] == 2 and [r[0] for r in from_duckdb[0][-2]] == ["mail", "teams"]
    assert from_duckdb[1][-4] == normalise(clock())  # resolving since the passing run
    # loans_daily's last failure is run-7's
    assert from_duckdb[0][-1] == (("team:loans",), {"run": "http://dagster.example/runs/run-7"}, {"error": "ValueError: boom"}, "run-7")
    assert from_duckdb[1][-1] == ((), {}, {}, None)
