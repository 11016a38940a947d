"""Asset health changes: Dagster's own asset health (HEALTHY / WARNING / DEGRADED), as alerts.

Dagster 1.13 computes an asset's health in OSS too (the UI's health dots), from three parts:
its checks (a failed ERROR check: DEGRADED, a failed WARN check: WARNING), its freshness policy
(FAIL / WARN) and its latest materialization attempt (failed: DEGRADED). Those functions need a
workspace request context (the asset graph of every code location), which a sensor does not
have, so ``dagster-monitoring watch`` reads them from the workspace it loads.

One ``asset_health`` event per asset whose health is known: WARNING and DEGRADED are FAILING
(severity ``asset_health.warning`` / ``degraded``), HEALTHY is PASSING; UNKNOWN (never
materialized, nothing to judge) makes none. The router keeps the last status as the incident's
state, so a receiver hears each change once: an asset turning WARNING opens an incident,
WARNING to DEGRADED is an escalation, back to HEALTHY the recovery; DEGRADED back to WARNING is
recorded but not announced (the router never lowers an open incident's severity).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dagster._core.definitions.asset_health.asset_check_health import get_asset_check_status_and_metadata
from dagster._core.definitions.asset_health.asset_freshness_health import get_freshness_status_and_metadata
from dagster._core.definitions.asset_health.asset_health import AssetHealthStatus, overall_status_from_component_statuses
from dagster._core.definitions.asset_health.asset_materialization_health import get_materialization_status_and_metadata

from ..alerting.events import AlertEvent, Status
from ..translator import DagsterAlertTranslatorSettings, default_asset_url, default_run_url
from .config import AssetHealthConfig

_PARTS = ("checks", "materialization", "freshness")


async def _health(context: Any, key: Any) -> tuple[AssetHealthStatus, dict[str, tuple[AssetHealthStatus, Any]]]:
    checks = await get_asset_check_status_and_metadata(context, key)
    materialization = await get_materialization_status_and_metadata(context, key)
    freshness = await get_freshness_status_and_metadata(context, key)
    overall = overall_status_from_component_statuses(checks[0], materialization[0], freshness[0])
    return overall, dict(zip(_PARTS, (checks, materialization, freshness), strict=True))


async def _all(context: Any, keys: Sequence[Any]) -> list[Any]:
    return [await _health(context, key) for key in keys]


def _describe(part: str, status: AssetHealthStatus, meta: Any) -> str:
    text = status.value.lower()
    if part == "checks" and meta is not None:
        failed = getattr(meta, "num_failed_checks", None)
        warned = getattr(meta, "num_warning_checks", 0)
        total = getattr(meta, "total_num_checks", 0)
        bits = ([f"{failed} failed"] if failed else []) + ([f"{warned} warning"] if warned else [])
        if bits:
            text += f" ({', '.join(bits)} of {total} checks)"
    if part == "materialization" and meta is not None and getattr(meta, "failed_run_id", None):
        text += f" (latest attempt failed in run {meta.failed_run_id})"
    return text


def asset_health_events(
    request_context: Any, config: AssetHealthConfig, now: datetime, *, base_url: str | None, default_owners: Sequence[str] = ()
) -> list[AlertEvent]:
    graph = request_context.asset_graph
    keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    settings = DagsterAlertTranslatorSettings(base_url=base_url)
    events = []
    for key, (overall, parts) in zip(keys, asyncio.run(_all(request_context, keys)), strict=True):
        if overall not in (AssetHealthStatus.HEALTHY, AssetHealthStatus.WARNING, AssetHealthStatus.DEGRADED):
            continue
        name = key.to_user_string()
        owners = tuple(graph.get(key).owners) or tuple(default_owners)
        links: dict[str, str] = {}
        asset_link = default_asset_url(key, settings)
        if asset_link:
            links["asset"] = asset_link
        failed_run = getattr(parts["materialization"][1], "failed_run_id", None)
        run_link = default_run_url(failed_run, settings) if failed_run else None
        if run_link and overall is not AssetHealthStatus.HEALTHY:
            links["run"] = run_link
        details = {
            part.capitalize(): _describe(part, *parts[part]) for part in _PARTS if parts[part][0] is not AssetHealthStatus.NOT_APPLICABLE
        }
        healthy = overall is AssetHealthStatus.HEALTHY
        causes = [part for part in _PARTS if parts[part][0] is overall]
        events.append(
            AlertEvent(
                source="dagster",
                kind="asset_health",
                entity=name,
                status=Status.PASSING if healthy else Status.FAILING,
                severity=config.degraded if overall is AssetHealthStatus.DEGRADED else config.warning,
                occurred_at=now,
                summary=f"Asset {name} is {overall.value.lower()}" + ("" if healthy else f" ({', '.join(causes)})"),
                details={"Health": overall.value, **details},
                owners=owners,
                links=links,
                run_id=failed_run if not healthy else None,
                next_action=(
                    f"Open the asset's page ({name}): the Checks tab for failed checks, the latest materialization's run "
                    "for a failed attempt, the freshness policy for a late update. Fix the data or the code and "
                    "materialize it again; the alert recovers when its health is HEALTHY."
                ),
            )
        )
    return events
