"""The AWS EventBridge sensor ticked like the daemon ticks it, reading real SQS messages from
moto in server mode through boto3, with the audit trail on (DuckDB)."""

from __future__ import annotations

import dagster as dg
import pytest

from dagster_monitoring.audit.sinks.duckdb import DuckDBSink
from dagster_monitoring.config import config_from_dict
from dagster_monitoring.runtime import MonitoringRuntime
from dagster_monitoring.sensors.sources import build_aws_eventbridge_sensor

from ..sources import aws_events as ev
from ..sources.test_aws import monitoring, sent

pytest.importorskip("moto")


@pytest.fixture
def sqs():
    with ev.MotoSqs() as queue:
        yield queue


def test_the_sqs_sensor_end_to_end_glue_fails_repeats_recovers_with_audit_rows(tmp_path, sqs, instance):
    runtime = MonitoringRuntime(config_from_dict(monitoring(tmp_path, sqs.queue_url, sqs.endpoint)))
    sensor = build_aws_eventbridge_sensor(runtime=runtime, client=sqs.client)
    tick = lambda: sensor(dg.build_sensor_context(instance=instance)).skip_message  # noqa: E731
    audit = DuckDBSink(tmp_path / "audit.duckdb")

    def failing_entities():
        return {(r[0], r[1]) for r in audit.query("SELECT entity_type, entity FROM dagster_audit.vw_recent_failures")[1]}

    sqs.send(ev.glue_state("RUNNING", ev.ts(7.98), "jr_1"), ev.glue_state("FAILED", ev.ts(8), "jr_1"))
    assert "2 message(s), 1 event(s), 1 failing, 1 ignored" in tick()
    assert sent(tmp_path) == [("new", "nightly_orders")] and sqs.depth() == 0  # deleted once committed
    assert failing_entities() == {("aws_glue", "nightly_orders")}

    failed_again = ev.glue_state("FAILED", ev.ts(9), "jr_2")
    sqs.send(failed_again, failed_again)  # EventBridge / SQS delivered it twice
    tick()
    assert sent(tmp_path) == [("new", "nightly_orders")]  # repeats suppressed
    sqs.send(ev.glue_state("SUCCEEDED", ev.ts(10), "jr_3"))
    tick()
    assert sent(tmp_path) == [("new", "nightly_orders"), ("recovered", "nightly_orders")]
    assert failing_entities() == set()
    rows = audit.query("SELECT source, job_name, run_id, status, account, region FROM dagster_audit.external_job_runs ORDER BY event_ts")[1]
    assert rows == [
        ("aws_glue", "nightly_orders", "jr_1", "failed", ev.ACCOUNT, ev.REGION),
        ("aws_glue", "nightly_orders", "jr_2", "failed", ev.ACCOUNT, ev.REGION),  # one row for the doubled delivery
        ("aws_glue", "nightly_orders", "jr_3", "succeeded", ev.ACCOUNT, ev.REGION),
    ]
    assert "0 message(s)" in tick()
    assert {b.name for b in runtime.router.store.heartbeats()} == {"dagster_monitoring_aws_eventbridge"}


def test_the_drop_in_adds_the_sensor_only_with_a_queue(tmp_path):
    from dagster_monitoring import build_monitoring_defs

    with_queue = config_from_dict(monitoring(tmp_path, "https://sqs.eu-west-1.amazonaws.com/123456789012/q", audit=False))
    without = config_from_dict(monitoring(tmp_path, audit=False))  # Lambda only
    assert "dagster_monitoring_aws_eventbridge" in {s.name for s in build_monitoring_defs(with_queue).sensors}
    assert "dagster_monitoring_aws_eventbridge" not in {s.name for s in build_monitoring_defs(without).sensors}
