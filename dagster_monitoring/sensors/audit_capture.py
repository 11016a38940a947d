"""Audit capture: every run status change, and each finished run's materializations and
check evaluations, written to the audit trail in batches.

It follows the same kind of storage-id cursor as the alert sensor, with its own cursor, so an
audit outage never delays alerts. The trail spools what the sink cannot take; the cursor moves
on because the rows are safe in the spool. When the spool cannot be written either, the rows are
only in memory, so the cursor stays and the next tick reads them again (``event_id`` keeps them
single). Nothing here can fail a run: it runs in a sensor.

A tick is one ``trail.write`` of all its rows in a plain ``trail.session()``: one statement per
table per tick, in DuckDB or the spool when it returns, before the cursor is saved (a
write-behind session would add nothing to a single write).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEventType

from ..audit.records import AssetCheckEvaluationRecord, AssetMaterializationRecord, AuditRecord, RunRecord
from ..runtime import MonitoringRuntime
from ..translator import default_error_text, default_run_owners, default_run_url
from ._status_changes import (
    ALL_STATUSES,
    FINISHED,
    StatusChange,
    metadata_values,
    read_cursor,
    record_time,
    run_failure_error,
    save_cursor,
    status_changes_after,
)
from .heartbeat import monitoring_sensor

_STATUS = {
    DagsterEventType.RUN_START: "STARTED",
    DagsterEventType.RUN_SUCCESS: "SUCCESS",
    DagsterEventType.RUN_FAILURE: "FAILURE",
    DagsterEventType.RUN_CANCELED: "CANCELED",
}
ROW_COUNT_KEYS = ("dagster/row_count", "rows_loaded", "row_count")


def _jsonable(metadata: dict) -> dict:
    return json.loads(json.dumps(metadata_values(metadata), default=str))


def records_for_changes(instance: dg.DagsterInstance, changes: Sequence[StatusChange], runtime: MonitoringRuntime) -> list[AuditRecord]:
    if not changes:
        return []
    settings = runtime.translator.settings
    # one query for the runs and their start times (RunRecord carries them)
    run_records = {
        r.dagster_run.run_id: r for r in instance.get_run_records(filters=dg.RunsFilter(run_ids=list({c.run_id for c in changes})))
    }
    records: list[AuditRecord] = []
    for change in changes:
        run_record = run_records.get(change.run_id)
        if run_record is None:  # deleted since
            continue
        run = run_record.dagster_run
        status = _STATUS[change.event_type]
        started_at = duration = None
        error_class = error_message = None
        if change.event_type in FINISHED and run_record.start_time:
            started_at = datetime.fromtimestamp(run_record.start_time, tz=timezone.utc)
            duration = max((change.at - started_at).total_seconds(), 0.0)
        if change.event_type == DagsterEventType.RUN_FAILURE:
            error_class, error_message = default_error_text(run_failure_error(change))
        records.append(
            RunRecord.build(
                event_ts=change.at,
                run_id=run.run_id,
                job_name=run.job_name,
                status=status,
                code_location=run.remote_job_origin.location_name if run.remote_job_origin else None,
                partition_key=run.tags.get("dagster/partition"),
                started_at=started_at,
                ended_at=change.at if change.event_type in FINISHED else None,
                duration_s=duration,
                error_class=error_class,
                error_message=error_message,
                owners=",".join(default_run_owners(run, settings)) or None,
                run_url=default_run_url(run.run_id, settings),
                tags={k: v for k, v in run.tags.items() if not k.startswith(".dagster")},
            )
        )
        if change.event_type in FINISHED:
            records.extend(_asset_records(instance, run, settings))
    return records


def _asset_records(instance: dg.DagsterInstance, run: dg.DagsterRun, settings) -> list[AuditRecord]:  # type: ignore[no-untyped-def]
    out: list[AuditRecord] = []
    of_type = {DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_CHECK_EVALUATION}
    for record in instance.get_records_for_run(run.run_id, of_type=of_type, limit=10_000).records:
        event: Any = record.event_log_entry.dagster_event
        at = record_time(record)
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:  # type: ignore[union-attr]
            mat = event.event_specific_data.materialization
            meta = _jsonable(mat.metadata)
            rows = next((meta[k] for k in ROW_COUNT_KEYS if isinstance(meta.get(k), int)), None)
            out.append(
                AssetMaterializationRecord.build(
                    event_id=f"{run.run_id}:{record.storage_id}",
                    event_ts=at,
                    run_id=run.run_id,
                    job_name=run.job_name,
                    asset_key=mat.asset_key.to_user_string(),
                    partition_key=mat.partition,
                    step_key=event.step_key,  # type: ignore[union-attr]
                    row_count=rows,
                    metadata=meta,
                )
            )
        else:
            ev = event.event_specific_data
            out.append(
                AssetCheckEvaluationRecord.build(
                    event_id=f"{run.run_id}:{record.storage_id}",
                    event_ts=at,
                    run_id=run.run_id,
                    job_name=run.job_name,
                    asset_key=ev.asset_key.to_user_string(),
                    check_name=ev.check_name,
                    passed=ev.passed,
                    severity=ev.severity.value,
                    blocking=ev.blocking,
                    description=ev.description,
                    run_url=default_run_url(run.run_id, settings),
                    metadata=_jsonable(ev.metadata),
                )
            )
    return out


def build_audit_sensor(
    *,
    runtime: MonitoringRuntime,
    name: str = "dagster_monitoring_audit",
    minimum_interval_seconds: int = 60,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
    start_from_beginning: bool = True,
    max_changes_per_tick: int = 5_000,
) -> dg.SensorDefinition:
    """A sensor that writes runs, materializations and check evaluations to the audit trail.
    By default it backfills the instance's history on its first ticks (``max_changes_per_tick``
    at a time): the audit trail is for everything, forever."""

    @monitoring_sensor(
        runtime=runtime,
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="runs, materializations and check evaluations to the audit trail",
        kind="audit",
    )
    def sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        trail = runtime.trail
        if trail is None:
            return dg.SkipReason("audit trail disabled (audit.enabled: false)")
        after, _first = read_cursor(context, ALL_STATUSES, start_from_beginning)
        changes, new_after = status_changes_after(context.instance, after, ALL_STATUSES, max_changes_per_tick)
        records = records_for_changes(context.instance, changes, runtime)
        if not records and not trail.has_backlog():  # idle: spare the open (~15 ms) and the checkpoint of the file
            save_cursor(context, new_after)
            return dg.SkipReason(f"{len(changes)} run status change(s), 0 audit row(s)")
        with trail.session():  # one open of the DuckDB file for the replay and the new rows
            result = trail.write(records)
        spooled = f", {result.spooled} spooled (sink unavailable)" if result.spooled else ""
        replayed = f", {result.replayed} replayed from the spool" if result.replayed else ""
        if result.held or result.dropped:
            # neither sink nor spool took them: memory is not durable, so read them again next tick
            held = f", {result.held} held in memory (sink and spool unavailable), cursor kept"
            return dg.SkipReason(f"{len(changes)} run status change(s), {len(records)} audit row(s){replayed}{held}")
        save_cursor(context, new_after)
        return dg.SkipReason(f"{len(changes)} run status change(s), {len(records)} audit row(s){spooled}{replayed}")

    return sensor
