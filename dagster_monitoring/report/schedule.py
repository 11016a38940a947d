"""The digest as a Dagster schedule and the one-op job it starts.

The schedule turns each tick into a run for its slot (the tick's scheduled time, in UTC), with
``run_key`` = the slot so the daemon starts one run per slot; the op sends through
:class:`~.digest.DigestSender`, which keeps every channel to once per slot in the state DB, so a
retried or re-executed run for the same slot sends nothing again. A channel that failed fails
the run (visible in Dagster, and retried by a re-execution).
"""

# no `from __future__ import annotations`: Dagster reads the op's context annotation at definition time

from collections.abc import Callable
from datetime import datetime, timezone

import dagster as dg

from ..runtime import MonitoringRuntime
from .digest import DigestSender

SLOT_TAG = "dagster_monitoring/digest_slot"
EXPORT_SLOT_TAG = "dagster_monitoring/export_slot"


def slot_of(context: dg.ScheduleEvaluationContext) -> str:
    """The tick's scheduled time in UTC (ISO 8601): the slot a run is for."""
    at = context.scheduled_execution_time or datetime.now(timezone.utc).replace(second=0, microsecond=0)
    return at.astimezone(timezone.utc).isoformat()


def slot_defs(
    *,
    name: str,
    op_name: str,
    run: Callable[[dg.OpExecutionContext, datetime], None],
    cron: str,
    timezone_name: str,
    tag: str,
    default_status: dg.DefaultScheduleStatus,
    job_description: str,
    schedule_description: str,
) -> dg.Definitions:
    """A one-op job and its schedule: each tick asks for one run for its slot (``run_key`` = the
    slot's scheduled time in UTC), and the op gets the slot to do its work once for it."""

    @dg.op(name=op_name, config_schema={"slot": dg.Field(str, description="the slot's scheduled time, ISO 8601 UTC")})
    def slot_op(context: dg.OpExecutionContext) -> None:
        run(context, datetime.fromisoformat(context.op_config["slot"]))

    @dg.job(name=name, description=job_description, tags={"kind": "monitoring"})
    def slot_job() -> None:
        slot_op()

    @dg.schedule(
        name=f"{name}_schedule",
        job=slot_job,
        cron_schedule=cron,
        execution_timezone=timezone_name,
        default_status=default_status,
        description=schedule_description,
    )
    def slot_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        slot = slot_of(context)
        return dg.RunRequest(run_key=slot, run_config={"ops": {op_name: {"config": {"slot": slot}}}}, tags={tag: slot})

    return dg.Definitions(jobs=[slot_job], schedules=[slot_schedule])


def build_digest_defs(
    *, runtime: MonitoringRuntime, default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.RUNNING
) -> dg.Definitions:
    """The digest job and its schedule, from ``runtime.config.digest`` (validated at load)."""
    digest = runtime.config.digest
    if digest is None:
        raise ValueError("the config has no digest: section")

    def send_digest(context: dg.OpExecutionContext, slot: datetime) -> None:
        trail = runtime.trail
        assert trail is not None  # the config requires audit.enabled for a digest
        sender = DigestSender(runtime.config, sink=trail.sink, store=runtime.router.store)
        outcome = sender.send(slot)
        context.log.info(outcome.summary())
        if outcome.failed:
            raise dg.Failure(description=f"digest not delivered: {outcome.summary()}", allow_retries=True)

    return slot_defs(
        name=digest.name,
        op_name=f"{digest.name}_send",
        run=send_digest,
        cron=digest.schedule,
        timezone_name=digest.timezone,
        tag=SLOT_TAG,
        default_status=default_status,
        job_description="the on-call digest: the report mailed and summarised in Teams, once per slot",
        schedule_description="the on-call digest (the audit views' report) on its cron",
    )


def build_export_defs(
    *, runtime: MonitoringRuntime, default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.RUNNING
) -> dg.Definitions:
    """The BI export job and its schedule, from ``runtime.config.export``. Each tick is a run for
    its slot; the files are named by the slot's UTC date, so a retried tick or a re-executed run
    overwrites the same files instead of adding any."""
    from .export import export_audit

    export = runtime.config.export
    if export is None:
        raise ValueError("the config has no export: section")

    def write_export(context: dg.OpExecutionContext, slot: datetime) -> None:
        trail = runtime.trail
        assert trail is not None  # the config requires audit.enabled for an export
        result = export_audit(trail.sink, export.url, days=export.days, end=slot, formats=export.formats, tables=export.tables)
        context.log.info(result.summary())

    return slot_defs(
        name=export.name,
        op_name=f"{export.name}_write",
        run=write_export,
        cron=export.cron,
        timezone_name=export.timezone,
        tag=EXPORT_SLOT_TAG,
        default_status=default_status,
        job_description="the BI export: audit tables as Parquet / CSV files, once per slot",
        schedule_description="the BI export (last N days of the audit tables) on its cron",
    )
