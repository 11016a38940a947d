"""A user's code location for the instance-level tests: a sensor and a schedule that raise while
the file named by $DM_TEST_BREAK exists (the code server reads it at each evaluation)."""

import os
from pathlib import Path

import dagster as dg


def _broken() -> bool:
    flag = os.environ.get("DM_TEST_BREAK")
    return bool(flag) and Path(flag).exists()


@dg.op
def noop() -> None:
    pass


@dg.job
def nightly():
    noop()


@dg.sensor(job=nightly, minimum_interval_seconds=1, default_status=dg.DefaultSensorStatus.RUNNING)
def partner_files(context: dg.SensorEvaluationContext):
    if _broken():
        raise ConnectionError("SFTP login failed: password=hunter2 refused by sftp.partner.example")
    return dg.SkipReason("no new partner file")


@dg.schedule(job=nightly, cron_schedule="* * * * *", default_status=dg.DefaultScheduleStatus.RUNNING)
def nightly_schedule(context: dg.ScheduleEvaluationContext):
    if _broken():
        raise KeyError("partition_date")
    return dg.SkipReason("nothing to do today")


defs = dg.Definitions(jobs=[nightly], sensors=[partner_files], schedules=[nightly_schedule])
