"""AWS sources: the EventBridge normaliser for each service, the SQS sensor path through boto3
against moto in server mode, and the Lambda handler with the same events."""

from __future__ import annotations

import json

import pytest

from dagster_monitoring.alerting import Severity, Status
from dagster_monitoring.audit.sinks.duckdb import DuckDBSink
from dagster_monitoring.config import ConfigError, config_from_dict, load_config
from dagster_monitoring.sources import aws
from dagster_monitoring.sources.aws_lambda import LambdaApp

from . import aws_events as ev

pytest.importorskip("moto")


def source_config(**extra):
    data = {"owners": ["team:platform"], "region": ev.REGION, "datasync_task_names": {ev.DATASYNC_TASK: "lake-to-archive"}, **extra}
    return config_from_dict({"sources": {"aws_eventbridge": data}}).sources.aws_eventbridge


def monitoring(tmp_path, queue_url=None, endpoint=None, audit=True) -> dict:
    source = {"owners": ["team:platform"], "region": ev.REGION}
    if queue_url:
        source.update(queue_url=queue_url, endpoint_url=endpoint, wait_time_seconds=0)
    return {
        "receivers": [{"type": "file", "name": "file", "path": str(tmp_path / "alerts.jsonl")}],
        "routes": [{"receivers": ["file"]}],
        "policy": {"flap_window": "0s"},
        "state": {"path": str(tmp_path / "state.db")},
        "audit": {"duckdb_path": str(tmp_path / "audit.duckdb"), "spool_dir": str(tmp_path / "spool")} if audit else {"enabled": False},
        "sources": {"aws_eventbridge": source},
    }


def sent(tmp_path) -> list[tuple[str, str]]:
    path = tmp_path / "alerts.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(m["transition"], m["event"]["entity"]) for m in map(json.loads, lines)]


def test_glue_state_changes_and_the_long_running_signal():
    cfg = source_config()
    failed = aws.eventbridge_event(ev.glue_state("FAILED", "2026-11-25T08:00:00Z", "jr_1"), cfg)
    assert failed.fingerprint == "aws_glue:job_run:nightly_orders" and failed.status is Status.FAILING
    assert failed.summary.startswith("AWS Glue job failed: nightly_orders (FAILED): JobName:nightly_orders")
    assert failed.links == {
        "aws_glue_run": "https://eu-west-1.console.aws.amazon.com/gluestudio/home?region=eu-west-1#/job/nightly_orders/run/jr_1"
    }
    assert failed.tags["aws/account"] == ev.ACCOUNT and failed.tags["aws/region"] == ev.REGION
    assert failed.details["Account"] == ev.ACCOUNT and failed.details["external_job/account"] == ev.ACCOUNT
    assert failed.details["external_job/run_id"] == "jr_1" and failed.details["external_job/via"] == "eventbridge"
    late = aws.eventbridge_event(ev.glue_run_status("2026-11-25T08:00:00Z", "jr_2"), cfg)
    assert late.fingerprint == failed.fingerprint and late.severity is Severity.WARN and late.details["external_job/status"] == "delayed"
    assert late.summary.startswith("AWS Glue job still running: nightly_orders")
    assert aws.eventbridge_event(ev.glue_state("SUCCEEDED", "2026-11-25T09:00:00Z", "jr_3"), cfg).status is Status.PASSING
    assert aws.eventbridge_event(ev.glue_state("TIMEOUT", "2026-11-25T09:00:00Z", "jr_4"), cfg).status is Status.FAILING
    assert aws.eventbridge_event(ev.glue_state("RUNNING", "2026-11-25T09:00:00Z", "jr_5"), cfg) is None
    assert aws.eventbridge_event(ev.glue_state("STOPPED", "2026-11-25T09:00:00Z", "jr_6"), cfg) is None


