"""AWS job runs as alert events: EventBridge state changes of Glue, Step Functions, AppFlow and DataSync.

EventBridge rules (in each account, or forwarded to one bus from every account) send these
events to an SQS queue, read by a Dagster sensor (:func:`drain`), or to the Lambda handler
(:mod:`.aws_lambda`). Both normalise with :func:`eventbridge_event`:

============================================  ============================  ==========================================
detail-type                                   fingerprint                   status
============================================  ============================  ==========================================
Glue Job State Change                         aws_glue:job_run:<job>        SUCCEEDED pass; FAILED, TIMEOUT, ERROR fail
Glue Job Run Status                           aws_glue:job_run:<job>        a run past its notify delay: failing, WARN
Step Functions Execution Status Change        aws_stepfunctions:execution:  SUCCEEDED pass; FAILED, TIMED_OUT fail
                                              <state machine name>
AppFlow End Flow Run Report                   aws_appflow:flow_run:<flow>   "Execution Successful" pass; failed fail
DataSync Task Execution State Change          aws_datasync:task_execution:  SUCCESS pass; ERROR fail
                                              <task name or id>
============================================  ============================  ==========================================

Every other status (STARTING, RUNNING, STOPPED, ABORTED, a cancelled flow) says nothing about
health and is dropped; so are other detail types. Account and region go to the details and the
tags (``aws/account``, ``aws/region``), and every alert links the run in the AWS console.

SQS is at-least-once: :func:`drain` deletes a message only once the router has committed its
event (a crash before that redelivers it after the visibility timeout). A redelivered event is
the same event (same time, same run): the router ignores it as already seen, and the audit row
has the same ``event_id``. A body that is not an EventBridge event can never be read and is
deleted with a warning (it would otherwise come back until the queue's redrive policy moves it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from ..alerting.events import AlertEvent, Status
from ..alerting.redact import get_logger
from ..alerting.router import RouterResult
from ._common import external_job, first_text, iso, parse_time
from .config import AwsEventBridgeSourceConfig

_log = get_logger(__name__)

GLUE_STATE = "Glue Job State Change"
GLUE_RUN_STATUS = "Glue Job Run Status"
SFN_STATUS = "Step Functions Execution Status Change"
APPFLOW_END = "AppFlow End Flow Run Report"
DATASYNC_EXECUTION = "DataSync Task Execution State Change"
DETAIL_TYPES = (GLUE_STATE, GLUE_RUN_STATUS, SFN_STATUS, APPFLOW_END, DATASYNC_EXECUTION)


class EventUnreadable(ValueError):
    """A body that is not an EventBridge event, or one of ours without what it must carry."""


def _console(region: str, service: str, fragment: str) -> str:
    return f"https://{region}.console.aws.amazon.com/{service}/home?region={region}#{fragment}"


def _millis(value: Any) -> datetime | None:
    """Step Functions dates: epoch milliseconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return parse_time(value) if isinstance(value, str) else None
    return datetime.fromtimestamp(value / 1000, timezone.utc)


def _appflow_time(value: Any) -> datetime | None:
    """AppFlow's ``2021-03-24T21:40:32.105Z[UTC]`` (a Java zoned time)."""
    return parse_time(value.split("[", 1)[0]) if isinstance(value, str) else None


def _count(value: Any) -> int | None:
    """AppFlow sends its numbers as strings (``"8"``)."""
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class _Run:
    """What one event says, before it becomes an AlertEvent."""

    source: str
    kind: str
    entity: str
    job_id: str
    run_id: str | None
    status: str  # succeeded | failed | delayed
    state: str  # the service's own word
    message: str | None
    started: datetime | None
    finished: datetime | None
    link: tuple[str, str]
    facts: dict[str, Any] = field(default_factory=dict)
    at: datetime | None = None  # the status's own time, when the detail has one


def _glue(detail: Mapping[str, Any], region: str, long_running: bool) -> _Run | None:
    job, run_id = first_text(detail.get("jobName")), first_text(detail.get("jobRunId"))
    if job is None:
        raise EventUnreadable("Glue event without detail.jobName")
    state = str(detail.get("state") or "").upper()
    if long_running:
        status = "delayed"
    elif state == "SUCCEEDED":
        status = "succeeded"
    elif state in ("FAILED", "TIMEOUT", "ERROR"):
        status = "failed"
    else:
        return None
    fragment = f"/job/{quote(job, safe='')}/run/{run_id}" if run_id else f"/editor/job/{quote(job, safe='')}/runs"
    condition = detail.get("notificationCondition")
    delay = condition.get("NotifyDelayAfter") if isinstance(condition, Mapping) else None
    return _Run(
        source="aws_glue",
        kind="job_run",
        entity=job,
        job_id=job,
        run_id=run_id,
        status=status,
        state=state or "RUNNING",
        message=first_text(detail.get("message")),
        started=parse_time(detail.get("startedOn")),
        finished=None,
        link=("aws_glue_run", _console(region, "gluestudio", fragment)),
        facts={"Notify delay (min)": delay, "Glue severity": detail.get("severity")},
    )


