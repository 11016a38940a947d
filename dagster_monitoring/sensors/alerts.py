"""The alert sensor: run failures and recoveries, and asset-check results, into the router.

One cursor over the instance's run status changes (FAILURE and SUCCESS, every code location):
a failed run is a FAILING run event, a successful one resolves it. For each finished run that
touched assets, its check evaluations become check events — including failed non-blocking ERROR
checks that leave the run green (dagster#29896), which a run-failure sensor never sees. The
router decides who hears what; each tick also retries pending deliveries and announces
recoveries whose flap window has passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg
from dagster._core.events import DagsterEventType

from ..alerting.events import AlertEvent
from ..runtime import MonitoringRuntime
from ..translator import is_ad_hoc_job
from ._status_changes import (
    StatusChange,
    metadata_values,
    read_cursor,
    record_time,
    run_failure_error,
    save_cursor,
    status_changes_after,
)
from .heartbeat import monitoring_sensor

EVENT_TYPES = (DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_SUCCESS)


class Lineage:
    """Upstream assets (all ancestors) of an asset, from the code location's asset graph, looked up
    once per asset per tick. What the router's lineage inhibition reads (``dagster-monitoring/upstream``)."""

    def __init__(self, repository_def: dg.RepositoryDefinition | None) -> None:
        self.graph = repository_def.asset_graph if repository_def is not None else None
        self._memo: dict[dg.AssetKey, tuple[str, ...]] = {}

    def upstream(self, key: dg.AssetKey) -> tuple[str, ...]:
        if self.graph is None:
            return ()
        found = self._memo.get(key)
        if found is None:
            try:
                ancestors = self.graph.get_ancestor_asset_keys(key) if self.graph.has(key) else set()
            except Exception:  # an asset graph this Dagster cannot walk must not cost the alerts
                ancestors = set()
            found = self._memo[key] = tuple(sorted(a.to_user_string() for a in ancestors))
        return found


def check_events_of_run(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    runtime: MonitoringRuntime,
    owners: dict[dg.AssetKey, tuple[str, ...]] | None = None,
    lineage: Lineage | None = None,
) -> list[AlertEvent]:
    """Every asset-check evaluation a run recorded, as events (passing ones resolve), each naming
    its asset's upstream assets when ``lineage`` knows them.

    Runs of plain op jobs (no asset or check selection at all) are skipped without a query; any
    other run is read, since ``asset_selection`` is empty (not None) for ad-hoc materializations."""
    if run.asset_selection is None and run.asset_check_selection is None:
        return []
    events = []
    for record in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION, limit=10_000).records:
        evaluation: Any = record.event_log_entry.dagster_event.event_specific_data  # type: ignore[union-attr]
        events.append(
            runtime.translator.to_check_event(
                asset_key=evaluation.asset_key,
                check_name=evaluation.check_name,
                passed=evaluation.passed,
                severity=evaluation.severity,
                occurred_at=record_time(record),
                metadata=metadata_values(evaluation.metadata),
                description=evaluation.description,
                owners=(owners or {}).get(evaluation.asset_key, ()),
                run_id=run.run_id,
                upstream=lineage.upstream(evaluation.asset_key) if lineage is not None else (),
            )
        )
    return events


def planned_assets(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[dg.AssetKey]:
    """The assets an ad-hoc run planned (its implicit job has no useful name; ``materialize()``
    leaves ``asset_selection`` empty)."""
    records = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED, limit=1_000).records
    return [r.asset_key for r in records if r.asset_key is not None]


def asset_owners(repository_def: dg.RepositoryDefinition | None) -> dict[dg.AssetKey, tuple[str, ...]]:
    """Owners declared on the code location's assets (``owners=[...]``, dbt ``meta.owner``)."""
    if repository_def is None:
        return {}
    graph = repository_def.asset_graph
    owners = {}
    for key in graph.get_all_asset_keys():
        node_owners = tuple(graph.get(key).owners or ())
        if node_owners:
            owners[key] = node_owners
    return owners


def events_for_changes(
    instance: dg.DagsterInstance,
    changes: Sequence[StatusChange],
    runtime: MonitoringRuntime,
    owners: dict[dg.AssetKey, tuple[str, ...]] | None = None,
    lineage: Lineage | None = None,
) -> list[AlertEvent]:
    runs = {r.run_id: r for r in instance.get_runs(filters=dg.RunsFilter(run_ids=list({c.run_id for c in changes})))} if changes else {}
    events: list[AlertEvent] = []
    for change in changes:
        run = runs.get(change.run_id)
        if run is None:  # deleted since
            continue
        failed = change.event_type == DagsterEventType.RUN_FAILURE
        events.append(
            runtime.translator.to_run_event(
                run,
                failed=failed,
                occurred_at=change.at,
                error=run_failure_error(change) if failed else None,
                assets=planned_assets(instance, run) if is_ad_hoc_job(run.job_name) else (),
            )
        )
        events.extend(check_events_of_run(instance, run, runtime, owners, lineage))
    return events


def build_alert_sensor(
    *,
    runtime: MonitoringRuntime,
    name: str = "dagster_monitoring_alerts",
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
    job_names: Sequence[str] | None = None,
    start_from_beginning: bool = False,
    max_changes_per_tick: int = 5_000,
) -> dg.SensorDefinition:
    """A sensor that feeds run and asset-check outcomes of every code location to the router.

    The first tick only sets the cursor (like ``run_failure_sensor``) unless
    ``start_from_beginning``; a tick reads at most ``max_changes_per_tick`` changes.
    """

    @monitoring_sensor(
        runtime=runtime,
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="run failures/recoveries and asset-check results to the alert router",
        kind="alerts",
    )
    def sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        instance = context.instance
        after, first = read_cursor(context, EVENT_TYPES, start_from_beginning)
        if first and not start_from_beginning:
            save_cursor(context, after)
            runtime.router.tick()
            return dg.SkipReason(f"first tick: watching run status changes after storage id {after}")
        changes, new_after = status_changes_after(instance, after, EVENT_TYPES, max_changes_per_tick, job_names)
        repository_def = getattr(context, "repository_def", None)
        owners = asset_owners(repository_def) if changes else {}
        events = events_for_changes(instance, changes, runtime, owners, Lineage(repository_def) if changes else None)
        result = runtime.router.process(events)
        save_cursor(context, new_after)
        notified = sum(1 for d in result.deliveries if d.delivered)
        return dg.SkipReason(
            f"{len(changes)} run status change(s), {len(events)} event(s), {len(result.notifications)} notification(s) queued, "
            f"{notified} delivered"
        )

    return sensor
