"""Freshness checks from a thin factory: visible on each asset's Checks tab, evaluated on a
schedule, with a warn lag and a fail lag.

Why asset checks and not Dagster 1.13's ``FreshnessPolicy``: the policy's state changes are
runless events that OSS cannot alert on (freshness alerts are Dagster+ only), while a check
result is recorded in a run, shows on the Checks tab, and reaches the alert sensor like any
other check — a stale asset alerts and recovers through the same router.

Usage::

    freshness = build_freshness_checks([fct_loans, "raw/repayments"], warn_after="26h", fail_after="30h")
    defs = dg.Definitions.merge(my_defs, freshness)
"""

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Union

import dagster as dg

from ..alerting.durations import format_duration, parse_duration
from ..translator import KIND_METADATA_KEY, NEXT_ACTION_METADATA_KEY, SOURCE_METADATA_KEY

CHECK_NAME = "freshness"
AssetRef = Union[dg.AssetKey, str, Sequence[str], dg.AssetsDefinition, dg.AssetSpec]


def _keys(assets: Iterable[AssetRef]) -> list[dg.AssetKey]:
    keys: list[dg.AssetKey] = []
    for ref in assets:
        if isinstance(ref, dg.AssetsDefinition):
            keys.extend(ref.keys)
        elif isinstance(ref, dg.AssetSpec):
            keys.append(ref.key)
        elif isinstance(ref, dg.AssetKey):
            keys.append(ref)
        elif isinstance(ref, str):
            keys.append(dg.AssetKey.from_user_string(ref))
        else:
            keys.append(dg.AssetKey(list(ref)))
    return list(dict.fromkeys(keys))


def evaluate_freshness(
    last_update: datetime | None, now: datetime, warn_after: timedelta, fail_after: timedelta
) -> tuple[bool, dg.AssetCheckSeverity, str]:
    """(passed, severity, description) for one asset. Pure, so the thresholds are tested as a table."""
    if last_update is None:
        return False, dg.AssetCheckSeverity.ERROR, "never materialized"
    age = now - last_update
    if age > fail_after:
        return False, dg.AssetCheckSeverity.ERROR, f"last updated {format_duration(age)} ago (fail after {format_duration(fail_after)})"
    if age > warn_after:
        return False, dg.AssetCheckSeverity.WARN, f"last updated {format_duration(age)} ago (warn after {format_duration(warn_after)})"
    return True, dg.AssetCheckSeverity.WARN, f"last updated {format_duration(age)} ago"


def build_freshness_checks(
    assets: Iterable[AssetRef],
    *,
    warn_after: str | timedelta | int,
    fail_after: str | timedelta | int,
    cron_schedule: str = "*/15 * * * *",
    name: str = "dagster_monitoring_freshness",
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.RUNNING,
) -> dg.Definitions:
    """One ``freshness`` check per asset, a job that evaluates them and a schedule for the job."""
    keys = _keys(assets)
    if not keys:
        raise ValueError("build_freshness_checks: give at least one asset")
    warn, fail = parse_duration(warn_after), parse_duration(fail_after)
    if not timedelta(0) < warn <= fail:
        raise ValueError(f"build_freshness_checks: need 0 < warn_after <= fail_after, got {warn} and {fail}")

    @dg.multi_asset_check(
        name=name,
        specs=[
            dg.AssetCheckSpec(
                CHECK_NAME,
                asset=key,
                blocking=False,
                description=f"updated within {format_duration(warn)} (warn) / {format_duration(fail)} (fail)",
            )
            for key in keys
        ],
    )
    def _freshness(context: dg.AssetCheckExecutionContext) -> Iterable[dg.AssetCheckResult]:
        now = datetime.now(timezone.utc)
        for key in keys:
            latest = context.instance.get_latest_materialization_event(key)
            last_update = datetime.fromtimestamp(latest.timestamp, tz=timezone.utc) if latest else None
            passed, severity, description = evaluate_freshness(last_update, now, warn, fail)
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name=CHECK_NAME,
                passed=passed,
                severity=severity,
                description=description,
                metadata={
                    "last_updated": last_update.isoformat() if last_update else "never",
                    "age_minutes": round((now - last_update).total_seconds() / 60, 1) if last_update else -1,
                    "warn_after": format_duration(warn),
                    "fail_after": format_duration(fail),
                    SOURCE_METADATA_KEY: "dagster",
                    KIND_METADATA_KEY: "freshness",
                    NEXT_ACTION_METADATA_KEY: (
                        f"Find why {key.to_user_string()} stopped updating: its last run, its schedule or "
                        "sensor, and upstream sources; then re-materialize it."
                    ),
                },
            )

    job = dg.define_asset_job(f"{name}_job", selection=dg.AssetSelection.checks(_freshness), tags={"dagster-monitoring": "freshness"})
    schedule = dg.ScheduleDefinition(name=f"{name}_schedule", job=job, cron_schedule=cron_schedule, default_status=default_status)
    return dg.Definitions(asset_checks=[_freshness], jobs=[job], schedules=[schedule])