def _step_functions(detail: Mapping[str, Any], region: str) -> _Run | None:
    machine_arn, execution_arn = first_text(detail.get("stateMachineArn")), first_text(detail.get("executionArn"))
    if machine_arn is None or execution_arn is None:
        raise EventUnreadable("Step Functions event without detail.stateMachineArn / executionArn")
    state = str(detail.get("status") or "").upper()
    if state == "SUCCEEDED":
        status = "succeeded"
    elif state in ("FAILED", "TIMED_OUT"):
        status = "failed"
    else:
        return None  # RUNNING, ABORTED (someone stopped it), PENDING_REDRIVE
    machine = machine_arn.rsplit(":", 1)[-1]
    error, cause = first_text(detail.get("error")), first_text(detail.get("cause"))
    message = f"{error}: {cause}" if error and cause else (error or cause)
    finished = _millis(detail.get("stopDate"))
    return _Run(
        source="aws_stepfunctions",
        kind="execution",
        entity=machine,
        job_id=machine_arn,
        run_id=first_text(detail.get("name")) or execution_arn.rsplit(":", 1)[-1],
        status=status,
        state=state,
        message=message if status == "failed" else None,
        started=_millis(detail.get("startDate")),
        finished=finished,
        link=("aws_stepfunctions_execution", _console(region, "states", f"/v2/executions/details/{execution_arn}")),
        facts={"Execution ARN": execution_arn},
        at=finished,
    )


def _appflow(detail: Mapping[str, Any], region: str) -> _Run | None:
    flow = first_text(detail.get("flow-name"))
    if flow is None:
        raise EventUnreadable("AppFlow event without detail.flow-name")
    state = str(detail.get("status") or "")
    lowered = state.lower()
    if "success" in lowered:
        status = "succeeded"
    elif "fail" in lowered or "error" in lowered:
        status = "failed"
    else:
        return None  # cancelled, or a status this version does not know
    failed_records = _count(detail.get("num-of-records-failed"))
    message = first_text(detail.get("error-message"), detail.get("errorMessage")) if status == "failed" else None
    finished = _appflow_time(detail.get("end-time"))
    return _Run(
        source="aws_appflow",
        kind="flow_run",
        entity=flow,
        job_id=first_text(detail.get("flow-arn")) or flow,
        run_id=first_text(detail.get("execution-id")),
        status=status,
        state=state,
        message=message,
        started=_appflow_time(detail.get("start-time")),
        finished=finished,
        link=("aws_appflow_flow", _console(region, "appflow", f"/details/{quote(flow, safe='')}?tab=runHistory")),
        facts={
            "Records processed": _count(detail.get("num-of-records-processed")),
            "Records failed": failed_records,
            "Records filtered": _count(detail.get("num-of-records-filtered")),
            "Source": first_text(detail.get("source")),
            "Destination": first_text(detail.get("destination")),
            "Trigger": first_text(detail.get("trigger-type")),
        },
        at=finished,
    )


def _datasync(event: Mapping[str, Any], detail: Mapping[str, Any], region: str, names: Mapping[str, str]) -> _Run | None:
    arn = next((r for r in event.get("resources") or () if isinstance(r, str) and "/execution/" in r), None)
    if arn is None:
        raise EventUnreadable("DataSync event without the execution ARN in resources")
    state = str(detail.get("State") or detail.get("state") or "").upper()
    if state == "SUCCESS":
        status = "succeeded"
    elif state == "ERROR":
        status = "failed"
    else:
        return None  # QUEUED, LAUNCHING, PREPARING, TRANSFERRING, VERIFYING, CANCELLING
    task_part, _, execution_id = arn.partition("/execution/")
    task_id = task_part.rsplit("/", 1)[-1]
    return _Run(
        source="aws_datasync",
        kind="task_execution",
        entity=names.get(task_id, task_id),
        job_id=task_id,
        run_id=execution_id,
        status=status,
        state=state,
        message=first_text(detail.get("ErrorDetail"), detail.get("ErrorCode")) if status == "failed" else None,
        started=None,
        finished=None,
        link=("aws_datasync_execution", _console(region, "datasync", f"/history/{task_id}/{execution_id}")),
        facts={"Execution ARN": arn},
    )


