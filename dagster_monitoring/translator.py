"""DagsterAlertTranslator: the one place Dagster objects become plain alert events.

Like dagster-dbt's translator, each mapping decision is its own overridable method calling a
module-level ``default_*`` function; subclass and call ``super()`` to change one decision.
Sensors, ``build_monitoring_defs`` and the Component take ``translator=``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import dagster as dg

from .alerting.durations import format_duration
from .alerting.events import AlertEvent, Severity, Status
from .alerting.grouping import ASSET_TAG, UPSTREAM_TAG, upstream_tag
from .alerting.redact import redact
from .alerting.text import strip_ansi, truncate

OWNER_TAG_PREFIXES = ("dagster/owner", "owner", "team")
SEVERITY_TAG = "dagster-monitoring/severity"
RUNBOOK_TAG = "dagster-monitoring/runbook"
# Check-result metadata keys the package's own checks set, so alerts say where they came from.
SOURCE_METADATA_KEY = "dagster_monitoring/source"  # dbt | dlt | freshness | dagster
KIND_METADATA_KEY = "dagster_monitoring/kind"  # asset_check | freshness | schema_drift | row_count
SEVERITY_METADATA_KEY = "dagster_monitoring/severity"  # critical: raise an ERROR check to CRITICAL
NEXT_ACTION_METADATA_KEY = "dagster_monitoring/next_action"
OWNERS_METADATA_KEY = "dagster_monitoring/owners"  # comma-separated; the check's own owners win over its asset's
LINK_METADATA_PREFIX = "dagster_monitoring/link/"  # + a links key ("dbt_artifacts"): a URL the alert links
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class DagsterAlertTranslatorSettings:
    """Flags for the default translation."""

    base_url: str | None = None  # webserver URL for run and asset-check links
    run_failure_severity: Severity = Severity.ERROR
    default_owners: tuple[str, ...] = ()
    extra_tags: Mapping[str, str] = field(default_factory=dict)


def normalize_owner(tag_key: str, value: str) -> str:
    """A ``team: data-eng`` tag names the owner ``team:data-eng``, the form Dagster asset owners
    use, so ``owners:`` routes and ticket assignment groups match either spelling."""
    value = value.strip()
    if tag_key == "team" and not value.startswith("team:") and "@" not in value:
        return f"team:{value}"
    return value


def default_run_owners(run: dg.DagsterRun, settings: DagsterAlertTranslatorSettings) -> tuple[str, ...]:
    owners = [normalize_owner(k, v) for k, v in run.tags.items() if k in OWNER_TAG_PREFIXES or k.startswith("dagster/owner")]
    return tuple(dict.fromkeys(o for o in owners if o)) or settings.default_owners


def is_ad_hoc_job(job_name: str) -> bool:
    """Dagster's implicit jobs (``__ASSET_JOB``, ``__ephemeral_asset_job__``): a "Materialize" click
    or ``materialize(...)``; their name says nothing to the on-call."""
    return job_name.startswith("__ASSET_JOB") or job_name == "__ephemeral_asset_job__"


def default_run_entity(run: dg.DagsterRun, assets: Sequence[dg.AssetKey] = (), max_assets: int = 3) -> str:
    """The job's name, or for an ad-hoc materialization the assets it selected or planned
    (``fct_loans, stg_loans +2 more``), so one set of assets is one incident."""
    if not is_ad_hoc_job(run.job_name):
        return run.job_name
    keys = sorted({k.to_user_string() for k in (run.asset_selection or ())} | {k.to_user_string() for k in assets})
    checks = sorted(f"{c.asset_key.to_user_string()}:{c.name}" for c in (run.asset_check_selection or ()))
    names = keys or checks
    if not names:
        return "ad-hoc materialization"
    shown = ", ".join(names[:max_assets])
    return shown + (f" +{len(names) - max_assets} more" if len(names) > max_assets else "")


def default_run_url(run_id: str, settings: DagsterAlertTranslatorSettings) -> str | None:
    return f"{settings.base_url}/runs/{run_id}" if settings.base_url else None


def default_asset_url(asset_key: dg.AssetKey, settings: DagsterAlertTranslatorSettings, check_name: str | None = None) -> str | None:
    if not settings.base_url:
        return None
    path = "/".join(quote(p, safe="") for p in asset_key.path)
    url = f"{settings.base_url}/assets/{path}"
    return f"{url}?view=checks&checkDetail={quote(check_name, safe='')}" if check_name else url


def default_error_text(error: Any) -> tuple[str | None, str | None]:
    """(class name, message) of a SerializableErrorInfo, the innermost cause first."""
    if error is None:
        return None, None
    info = error
    while getattr(info, "cause", None) is not None:
        info = info.cause
    cls_name = getattr(info, "cls_name", None)
    message = strip_ansi(getattr(info, "message", "") or "").strip()
    if cls_name:  # SerializableErrorInfo repeats the class, sometimes module-qualified
        message = re.sub(rf"^(?:[\w.]+\.)?{re.escape(cls_name)}:\s*", "", message)
    return cls_name, truncate(redact(message), MAX_ERROR_CHARS)


def default_error_line(error: Any, default: str = "no error recorded") -> str:
    """``Class: message`` of a SerializableErrorInfo's innermost cause, redacted (a card's Error fact)."""
    cls_name, message = default_error_text(error)
    if cls_name and message:
        return f"{cls_name}: {message}"
    return message or cls_name or default


def metadata_links(metadata: Mapping[str, Any]) -> dict[str, str]:
    """Links a check result carries (``dagster_monitoring/link/<name>``), e.g. dbt artefacts."""
    return {k[len(LINK_METADATA_PREFIX) :]: str(v) for k, v in metadata.items() if k.startswith(LINK_METADATA_PREFIX) and v}


class DagsterAlertTranslator:
    """Override any ``get_*`` to change one decision; ``to_*_event`` composes them."""

    def __init__(self, settings: DagsterAlertTranslatorSettings | None = None) -> None:
        self.settings = settings or DagsterAlertTranslatorSettings()

    # -- runs ----------------------------------------------------------------------------------

    def get_run_entity(self, run: dg.DagsterRun, assets: Sequence[dg.AssetKey] = ()) -> str:
        """``assets``: what the run planned to materialize (the alert sensor reads it for ad-hoc runs)."""
        return default_run_entity(run, assets)

    def get_run_severity(self, run: dg.DagsterRun) -> Severity:
        tagged = run.tags.get(SEVERITY_TAG)
        return Severity.parse(tagged) if tagged else self.settings.run_failure_severity

    def get_run_owners(self, run: dg.DagsterRun) -> tuple[str, ...]:
        return default_run_owners(run, self.settings)

    def get_run_links(self, run: dg.DagsterRun) -> dict[str, str]:
        links = {}
        url = default_run_url(run.run_id, self.settings)
        if url:
            links["run"] = url
        if run.tags.get(RUNBOOK_TAG):
            links["runbook"] = run.tags[RUNBOOK_TAG]
        return links

    def get_run_tags(self, run: dg.DagsterRun) -> dict[str, str]:
        keep = {k: v for k, v in run.tags.items() if not k.startswith(".dagster") and len(v) < 200}
        return {**keep, **self.settings.extra_tags}

    def get_run_failure_summary(
        self, run: dg.DagsterRun, error_class: str | None, message: str | None, assets: Sequence[dg.AssetKey] = ()
    ) -> str:
        partition = run.tags.get("dagster/partition")
        where = f" (partition {partition})" if partition else ""
        reason = f": {error_class}" if error_class else ""
        what = f"Materialization of {self.get_run_entity(run, assets)}" if is_ad_hoc_job(run.job_name) else f"Run of {run.job_name}"
        return f"{what}{where} failed{reason}"

    def get_run_next_action(self, run: dg.DagsterRun, assets: Sequence[dg.AssetKey] = ()) -> str:
        if is_ad_hoc_job(run.job_name):
            return f"Open the run, read the failing step's error, fix the cause and materialize {self.get_run_entity(run, assets)} again."
        return f"Open the run, read the failing step's error, fix the cause and re-execute {run.job_name} from failure."

    def to_run_event(
        self, run: dg.DagsterRun, *, failed: bool, occurred_at: datetime, error: Any = None, assets: Sequence[dg.AssetKey] = ()
    ) -> AlertEvent:
        error_class, message = default_error_text(error) if failed else (None, None)
        details: dict[str, Any] = {}
        if error_class:
            details["error"] = f"{error_class}: {message}" if message else error_class
        if run.tags.get("dagster/partition"):
            details["partition"] = run.tags["dagster/partition"]
        return AlertEvent(
            source="dagster",
            kind="run",
            entity=self.get_run_entity(run, assets),
            status=Status.FAILING if failed else Status.PASSING,
            severity=self.get_run_severity(run),
            occurred_at=occurred_at.astimezone(timezone.utc),
            summary=self.get_run_failure_summary(run, error_class, message, assets)
            if failed
            else f"Run of {self.get_run_entity(run, assets)} succeeded",
            details=details,
            next_action=self.get_run_next_action(run, assets) if failed else None,
            **self._about_run(run),
        )

    def _about_run(self, run: dg.DagsterRun) -> dict[str, Any]:
        """What every event about a run says of it: owners, tags, links and its id."""
        return {"owners": self.get_run_owners(run), "tags": self.get_run_tags(run), "links": self.get_run_links(run), "run_id": run.run_id}

    # -- asset materializations ----------------------------------------------------------------

    def get_materialization_entity(self, asset_key: dg.AssetKey) -> str:
        """One incident per asset, whichever job or partition failed it."""
        return asset_key.to_user_string()

    def get_materialization_severity(self, run: dg.DagsterRun) -> Severity:
        return self.get_run_severity(run)

    def get_materialization_owners(self, run: dg.DagsterRun, asset_owners: tuple[str, ...]) -> tuple[str, ...]:
        """The asset's owners, else the run's (its job's ``team`` / ``owner`` tags), else the default."""
        return asset_owners or self.get_run_owners(run)

    def get_materialization_links(self, asset_key: dg.AssetKey, run: dg.DagsterRun) -> dict[str, str]:
        links = {}
        run_url = default_run_url(run.run_id, self.settings)
        if run_url:
            links["run"] = run_url
        asset_url = default_asset_url(asset_key, self.settings)
        if asset_url:
            links["asset"] = asset_url
        if run.tags.get(RUNBOOK_TAG):
            links["runbook"] = run.tags[RUNBOOK_TAG]
        return links

    def get_materialization_next_action(self, asset_key: dg.AssetKey, run: dg.DagsterRun, step_key: str | None) -> str:
        step = f"step {step_key}" if step_key else "the failing step"
        again = (
            f"materialize {asset_key.to_user_string()} again" if is_ad_hoc_job(run.job_name) else f"re-execute {run.job_name} from failure"
        )
        return f"Open the run, read the error of {step} (its retries are used up), fix the cause and {again}."

    def to_materialization_event(
        self,
        *,
        asset_key: dg.AssetKey,
        run: dg.DagsterRun,
        failed: bool,
        occurred_at: datetime,
        error: Any = None,
        step_key: str | None = None,
        partition: str | None = None,
        owners: tuple[str, ...] = (),
        upstream: Sequence[str] = (),
    ) -> AlertEvent:
        """A step that should have materialized ``asset_key`` failed after its retries (FAILING), or
        a run materialized it (PASSING). ``upstream``: the asset's upstream assets, for inhibition."""
        name = asset_key.to_user_string()
        details: dict[str, Any] = {}
        summary = f"{name} materialized by {run.job_name}" if not is_ad_hoc_job(run.job_name) else f"{name} materialized"
        if failed:
            error_class, message = default_error_text(error)
            if error_class:
                details["error"] = f"{error_class}: {message}" if message else error_class
            if step_key:
                details["step"] = step_key
            if not is_ad_hoc_job(run.job_name):
                details["job"] = run.job_name
            summary = f"Materialization of {name} failed" + (f": {error_class}" if error_class else "")
        if partition:
            details["partition"] = partition
            summary += f" (partition {partition})"
        return AlertEvent(
            source="dagster",
            kind="materialization",
            entity=self.get_materialization_entity(asset_key),
            status=Status.FAILING if failed else Status.PASSING,
            severity=self.get_materialization_severity(run),
            occurred_at=occurred_at.astimezone(timezone.utc),
            summary=summary,
            details=details,
            owners=self.get_materialization_owners(run, owners),
            tags={**self.settings.extra_tags, **self.get_check_lineage_tags(asset_key, upstream)},
            links=self.get_materialization_links(asset_key, run),
            run_id=run.run_id,
            next_action=self.get_materialization_next_action(asset_key, run, step_key) if failed else None,
        )

    # -- runs in progress past their limit -----------------------------------------------------

    def get_long_run_severity(self, run: dg.DagsterRun, configured: Severity) -> Severity:
        """``run_duration.severity``; a run's ``dagster-monitoring/severity`` tag does not apply:
        it says how bad a failure of the job is, not a slow run."""
        return configured

    def get_long_run_next_action(self, run: dg.DagsterRun, limit_source: str) -> str:
        return (
            f"Open the run and look at the step still running (a lock, a slow query, a hung call?). Terminate the run if it is "
            f"stuck; if the job is just slower now, raise its limit ({limit_source})."
        )

    def to_long_run_event(
        self,
        run: dg.DagsterRun,
        *,
        running: bool,
        occurred_at: datetime,
        elapsed: timedelta,
        limit: timedelta,
        limit_source: str,
        severity: Severity,
        ended_status: str | None = None,
    ) -> AlertEvent:
        """FAILING while ``run`` is in progress past ``limit`` (``limit_source`` says where the limit
        came from); PASSING once it ended (``ended_status``) or is within its limit again."""
        entity = self.get_run_entity(run)
        details = {
            "running_for": format_duration(elapsed),
            "limit": format_duration(limit),
            "limit_from": limit_source,
            "run_id": run.run_id,
        }
        if run.tags.get("dagster/partition"):
            details["partition"] = run.tags["dagster/partition"]
        if running:
            summary = f"Run of {entity} has been running for {format_duration(elapsed)}, over its limit of {format_duration(limit)}"
        elif ended_status:
            details["ended"] = ended_status
            summary = f"Run of {entity} ended ({ended_status}) after {format_duration(elapsed)}"
        else:
            summary = f"Run of {entity} is within its limit of {format_duration(limit)} again"
        return AlertEvent(
            source="dagster",
            kind="run_too_long",
            entity=entity,
            status=Status.FAILING if running else Status.PASSING,
            severity=self.get_long_run_severity(run, severity),
            occurred_at=occurred_at.astimezone(timezone.utc),
            summary=summary,
            details=details,
            next_action=self.get_long_run_next_action(run, limit_source) if running else None,
            **self._about_run(run),
        )

    # -- asset checks --------------------------------------------------------------------------

    def get_check_entity(self, asset_key: dg.AssetKey, check_name: str) -> str:
        return f"{asset_key.to_user_string()}:{check_name}"

    def get_check_source(self, asset_key: dg.AssetKey, check_name: str, metadata: Mapping[str, Any]) -> str:
        return str(metadata.get(SOURCE_METADATA_KEY) or "dagster")

    def get_check_kind(self, asset_key: dg.AssetKey, check_name: str, metadata: Mapping[str, Any]) -> str:
        return str(metadata.get(KIND_METADATA_KEY) or "asset_check")

    def get_check_severity(self, severity: dg.AssetCheckSeverity, metadata: Mapping[str, Any]) -> Severity:
        if severity == dg.AssetCheckSeverity.WARN:
            return Severity.WARN
        return Severity.CRITICAL if str(metadata.get(SEVERITY_METADATA_KEY, "")).lower() == "critical" else Severity.ERROR

    def get_check_links(self, asset_key: dg.AssetKey, check_name: str, run_id: str | None) -> dict[str, str]:
        links = {}
        run_url = default_run_url(run_id, self.settings) if run_id else None
        if run_url:
            links["run"] = run_url
        check_url = default_asset_url(asset_key, self.settings, check_name)
        if check_url:
            links["asset_check"] = check_url
        return links

    def get_check_owners(self, metadata: Mapping[str, Any], asset_owners: tuple[str, ...]) -> tuple[str, ...]:
        """The check's own owners (a dbt test's ``meta.owner`` / group, set in its metadata) win over
        the asset's, then the configured default."""
        own = tuple(o.strip() for o in str(metadata.get(OWNERS_METADATA_KEY) or "").split(",") if o.strip())
        return own or asset_owners or self.settings.default_owners

    def get_check_next_action(self, asset_key: dg.AssetKey, check_name: str, metadata: Mapping[str, Any]) -> str:
        if metadata.get(NEXT_ACTION_METADATA_KEY):
            return str(metadata[NEXT_ACTION_METADATA_KEY])
        return f"Open the check {check_name} on {asset_key.to_user_string()}, look at the offending rows, fix the data or its source, then re-run the check."

    def get_check_lineage_tags(self, asset_key: dg.AssetKey, upstream: Sequence[str]) -> dict[str, str]:
        """The tags the router's lineage inhibition reads: the check's asset, and its upstream
        assets when there are any (see ``dagster_monitoring.alerting.grouping``)."""
        tags = {ASSET_TAG: asset_key.to_user_string()}
        if upstream:
            tags[UPSTREAM_TAG] = upstream_tag(upstream)
        return tags

    def to_check_event(
        self,
        *,
        asset_key: dg.AssetKey,
        check_name: str,
        passed: bool,
        severity: dg.AssetCheckSeverity,
        occurred_at: datetime,
        metadata: Mapping[str, Any],
        description: str | None = None,
        owners: tuple[str, ...] = (),
        run_id: str | None = None,
        upstream: Sequence[str] = (),
    ) -> AlertEvent:
        """``upstream``: the asset's upstream asset keys (user strings), for lineage inhibition."""
        details = {
            k: v
            for k, v in metadata.items()
            if isinstance(v, (str, int, float, bool, list, dict)) and len(str(v)) < 2000 and not k.startswith("dagster_monitoring/")
        }
        if description and not passed:
            details = {"result": description, **details}
        entity = self.get_check_entity(asset_key, check_name)
        summary = (
            f"Check {check_name} on {asset_key.to_user_string()} failed" + (f": {description}" if description else "")
            if not passed
            else f"Check {check_name} on {asset_key.to_user_string()} passed"
        )
        return AlertEvent(
            source=self.get_check_source(asset_key, check_name, metadata),
            kind=self.get_check_kind(asset_key, check_name, metadata),
            entity=entity,
            status=Status.PASSING if passed else Status.FAILING,
            severity=self.get_check_severity(severity, metadata),
            occurred_at=occurred_at.astimezone(timezone.utc),
            summary=redact(summary),
            details=details,
            owners=self.get_check_owners(metadata, owners),
            tags={**self.settings.extra_tags, **self.get_check_lineage_tags(asset_key, upstream)},
            links={**self.get_check_links(asset_key, check_name, run_id), **metadata_links(metadata)},
            run_id=run_id,
            next_action=None if passed else self.get_check_next_action(asset_key, check_name, metadata),
        )
