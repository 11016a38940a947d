"""The digest as a Dagster schedule and the one-op job it starts.

The schedule turns each tick into a run for its slot (the tick's scheduled time, in UTC), with
``run_key`` = the slot so the daemon starts one run per slot; the op sends through
:class:`~.digest.DigestSender`, which keeps every channel to once per slot in the state DB, so a
retried or re-executed run for the same slot sends nothing again. A channel that failed fails
the run (visible in Dagster, and retried by a re-execution).
"""

# no `from __future__ import annotations`: Dagster reads the op's context annotation at definition time

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


def build_digest_defs(
    *, runtime: MonitoringRuntime, default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.RUNNING
) -> dg.Definitions:
    """The digest job and its schedule, from ``runtime.config.digest`` (validated at load)."""
    digest = runtime.config.digest
    if digest is None:
        raise ValueError("the config has no digest: section")
    name = digest.name

    @dg.op(name=f"{name}_send", config_schema={"slot": dg.Field(str, description="the slot's scheduled time, ISO 8601 UTC")})
    def send_digest(context: dg.OpExecutionContext) -> None:
        slot = datetime.fromisoformat(context.op_config["slot"])
        trail = runtime.trail
        assert trail is not None  # the config requires audit.enabled for a digest
        sender = DigestSender(runtime.config, sink=trail.sink, store=runtime.router.store)
        outcome = sender.send(slot)
        context.log.info(outcome.summary())
        if outcome.failed:
            raise dg.Failure(description=f"digest not delivered: {outcome.summary()}", allow_retries=True)

    @dg.job(
        name=name, description="the on-call digest: the report mailed and summarised in Teams, once per slot", tags={"kind": "monitoring"}
    )
    def digest_job() -> None:
        send_digest()

    @dg.schedule(
        name=f"{name}_schedule",
        job=digest_job,
        cron_schedule=digest.schedule,
        execution_timezone=digest.timezone,
        default_status=default_status,
        description="the on-call digest (the audit views' report) on its cron",
    )
    def digest_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        slot = slot_of(context)
        return dg.RunRequest(run_key=slot, run_config={"ops": {f"{name}_send": {"config": {"slot": slot}}}}, tags={SLOT_TAG: slot})

    return dg.Definitions(jobs=[digest_job], schedules=[digest_schedule])


def build_export_defs(
    *, runtime: MonitoringRuntime, default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.RUNNING
) -> dg.Definitions:
    """The BI export job and its schedule, from ``runtime.config.export``. Each tick is a run for
    its slot (``run_key`` = the slot); the files are named by the slot's UTC date, so a retried
    tick or a re-executed run overwrites the same files instead of adding any."""
    from .export import export_audit

    export = runtime.config.export
    if export is None:
        raise ValueError("the config has no export: section")
    name = export.name

    @dg.op(name=f"{name}_write", config_schema={"slot": dg.Field(str, description="the slot's scheduled time, ISO 8601 UTC")})
    def write_export(context: dg.OpExecutionContext) -> None:
        trail = runtime.trail
        assert trail is not None  # the config requires audit.enabled for an export
        result = export_audit(
            trail.sink,
            export.url,
            days=export.days,
            end=datetime.fromisoformat(context.op_config["slot"]),
            formats=export.formats,
            tables=export.tables,
        )
        context.log.info(result.summary())

    @dg.job(name=name, description="the BI export: audit tables as Parquet / CSV files, once per slot", tags={"kind": "monitoring"})
    def export_job() -> None:
        write_export()

    @dg.schedule(
        name=f"{name}_schedule",
        job=export_job,
        cron_schedule=export.cron,
        execution_timezone=export.timezone,
        default_status=default_status,
        description="the BI export (last N days of the audit tables) on its cron",
    )
    def export_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        slot = slot_of(context)
        return dg.RunRequest(run_key=slot, run_config={"ops": {f"{name}_write": {"config": {"slot": slot}}}}, tags={EXPORT_SLOT_TAG: slot})

    return dg.Definitions(jobs=[export_job], schedules=[export_schedule])
