"""Reading run status changes incrementally, by one global storage-id cursor.

``instance.fetch_run_status_changes`` is indexed by event type and storage id, so a tick costs
what is new, not what is old. Several event types are merged in storage-id order; when one
type fills its page, the others are cut at the same storage id so nothing is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import dagster as dg
from dagster._core.event_api import EventRecordsFilter
from dagster._core.events import DagsterEventType
from dagster._core.storage.event_log.base import EventLogRecord, EventLogStorage, RunStatusChangeRecordsFilter
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.legacy_storage import LegacyEventLogStorage
from dagster_shared.record import as_dict, is_record

FINISHED = (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_CANCELED)
ALL_STATUSES = (DagsterEventType.RUN_START, *FINISHED)


@dataclass(frozen=True)
class StatusChange:
    storage_id: int
    run_id: str
    event_type: DagsterEventType
    at: datetime
    record: EventLogRecord


def latest_storage_id(instance: dg.DagsterInstance, event_types: Iterable[DagsterEventType]) -> int:
    latest = 0
    for event_type in event_types:
        result = instance.fetch_run_status_changes(
            RunStatusChangeRecordsFilter(event_type=event_type),  # type: ignore[arg-type]
            limit=1,
            ascending=False,
        )
        if result.records:
            latest = max(latest, result.records[0].storage_id)
    return latest


def read_cursor(
    context: dg.SensorEvaluationContext, event_types: Sequence[DagsterEventType], start_from_beginning: bool
) -> tuple[int, bool]:
    """(storage id to read after, whether this is the sensor's first tick). A first tick that does
    not start from the beginning starts after the newest change: history is not replayed."""
    if context.cursor:
        return int(json.loads(context.cursor)["after"]), False
    return (0 if start_from_beginning else latest_storage_id(context.instance, event_types)), True


def cursor_extras(context: dg.SensorEvaluationContext) -> dict[str, Any]:
    """What a sensor keeps in its cursor next to ``after`` (absent from older cursors: ``{}``)."""
    if not context.cursor:
        return {}
    return {k: v for k, v in json.loads(context.cursor).items() if k != "after"}


def save_cursor(context: dg.SensorEvaluationContext, after: int, extras: Mapping[str, Any] | None = None) -> None:
    context.update_cursor(json.dumps({"after": after, **(extras or {})}))


def status_changes_after(
    instance: dg.DagsterInstance,
    after_storage_id: int,
    event_types: Sequence[DagsterEventType],
    limit: int,
    job_names: Sequence[str] | None = None,
) -> tuple[list[StatusChange], int]:
    """Changes after the cursor in storage-id order, and the new cursor."""
    pages: list[Sequence[EventLogRecord]] = []
    cut: int | None = None
    for event_type in event_types:
        records = instance.fetch_run_status_changes(
            RunStatusChangeRecordsFilter(event_type=event_type, after_storage_id=after_storage_id, job_names=job_names),  # type: ignore[arg-type]
            limit=limit,
            ascending=True,
        ).records
        pages.append(records)
        if len(records) == limit:
            last = records[-1].storage_id
            cut = last if cut is None else min(cut, last)
    merged = sorted((r for page in pages for r in page), key=lambda r: r.storage_id)
    if cut is not None:
        merged = [r for r in merged if r.storage_id <= cut]
    changes = [
        StatusChange(
            storage_id=r.storage_id,
            run_id=r.event_log_entry.run_id,
            event_type=r.event_log_entry.dagster_event.event_type,  # type: ignore[union-attr]
            at=record_time(r),
            record=r,
        )
        for r in merged
    ]
    new_cursor = merged[-1].storage_id if merged else after_storage_id
    return changes, new_cursor


def _cross_run_records(
    instance: dg.DagsterInstance, event_type: DagsterEventType, after: int | None, limit: int, ascending: bool
) -> Sequence[EventLogRecord]:
    """Records of one event type across runs by storage id (indexed by type and id).

    The run-sharded SQLite storage (``dagster dev``'s default) overrides ``get_event_records`` to
    walk every run's shard and ignore an id cursor; it mirrors asset-check events into its index
    shard, so the plain SQL query of its base class reads them there, by id, like Postgres does."""
    storage: EventLogStorage = instance.event_log_storage
    while isinstance(storage, LegacyEventLogStorage):
        storage = storage._storage.event_log_storage  # noqa: SLF001 - the wrapper a dagster.yaml `storage:` builds
    records_filter = EventRecordsFilter(event_type=event_type, after_cursor=after)
    if isinstance(storage, SqlEventLogStorage):
        return SqlEventLogStorage.get_event_records(storage, records_filter, limit=limit, ascending=ascending)
    return storage.get_event_records(records_filter, limit=limit, ascending=ascending)


def latest_check_evaluation_id(instance: dg.DagsterInstance) -> int:
    records = _cross_run_records(instance, DagsterEventType.ASSET_CHECK_EVALUATION, None, 1, ascending=False)
    return records[0].storage_id if records else 0


def runless_check_evaluations_after(instance: dg.DagsterInstance, after: int, limit: int) -> tuple[list[EventLogRecord], int]:
    """Asset-check evaluations reported outside any run (``report_runless_asset_event``) after the
    cursor, and the new cursor. Evaluations of runs are skipped here: the run's status change
    brings them (see ``check_events_of_run``)."""
    records = _cross_run_records(instance, DagsterEventType.ASSET_CHECK_EVALUATION, after, limit, ascending=True)
    new_after = records[-1].storage_id if records else after
    return [r for r in records if not r.event_log_entry.run_id], new_after


def run_failure_error(change: StatusChange):  # type: ignore[no-untyped-def]
    """The error that failed the run: the first failed step's, else the run's own."""
    data = change.record.event_log_entry.dagster_event.event_specific_data  # type: ignore[union-attr]
    step = getattr(data, "first_step_failure_event", None)
    if step is not None and getattr(step.event_specific_data, "error", None) is not None:
        return step.event_specific_data.error
    return getattr(data, "error", None)


def record_time(record: EventLogRecord) -> datetime:
    return datetime.fromtimestamp(record.event_log_entry.timestamp, tz=timezone.utc)


def metadata_values(metadata: dict) -> dict:
    """MetadataValue objects as plain, JSON-friendly values.

    Some values are Dagster records (a dlt asset's ``TableSchema``): records are named tuples
    that refuse iteration, so ``json.dumps`` cannot take them; they become dicts here."""
    return {k: _plain(getattr(v, "value", v)) for k, v in (metadata or {}).items()}


def _plain(value: object) -> object:
    if is_record(value):
        return {k: _plain(v) for k, v in as_dict(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return value
