"""Poll sensors for external job systems: Fivetran connections, dbt Cloud job runs and the AWS events queue.

Thin on purpose: each tick calls the plain-Python poll (:mod:`dagster_monitoring.sources`),
hands its events to the runtime's source ingest (settle delay, then the router) and keeps what
the next poll needs in the sensor cursor (Fivetran: each connection's last status fields, to
name what changed; dbt Cloud: the run-id cursor per job). A rate limit or an outage of the API
skips the tick with its reason (held failures are still released, retries still delivered); a
refused credential fails the tick, so the watchdog alerts on it. Each tick records a heartbeat.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime, timezone
from typing import Any

import dagster as dg

from ..runtime import MonitoringRuntime
from ..sources import aws, dbt_cloud, elementary, fivetran
from ..sources._http import SourceApiError
from .heartbeat import monitoring_sensor


def _cursor(context: dg.SensorEvaluationContext) -> dict[str, Any]:
    try:
        data = json.loads(context.cursor) if context.cursor else {}
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def _poll_tick(
    context: dg.SensorEvaluationContext,
    runtime: MonitoringRuntime,
    label: str,
    poll: Callable[[dict[str, Any], datetime], tuple[list, dict]],
) -> dg.SkipReason:
    now = datetime.now(timezone.utc)
    cursor = _cursor(context)
    try:
        events, new_cursor = poll(cursor, now)
    except SourceApiError as exc:
        if not exc.retryable:
            raise
        runtime.source_ingest.tick()
        return dg.SkipReason(f"{label}: {exc}")
    result = runtime.source_ingest.ingest(events)
    context.update_cursor(json.dumps(new_cursor, separators=(",", ":")))
    failing = sum(1 for e in events if e.is_failing)
    return dg.SkipReason(
        f"{label}: {len(events)} event(s), {failing} failing; {len(result.notifications)} notification(s) queued, "
        f"{len(result.delivered)} delivered; {len(runtime.source_ingest.buffer.held())} failure(s) settling"
    )


def _api_poll_sensor(
    *,
    runtime: MonitoringRuntime,
    name: str,
    label: str,
    minimum_interval_seconds: int,
    default_status: dg.DefaultSensorStatus,
    description: str,
    make_client: Callable[[], Any],
    poll: Callable[[Any, dict[str, Any], datetime], tuple[list, dict]],
) -> dg.SensorDefinition:
    """The sensor both REST sources share: one client per process (made on the first tick, so a
    definition load makes no connection), ``poll(client, cursor, now)`` per tick."""
    holder: dict[str, Any] = {}

    def poll_once(cursor: dict[str, Any], now: datetime) -> tuple[list, dict]:
        client = holder.get("client") or holder.setdefault("client", make_client())
        return poll(client, cursor, now)

    @monitoring_sensor(
        runtime=runtime,
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=description,
        kind="sources",
    )
    def sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        return _poll_tick(context, runtime, label, poll_once)

    return sensor


def build_fivetran_sensor(
    *,
    runtime: MonitoringRuntime,
    name: str = "dagster_monitoring_fivetran",
    minimum_interval_seconds: int = 60,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
    client: fivetran.FivetranClient | None = None,
) -> dg.SensorDefinition:
    """Polls the configured Fivetran connections (``sources.fivetran`` with api_key / api_secret)."""
    config = runtime.config.sources.fivetran
    if config is None or not config.polls:
        raise ValueError(f"{name}: needs sources.fivetran with api_key and api_secret in the monitoring config")

    def poll(api: fivetran.FivetranClient, cursor: dict[str, Any], now: datetime) -> tuple[list, dict]:
        events, snapshots = fivetran.poll(api, config, now=now, snapshots=cursor.get("snapshots"))
        return events, {"snapshots": snapshots}

    return _api_poll_sensor(
        runtime=runtime,
        name=name,
        label="fivetran",
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Fivetran connection syncs to the alert router",
        make_client=lambda: client or fivetran.FivetranClient(config),
        poll=poll,
    )


def build_dbt_cloud_sensor(
    *,
    runtime: MonitoringRuntime,
    name: str = "dagster_monitoring_dbt_cloud",
    minimum_interval_seconds: int = 60,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
    client: dbt_cloud.DbtCloudClient | None = None,
) -> dg.SensorDefinition:
    """Polls dbt Cloud job runs (``sources.dbt_cloud`` with api_token)."""
    config = runtime.config.sources.dbt_cloud
    if config is None or not config.polls:
        raise ValueError(f"{name}: needs sources.dbt_cloud with api_token in the monitoring config")

    def poll(api: dbt_cloud.DbtCloudClient, cursor: dict[str, Any], now: datetime) -> tuple[list, dict]:
        events, cursors = dbt_cloud.poll(api, config, now=now, cursors=cursor.get("runs"))
        return events, {"runs": cursors}

    return _api_poll_sensor(
        runtime=runtime,
        name=name,
        label="dbt_cloud",
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="dbt Cloud job runs to the alert router",
        make_client=lambda: client or dbt_cloud.DbtCloudClient(config),
        poll=poll,
    )


def build_aws_eventbridge_sensor(
    *,
    runtime: MonitoringRuntime,
    name: str = "dagster_monitoring_aws_eventbridge",
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
    client: Any = None,
) -> dg.SensorDefinition:
    """Reads AWS job events from the SQS queue (``sources.aws_eventbridge.queue_url``); deletes
    each batch only once the router has committed it. ``client``: a boto3 SQS client to use."""
    config = runtime.config.sources.aws_eventbridge
    if config is None or not config.polls:
        raise ValueError(f"{name}: needs sources.aws_eventbridge with queue_url and region in the monitoring config")
    holder: dict[str, aws.SqsQueue] = {}

    @monitoring_sensor(
        runtime=runtime,
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="AWS Glue / Step Functions / AppFlow / DataSync events (EventBridge -> SQS) to the alert router",
        kind="sources",
    )
    def sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        queue = holder.get("queue") or holder.setdefault("queue", aws.SqsQueue(config, client=client))
        ingest = runtime.source_ingest
        trail = runtime.trail
        with trail.session() if trail is not None else nullcontext():  # one audit connection per tick
            done = aws.drain(queue, config, ingest.ingest)
        if not done.received:
            ingest.tick()
        return dg.SkipReason(
            f"aws_eventbridge: {done.received} message(s), {done.events} event(s), {done.failing} failing, "
            f"{done.ignored} ignored, {done.unreadable} unreadable; {done.notifications} notification(s) queued; "
            f"{done.deleted} deleted" + (f", {done.delete_failed} not deleted (redelivered later)" if done.delete_failed else "")
        )

    return sensor


def build_elementary_sensor(
    *,
    runtime: MonitoringRuntime,
    name: str = "dagster_monitoring_elementary",
    minimum_interval_seconds: int = 60,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
    reader: elementary.ElementaryReader | None = None,
) -> dg.SensorDefinition:
    """Reads Elementary's ``elementary_test_results`` after the ``(created_at, id)`` cursor: each
    result to the router (failing, warn, pass resolves) and to ``dbt_test_results``; the cursor
    moves only once both are done, so a failed tick reads the same rows again (the router sees
    a repeat, the trail keeps one row per result)."""
    config = runtime.config.sources.elementary
    if config is None:
        raise ValueError(f"{name}: needs sources.elementary in the monitoring config")
    holder: dict[str, Any] = {"reader": reader} if reader is not None else {}

    @monitoring_sensor(
        runtime=runtime,
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Elementary test results (anomalies, schema changes, dbt tests) to the alert router and the audit trail",
        kind="sources",
    )
    def sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        source = holder.get("reader") or holder.setdefault("reader", elementary.reader_for(config, runtime.config.audit))
        cursor = elementary.Cursor.from_json(_cursor(context))
        try:
            page = elementary.poll(source, config, cursor, now=datetime.now(timezone.utc))
        except Exception as exc:
            text = str(exc).lower()
            if "lock" in text:  # a DuckDB file dbt is writing is locked: wait for the next tick
                runtime.source_ingest.tick()
                return dg.SkipReason(f"elementary: warehouse busy ({type(exc).__name__}); reading on next tick")
            if "does not exist" in text or "not found" in text:  # fails the tick: the watchdog says so
                raise RuntimeError(
                    f"elementary: no table {elementary.table_name(config)} in {elementary.where(config, runtime.config.audit)}: "
                    "run dbt with Elementary's package (it creates the table), or fix sources.elementary.schema / database"
                ) from exc
            raise
        result = runtime.source_ingest.ingest(page.events)
        trail = runtime.trail
        if trail is not None and page.records:
            trail.write(page.records)
        if page.cursor is not None:
            context.update_cursor(json.dumps(page.cursor.to_json(), separators=(",", ":")))
        failing = sum(1 for e in page.events if e.is_failing)
        return dg.SkipReason(
            f"elementary: {page.rows} result(s), {failing} failing; {len(result.notifications)} notification(s) queued, "
            f"{len(result.delivered)} delivered" + ("; more to read" if page.more else "")
        )

    return sensor