def eventbridge_event(event: Mapping[str, Any], config: AwsEventBridgeSourceConfig) -> AlertEvent | None:
    """The alert event an EventBridge event means; None for statuses and detail types that say
    nothing about health, or an account not in ``accounts``. Raises :class:`EventUnreadable`."""
    if not isinstance(event, Mapping) or not isinstance(event.get("detail-type"), str):
        raise EventUnreadable("not an EventBridge event (no detail-type)")
    kind = event["detail-type"]
    if kind not in DETAIL_TYPES:
        return None
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise EventUnreadable(f"{kind}: no detail object")
    account, region = str(event.get("account") or ""), str(event.get("region") or config.region or "us-east-1")
    if config.accounts and account not in config.accounts:
        return None
    at = parse_time(event.get("time"))
    if at is None:
        raise EventUnreadable(f"{kind}: 'time' is not an ISO 8601 time")
    if kind in (GLUE_STATE, GLUE_RUN_STATUS):
        run = _glue(detail, region, long_running=kind == GLUE_RUN_STATUS)
    elif kind == SFN_STATUS:
        run = _step_functions(detail, region)
    elif kind == APPFLOW_END:
        run = _appflow(detail, region)
    else:
        run = _datasync(event, detail, region, config.datasync_task_names)
    if run is None:
        return None
    return _alert(run, config, run.at or at, account, region, str(event.get("id") or ""))


_LABELS = {
    "aws_glue": ("AWS Glue job", "Open the job run in AWS Glue Studio, read its error and logs, fix and rerun the job"),
    "aws_stepfunctions": (
        "Step Functions state machine",
        "Open the execution in the Step Functions console, find the failed state and its error, fix and redrive or restart it",
    ),
    "aws_appflow": (
        "AppFlow flow",
        "Open the flow's run history in Amazon AppFlow, read the error, fix the connection or mapping and run it again",
    ),
    "aws_datasync": (
        "DataSync task",
        "Open the task execution in AWS DataSync, read its error, fix the location or permissions and start the task again",
    ),
}


def _alert(run: _Run, config: AwsEventBridgeSourceConfig, at: datetime, account: str, region: str, event_id: str) -> AlertEvent:
    label, action = _LABELS[run.source]
    failing = run.status != "succeeded"
    why = f": {run.message}" if run.message else ""
    if run.status == "delayed":
        summary = f"{label} still running: {run.entity}{why}"
    elif failing:
        summary = f"{label} failed: {run.entity} ({run.state}){why}"
    else:
        summary = f"{label} succeeded: {run.entity}"
    details: dict[str, Any] = {  # the order cards show them in (the first five)
        "Status": run.state,
        "Message": run.message,
        "Run id": run.run_id,
        "Account": account or None,
        "Region": region,
        "Started": iso(run.started),
        "Finished": iso(run.finished),
        **run.facts,
        "EventBridge id": event_id or None,
    }
    details.update(
        external_job(
            source=run.source,
            job_id=run.job_id,
            job_name=run.entity,
            run_id=run.run_id,
            status=run.status,
            started_at=run.started,
            finished_at=run.finished or (at if run.status != "delayed" else None),
            message=run.message,
            via="eventbridge",
            account=account or None,
            region=region,
        )
    )
    return AlertEvent(
        source=run.source,
        kind=run.kind,
        entity=run.entity,
        status=Status.FAILING if failing else Status.PASSING,
        severity=config.long_running_severity if run.status == "delayed" else config.severity,
        occurred_at=at,
        summary=summary,
        details={k: v for k, v in details.items() if v is not None and v != ""},
        owners=config.owners,
        tags={**config.tags, "aws/account": account, "aws/region": region},
        links=dict([run.link]),
        run_id=run.run_id,
        next_action=f"{action}; the alert recovers on the next successful run." if failing else None,
    )


def lambda_events(payload: Mapping[str, Any]) -> list[tuple[str | None, Any]]:
    """(message id, EventBridge event) pairs from a Lambda invocation: an SQS-triggered event
    (``{"Records": [{"messageId", "body"}]}``, each body an EventBridge event as JSON) or a direct
    EventBridge target event. A body that is not JSON is passed on as ``None`` (unreadable)."""
    records = payload.get("Records") if isinstance(payload, Mapping) else None
    if isinstance(records, list):
        out: list[tuple[str | None, Any]] = []
        for record in records:
            body = record.get("body") if isinstance(record, Mapping) else None
            try:
                out.append((record.get("messageId"), json.loads(body) if isinstance(body, str) else body))
            except ValueError:
                out.append((record.get("messageId"), None))
        return out
    return [(None, payload)]