def test_step_functions_appflow_and_datasync():
    cfg = source_config()
    sfn = aws.eventbridge_event(ev.step_functions("FAILED", 1795586400000, 1795586460000, "run-42", "2026-11-25T06:01:00Z"), cfg)
    assert sfn.fingerprint == "aws_stepfunctions:execution:loan-ingest" and sfn.run_id == "run-42"
    assert sfn.details["Message"] == "States.TaskFailed: Lambda function loan-transform raised KeyError: 'principal'"
    assert (
        sfn.details["external_job/started_at"] == "2026-11-25T06:00:00+00:00" and sfn.occurred_at.isoformat() == "2026-11-25T06:01:00+00:00"
    )
    assert (
        "executions/details/arn:aws:states:eu-west-1:123456789012:execution:loan-ingest:run-42" in sfn.links["aws_stepfunctions_execution"]
    )
    assert aws.eventbridge_event(ev.step_functions("RUNNING", 1795586400000, None, "run-43", "2026-11-25T06:00:00Z"), cfg) is None
    assert aws.eventbridge_event(ev.step_functions("ABORTED", 1795586400000, 1795586401000, "run-44", "2026-11-25T06:00:01Z"), cfg) is None

    flow_ok = aws.eventbridge_event(ev.appflow_end("Execution Successful", "2026-11-25T06:05:00Z", "e-1"), cfg)
    assert flow_ok.fingerprint == "aws_appflow:flow_run:salesforce-accounts" and flow_ok.status is Status.PASSING
    assert flow_ok.details["Records processed"] == 1250 and flow_ok.details["Records failed"] == 0  # strings on the wire
    assert flow_ok.details["external_job/finished_at"] == "2026-11-25T06:05:00+00:00"
    flow_bad = aws.eventbridge_event(ev.appflow_end("Execution Failed", "2026-11-25T07:05:00Z", "e-2", "0", "12"), cfg)
    assert flow_bad.status is Status.FAILING and flow_bad.details["Message"].startswith("The connection to Salesforce expired")

    sync = aws.eventbridge_event(ev.datasync("ERROR", "2026-11-25T06:00:00Z", "exec-0a1b2c3d4e5f67890"), cfg)
    assert sync.fingerprint == "aws_datasync:task_execution:lake-to-archive" and sync.run_id == "exec-0a1b2c3d4e5f67890"
    assert sync.links["aws_datasync_execution"].endswith(f"#/history/{ev.DATASYNC_TASK}/exec-0a1b2c3d4e5f67890")
    unnamed = aws.eventbridge_event(ev.datasync("SUCCESS", "2026-11-25T07:00:00Z", "exec-1"), source_config(datasync_task_names={}))
    assert unnamed.entity == ev.DATASYNC_TASK and unnamed.status is Status.PASSING
    assert aws.eventbridge_event(ev.datasync("TRANSFERRING", "2026-11-25T06:00:00Z", "exec-2"), cfg) is None


def test_other_accounts_other_events_and_unreadable_bodies():
    cfg = source_config(accounts=[ev.ACCOUNT])
    assert aws.eventbridge_event(ev.glue_state("FAILED", "2026-11-25T08:00:00Z", "jr_1", account=ev.OTHER_ACCOUNT), cfg) is None
    assert (
        aws.eventbridge_event({**ev.glue_state("FAILED", "2026-11-25T08:00:00Z", "jr_1"), "detail-type": "Glue Crawler State Change"}, cfg)
        is None
    )
    events, ignored, unreadable = aws.normalise(
        [{"hello": 1}, None, {**ev.datasync("ERROR", "2026-11-25T06:00:00Z", "x"), "resources": []}], cfg
    )
    assert (events, ignored, unreadable) == ([], 0, 3)


