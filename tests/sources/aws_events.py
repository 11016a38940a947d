"""EventBridge events as AWS documents them (Glue, Step Functions, AppFlow, DataSync), and a moto
server in server mode (a real local HTTP endpoint on a free port) with an SQS queue."""

from __future__ import annotations

import json
import socket
import uuid
from typing import Any

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
REGION = "eu-west-1"


def _envelope(detail_type: str, source: str, time: str, detail: dict[str, Any], resources=(), account=ACCOUNT) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{detail_type}{time}{json.dumps(detail, sort_keys=True)}")),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": time,
        "region": REGION,
        "resources": list(resources),
        "detail": detail,
    }


def glue_state(state: str, time: str, run_id: str, job: str = "nightly_orders", account=ACCOUNT) -> dict[str, Any]:
    message = {
        "FAILED": f"JobName:{job} and JobRunId:{run_id} failed to execute with exception Table orders_raw not found",
        "SUCCEEDED": "Job run succeeded",
        "TIMEOUT": "Job run timed out",
    }.get(state, "")
    return _envelope(
        "Glue Job State Change",
        "aws.glue",
        time,
        {"jobName": job, "severity": "ERROR" if state != "SUCCEEDED" else "INFO", "state": state, "jobRunId": run_id, "message": message},
        account=account,
    )


def glue_run_status(time: str, run_id: str, job: str = "nightly_orders") -> dict[str, Any]:
    return _envelope(
        "Glue Job Run Status",
        "aws.glue",
        time,
        {
            "jobName": job,
            "severity": "INFO",
            "notificationCondition": {"NotifyDelayAfter": 60.0},
            "state": "RUNNING",
            "jobRunId": run_id,
            "message": f"Job is running for 60 minutes. JobName:{job} and JobRunId:{run_id}",
            "startedOn": "2026-11-25T07:00:00.000Z",
        },
    )


def step_functions(status: str, start_ms: int, stop_ms: int | None, execution: str, time: str) -> dict[str, Any]:
    machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:loan-ingest"
    execution_arn = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:loan-ingest:{execution}"
    detail: dict[str, Any] = {
        "executionArn": execution_arn,
        "stateMachineArn": machine,
        "name": execution,
        "status": status,
        "startDate": start_ms,
        "stopDate": stop_ms,
        "input": "{}",
        "inputDetails": {"included": True},
        "output": None,
        "outputDetails": None,
    }
    if status == "FAILED":
        detail.update(error="States.TaskFailed", cause="Lambda function loan-transform raised KeyError: 'principal'")
    return _envelope("Step Functions Execution Status Change", "aws.states", time, detail, resources=[execution_arn])


def appflow_end(status: str, time: str, execution_id: str, records: str = "1250", failed: str = "0") -> dict[str, Any]:
    detail = {
        "flow-name": "salesforce-accounts",
        "created-by": f"arn:aws:sts::{ACCOUNT}:assumed-role/data-eng/ana",
        "flow-arn": f"arn:aws:appflow:{REGION}:{ACCOUNT}:flow/salesforce-accounts",
        "source": "SALESFORCE/Account",
        "destination": "S3",
        "source-object": "Account",
        "destination-object": "s3://lake-raw/salesforce",
        "trigger-type": "SCHEDULED",
        "num-of-records-processed": records,
        "execution-id": execution_id,
        "num-of-records-filtered": "0",
        "start-time": "2026-11-25T06:00:00.105Z[UTC]",
        "num-of-records-failed": failed,
        "end-time": time.replace("Z", ".593Z[UTC]"),
        "data-processed": "231044",
        "status": status,
    }
    if "Fail" in status:
        detail["error-message"] = "The connection to Salesforce expired; refresh the connection"
    return _envelope("AppFlow End Flow Run Report", "aws.appflow", time, detail, resources=[detail["flow-arn"]])


DATASYNC_TASK = "task-0c5b2a8e6e7d1f3a4"


def datasync(state: str, time: str, execution: str) -> dict[str, Any]:
    arn = f"arn:aws:datasync:{REGION}:{ACCOUNT}:task/{DATASYNC_TASK}/execution/{execution}"
    return _envelope("DataSync Task Execution State Change", "aws.datasync", time, {"State": state}, resources=[arn])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoSqs:
    """moto in server mode on a free port, with one queue; ``send(event)`` puts a real message."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> MotoSqs:
        import boto3

        self.server.start()
        self.client = boto3.client(
            "sqs", region_name=REGION, endpoint_url=self.endpoint, aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        self.queue_url = self.client.create_queue(
            QueueName=f"dagster-monitoring-{uuid.uuid4().hex[:8]}", Attributes={"VisibilityTimeout": "30"}
        )["QueueUrl"]
        return self

    def __exit__(self, *exc: object) -> None:
        import requests

        requests.post(f"{self.endpoint}/moto-api/reset", timeout=10)  # moto's backends are per process
        self.server.stop()

    def send(self, *events: dict[str, Any]) -> None:
        for start in range(0, len(events), 10):
            entries = [{"Id": str(i), "MessageBody": json.dumps(e)} for i, e in enumerate(events[start : start + 10])]
            self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)

    def depth(self) -> int:
        attrs = self.client.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def ts(hour: float) -> str:
    """Yesterday at ``hour`` UTC as EventBridge writes it: inside every audit view's window."""
    from datetime import datetime, timedelta, timezone

    day = (datetime.now(timezone.utc) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (day + timedelta(hours=hour)).strftime("%Y-%m-%dT%H:%M:%SZ")