def normalise(items: Sequence[Any], config: AwsEventBridgeSourceConfig) -> tuple[list[AlertEvent], int, int]:
    """Events for what says something about health; counts of ignored and unreadable bodies."""
    events: list[AlertEvent] = []
    ignored = unreadable = 0
    for item in items:
        try:
            event = eventbridge_event(item, config)
        except EventUnreadable as exc:
            unreadable += 1
            _log.warning("aws_eventbridge: message dropped, unreadable: %s", exc)
            continue
        if event is None:
            ignored += 1
        else:
            events.append(event)
    return events, ignored, unreadable


# -- SQS -------------------------------------------------------------------------------------


class SqsQueue:
    """The queue through boto3 (imported here, when a queue is read): receive and delete in batches of 10."""

    def __init__(self, config: AwsEventBridgeSourceConfig, *, client: Any = None) -> None:
        if config.queue_url is None:
            raise ValueError("sources.aws_eventbridge: reading SQS needs queue_url")
        self.config = config
        self.url = config.queue_url
        self.client = client if client is not None else _sqs_client(config)

    def receive(self, wait_seconds: int) -> list[dict[str, Any]]:
        reply = self.client.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds, MessageSystemAttributeNames=["ApproximateReceiveCount"]
        )
        return list(reply.get("Messages") or ())

    def delete(self, receipts: Sequence[str]) -> int:
        """Delete by receipt handle; returns how many SQS refused (they come back: at-least-once)."""
        failed = 0
        for start in range(0, len(receipts), 10):
            chunk = receipts[start : start + 10]
            reply = self.client.delete_message_batch(
                QueueUrl=self.url, Entries=[{"Id": str(i), "ReceiptHandle": handle} for i, handle in enumerate(chunk)]
            )
            failed += len(reply.get("Failed") or ())
        return failed


def _sqs_client(config: AwsEventBridgeSourceConfig) -> Any:
    import boto3  # the `aws` extra
    from botocore.config import Config

    kwargs: dict[str, Any] = {
        "region_name": config.region,
        "endpoint_url": config.endpoint_url,
        "config": Config(connect_timeout=config.timeout.total_seconds(), read_timeout=config.timeout.total_seconds() + 20),
    }
    if config.aws_access_key_id is not None and config.aws_secret_access_key is not None:
        kwargs["aws_access_key_id"] = config.aws_access_key_id.get_secret_value()
        kwargs["aws_secret_access_key"] = config.aws_secret_access_key.get_secret_value()
        if config.aws_session_token is not None:
            kwargs["aws_session_token"] = config.aws_session_token.get_secret_value()
    return boto3.client("sqs", **kwargs)


@dataclass
class DrainResult:
    received: int = 0
    events: int = 0
    failing: int = 0
    ignored: int = 0
    unreadable: int = 0
    deleted: int = 0
    delete_failed: int = 0
    notifications: int = 0


def drain(
    queue: SqsQueue,
    config: AwsEventBridgeSourceConfig,
    ingest: Callable[[list[AlertEvent]], RouterResult],
    *,
    batch_messages: int = 100,
) -> DrainResult:
    """Read the queue until it is empty or ``max_messages_per_tick`` are read; route every
    ``batch_messages`` messages in one commit, and delete them only after it. ``ingest`` raising
    (the state DB is down) leaves the batch in the queue and propagates."""
    result = DrainResult()
    wait = config.wait_time_seconds
    while result.received < config.max_messages_per_tick:
        batch: list[dict[str, Any]] = []
        while len(batch) < batch_messages and result.received + len(batch) < config.max_messages_per_tick:
            messages = queue.receive(wait)
            if not messages:
                break
            batch.extend(messages)
            wait = 0  # only the first call of a tick waits
        if not batch:
            break
        result.received += len(batch)
        bodies = []
        for message in batch:
            try:
                bodies.append(json.loads(message.get("Body") or ""))
            except ValueError:
                bodies.append(None)
        events, ignored, unreadable = normalise(bodies, config)
        routed = ingest(events)  # committed: now they may go
        result.events += len(events)
        result.failing += sum(1 for e in events if e.is_failing)
        result.ignored += ignored
        result.unreadable += unreadable
        result.notifications += len(routed.notifications)
        receipts = [m["ReceiptHandle"] for m in batch if m.get("ReceiptHandle")]
        refused = queue.delete(receipts)
        result.deleted += len(receipts) - refused
        result.delete_failed += refused
        if len(batch) < batch_messages:
            break
    return result