def test_invalid_config_fails_at_load_naming_the_field(tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    cases = {
        "queue_url: ftp://x\n    region: eu-west-1": "sources.aws_eventbridge.queue_url",
        "queue_url: https://sqs.eu-west-1.amazonaws.com/1/q": "region is required",
        "region: europe": "sources.aws_eventbridge.region",
        "accounts: ['12']": "sources.aws_eventbridge.accounts",
        "aws_access_key_id: {env: NO_SUCH_KEY}\n    aws_secret_access_key: x": "NO_SUCH_KEY",
        "quue_url: https://x": "quue_url",
    }
    for body, expected in cases.items():
        path = tmp_path / "m.yaml"
        path.write_text(f"sources:\n  aws_eventbridge:\n    {body}\n")
        with pytest.raises(ConfigError, match=expected.replace(".", r"\.")):
            load_config(path)


@pytest.fixture
def sqs():
    with ev.MotoSqs() as queue:
        yield queue


def test_messages_stay_in_the_queue_when_the_router_cannot_commit(tmp_path, sqs):
    cfg = config_from_dict(monitoring(tmp_path, sqs.queue_url, sqs.endpoint, audit=False)).sources.aws_eventbridge
    sqs.send(*[ev.step_functions("FAILED", 1795586400000, 1795586460000 + i, f"run-{i}", "2026-11-25T06:01:00Z") for i in range(12)])

    def broken(events):
        raise RuntimeError("state DB unavailable")

    queue = aws.SqsQueue(cfg, client=sqs.client)
    with pytest.raises(RuntimeError):
        aws.drain(queue, cfg, broken)
    assert sqs.depth() == 12  # in flight, back after the visibility timeout: nothing lost


def test_the_sqs_client_is_built_from_the_config(tmp_path, sqs, monkeypatch):
    monkeypatch.setenv("AWS_KEY", "testing")
    monkeypatch.setenv("AWS_SECRET", "testing")
    data = monitoring(tmp_path, sqs.queue_url, sqs.endpoint, audit=False)
    data["sources"]["aws_eventbridge"].update(aws_access_key_id={"env": "AWS_KEY"}, aws_secret_access_key={"env": "AWS_SECRET"})
    cfg = config_from_dict(data).sources.aws_eventbridge
    sqs.send(ev.datasync("ERROR", "2026-11-25T06:00:00Z", "exec-1"))
    seen = []
    done = aws.drain(aws.SqsQueue(cfg), cfg, lambda events: seen.extend(events) or _empty())
    assert (done.received, done.events, done.deleted) == (1, 1, 1) and seen[0].entity == ev.DATASYNC_TASK


def _empty():
    from dagster_monitoring.alerting.router import RouterResult

    return RouterResult()


def test_the_lambda_handler_takes_sqs_batches_and_direct_eventbridge_events(tmp_path):
    app = LambdaApp(config_from_dict(monitoring(tmp_path)))
    batch = {
        "Records": [
            {"messageId": "m1", "eventSource": "aws:sqs", "body": json.dumps(ev.glue_state("FAILED", "2026-11-25T08:00:00Z", "jr_1"))},
            {
                "messageId": "m2",
                "eventSource": "aws:sqs",
                "body": json.dumps(ev.appflow_end("Execution Failed", "2026-11-25T08:05:00Z", "e-1")),
            },
            {"messageId": "m3", "eventSource": "aws:sqs", "body": "not json"},
        ]
    }
    result = app(batch)
    assert (result["received"], result["events"], result["unreadable"], result["delivered"]) == (3, 2, 1, 2)
    assert result["batchItemFailures"] == []
    app(batch)  # SQS redelivered the batch: nothing new
    app(ev.glue_state("SUCCEEDED", "2026-11-25T09:00:00Z", "jr_2"))  # a direct EventBridge target event
    assert sent(tmp_path) == [("new", "nightly_orders"), ("new", "salesforce-accounts"), ("recovered", "nightly_orders")]
    audit = DuckDBSink(tmp_path / "audit.duckdb")
    assert audit.query("SELECT count(*) FROM dagster_audit.external_job_runs")[1] == [(3,)]


def test_the_lambda_entry_point_reads_its_config_from_the_environment(tmp_path, monkeypatch):
    import yaml

    from dagster_monitoring.sources import aws_lambda

    path = tmp_path / "monitoring.yaml"
    path.write_text(yaml.safe_dump(monitoring(tmp_path, audit=False)))
    monkeypatch.setenv(aws_lambda.CONFIG_ENV, str(path))
    aws_lambda._app_for.cache_clear()
    assert aws_lambda.handler(ev.datasync("ERROR", "2026-11-25T06:00:00Z", "exec-1"), None)["delivered"] == 1
    monkeypatch.delenv(aws_lambda.CONFIG_ENV)
    with pytest.raises(RuntimeError, match=aws_lambda.CONFIG_ENV):
        aws_lambda.handler({}, None)
