"""dbt Cloud job runs as alert events: the API v2 client, the poll, and the webhook normaliser.

One job is one incident: ``source=dbt_cloud, kind=job_run, entity=<job name>`` (its id when the
name is unknown), fingerprint ``dbt_cloud:job_run:<job name>``. A finished run with status 10
(Success) is PASSING, 20 (Error) FAILING; a cancelled run (30) says nothing about health and
is skipped, as are runs still queued or running.

Polling reads ``GET /api/v2/accounts/{account}/runs/`` newest first (``order_by=-id``, ``limit``
and ``offset`` pages, ``include_related`` job, environment and run_steps), per configured job or
for the whole account, back to the cursor: the highest run id below which every run has been
seen finished. A run still in progress holds the cursor (its finished neighbours are read again
next tick and ignored by the router as already seen) unless it is older than ``max_run_wait``.
The first poll reads one page and keeps only the latest finished run of each job, so a job that
is failing right now is announced once, and history is not replayed.

Webhooks: ``job.run.completed`` (``runStatus`` Success or Errored) and ``job.run.errored``;
``job.run.started`` is answered and ignored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import requests

from ..alerting.events import AlertEvent, Status
from ._common import external_job, first_text, iso, parse_time
from ._http import JsonApi
from .config import DbtCloudSourceConfig
from .webhooks import WebhookRejected

SOURCE = "dbt_cloud"
KIND = "job_run"
SUCCESS, ERROR, CANCELLED = 10, 20, 30
FINISHED = {SUCCESS, ERROR, CANCELLED}
RELATED = "job,environment,run_steps"
MAX_PAGES = 20  # a poll reads at most this many pages (2,000 runs) back to its cursor
ALL_JOBS = "all"


class DbtCloudClient:
    """``GET /api/v2/accounts/{account_id}/runs/`` with ``Authorization: Token <api_token>``."""

    def __init__(
        self, config: DbtCloudSourceConfig, *, session: requests.Session | None = None, sleep: Callable[[float], None] = time.sleep
    ):
        if config.api_token is None:
            raise ValueError("sources.dbt_cloud: polling needs api_token")
        self.config = config
        self.api = JsonApi(
            "dbt_cloud",
            config.base_url,
            {"Authorization": f"Token {config.api_token.get_secret_value()}"},
            timeout=config.timeout.total_seconds(),
            max_retry_wait=config.max_retry_wait.total_seconds(),
            session=session,
            sleep=sleep,
        )

    def runs_page(self, *, job_id: int | None, offset: int) -> tuple[list[dict[str, Any]], int]:
        """One page of runs, newest first, and the total count the API reports."""
        params: dict[str, Any] = {
            "order_by": "-id",
            "limit": self.config.page_size,
            "offset": offset,
            "include_related": RELATED,
        }
        if job_id is not None:
            params["job_definition_id"] = job_id
        reply = self.api.get(f"/api/v2/accounts/{self.config.account_id}/runs/", params)
        data = reply.get("data") if isinstance(reply, dict) else None
        runs = [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
        extra = reply.get("extra") if isinstance(reply, dict) else None
        pagination = extra.get("pagination") if isinstance(extra, dict) else None
        total = pagination.get("total_count") if isinstance(pagination, dict) else None
        return runs, int(total) if isinstance(total, int) else offset + len(runs)

    def runs_after(self, *, job_id: int | None, after: int | None) -> list[dict[str, Any]]:
        """Runs with an id above ``after``, newest first (``after`` None: the first page only)."""
        out: list[dict[str, Any]] = []
        offset = 0
        for _ in range(MAX_PAGES):
            runs, total = self.runs_page(job_id=job_id, offset=offset)
            for run in runs:
                if after is not None and _run_id(run) <= after:
                    return out
                out.append(run)
            offset += len(runs)
            if after is None or not runs or offset >= total:
                return out
        return out


def _run_id(run: Mapping[str, Any]) -> int:
    try:
        return int(run.get("id") or 0)
    except (TypeError, ValueError):
        return 0


def _name(related: Any) -> str | None:
    return first_text(related.get("name")) if isinstance(related, Mapping) else None


def run_link(config: DbtCloudSourceConfig, run_id: Any, project_id: Any = None) -> dict[str, str]:
    project = project_id or config.project_id
    if not run_id or not project:
        return {}
    return {"dbt_cloud_run": f"{config.base_url}/deploy/{config.account_id}/projects/{project}/runs/{run_id}/"}


def failed_step(run: Mapping[str, Any]) -> str | None:
    for step in run.get("run_steps") or ():
        if isinstance(step, Mapping) and (step.get("status") == ERROR or str(step.get("status_humanized", "")).lower() == "error"):
            return first_text(step.get("name"))
    return None


def run_event(run: Mapping[str, Any], config: DbtCloudSourceConfig, *, now: datetime) -> AlertEvent | None:
    """The event a polled run means (None: unfinished or cancelled)."""
    status = run.get("status")
    if status not in (SUCCESS, ERROR):
        return None
    run_id = str(_run_id(run))
    job_id = str(run.get("job_definition_id") or "")
    job = _name(run.get("job")) or f"job {job_id}"
    environment = _name(run.get("environment")) or (f"environment {run['environment_id']}" if run.get("environment_id") else None)
    started, finished = parse_time(run.get("started_at")), parse_time(run.get("finished_at"))
    at = finished or parse_time(run.get("updated_at")) or now
    failing = status == ERROR
    step = failed_step(run) if failing else None
    message = first_text(run.get("status_message")) if failing else None
    links = {"dbt_cloud_run": str(run["href"])} if run.get("href") else run_link(config, run_id, run.get("project_id"))
    trigger = run.get("trigger")
    details: dict[str, Any] = {  # the order cards show them in (the first five)
        "Status": run.get("status_humanized") or ("Error" if failing else "Success"),
        "Failed step": step,
        "Message": message,
        "Environment": environment,
        "Run id": run_id,
        "Finished": iso(finished),
        "Started": iso(started),
        "Job id": job_id,
        "Trigger": first_text(trigger.get("cause")) if isinstance(trigger, Mapping) else None,
    }
    details.update(_record(job_id, job, run_id, failing, started, at, message or step, "poll"))
    return _event(config, job, job_id, failing, at, details, links, run_id, environment, step)


def webhook_event(payload: Mapping[str, Any], config: DbtCloudSourceConfig) -> AlertEvent | None:
    """The event a dbt Cloud webhook body means; None for ``job.run.started`` and cancelled runs.
    Raises :class:`WebhookRejected` (400) when a run event lacks what it must carry."""
    kind = payload.get("eventType")
    if not isinstance(kind, str):
        raise WebhookRejected(400, "no 'eventType' field")
    if kind not in ("job.run.completed", "job.run.errored"):
        return None
    data = payload.get("data")
    if not isinstance(data, Mapping):
        raise WebhookRejected(400, f"{kind}: no 'data' object")
    run_id, job_id = data.get("runId"), data.get("jobId")
    if not run_id or not job_id:
        raise WebhookRejected(400, f"{kind}: 'data.runId' and 'data.jobId' are required")
    run_status = str(data.get("runStatus") or "")
    if kind == "job.run.errored":
        failing = True
    elif run_status.lower() in ("success", "succeeded"):
        failing = False
    elif run_status.lower() in ("error", "errored", "failed"):
        failing = True
    else:
        return None  # cancelled (or a status this version does not know): nothing to say about health
    finished = parse_time(data.get("runErroredAt") if failing and data.get("runErroredAt") else data.get("runFinishedAt"))
    at = finished or parse_time(data.get("runErroredAt")) or parse_time(payload.get("timestamp"))
    if at is None:
        raise WebhookRejected(400, f"{kind}: no run finish time and no 'timestamp'")
    started = parse_time(data.get("runStartedAt"))
    job = first_text(data.get("jobName")) or f"job {job_id}"
    environment = first_text(data.get("environmentName"))
    message = first_text(data.get("runStatusMessage")) if failing else None
    details: dict[str, Any] = {  # the order cards show them in (the first five)
        "Status": run_status or ("Errored" if failing else "Success"),
        "Message": message,
        "Environment": environment,
        "Run id": str(run_id),
        "Finished": iso(at),
        "Started": iso(started),
        "Project": first_text(data.get("projectName")),
        "Job id": str(job_id),
        "Reason": first_text(data.get("runReason")),
    }
    details.update(_record(str(job_id), job, str(run_id), failing, started, at, message, "webhook"))
    links = run_link(config, run_id, data.get("projectId"))
    return _event(config, job, str(job_id), failing, at, details, links, str(run_id), environment, None)


def _record(
    job_id: str, job: str, run_id: str, failing: bool, started: datetime | None, finished: datetime | None, message: str | None, via: str
) -> dict[str, Any]:
    return external_job(
        source=SOURCE,
        job_id=job_id,
        job_name=job,
        run_id=run_id,
        status="failed" if failing else "succeeded",
        started_at=started,
        finished_at=finished,
        message=message,
        via=via,
    )


def _event(
    config: DbtCloudSourceConfig,
    job: str,
    job_id: str,
    failing: bool,
    at: datetime,
    details: dict[str, Any],
    links: dict[str, str],
    run_id: str,
    environment: str | None,
    step: str | None,
) -> AlertEvent:
    where = f" in {environment}" if environment else ""
    if failing:
        summary = f"dbt Cloud job failed: {job}{where}" + (f" at step {step}" if step else "")
    else:
        summary = f"dbt Cloud job succeeded: {job}{where}"
    return AlertEvent(
        source=SOURCE,
        kind=KIND,
        entity=job,
        status=Status.FAILING if failing else Status.PASSING,
        severity=config.severity,
        occurred_at=at,
        summary=summary,
        details={k: v for k, v in details.items() if v is not None and v != ""},
        owners=config.owners,
        tags={**config.tags, "dbt_cloud/job_id": job_id},
        links=links,
        run_id=run_id,
        next_action=(
            "Open the run in dbt Cloud, read the failed step's log, fix the model or test and rerun the job; "
            "the alert recovers on the job's next successful run."
        )
        if failing
        else None,
    )


def poll(
    client: DbtCloudClient, config: DbtCloudSourceConfig, *, now: datetime, cursors: Mapping[str, int] | None = None
) -> tuple[list[AlertEvent], dict[str, int]]:
    """One poll over every configured job (or the whole account): events, oldest first, and the
    new cursors (scope -> highest run id below which every run was seen finished)."""
    cursors = dict(cursors or {})
    events: list[AlertEvent] = []
    scopes: Sequence[int | None] = config.jobs or (None,)
    for job_id in scopes:
        scope = str(job_id) if job_id is not None else ALL_JOBS
        after = cursors.get(scope)
        runs = client.runs_after(job_id=job_id, after=after)
        chosen: list[Mapping[str, Any]] = list(runs)
        if after is None:  # first poll: the current state of each job, not its history
            latest: dict[Any, Mapping[str, Any]] = {}
            for run in runs:  # newest first
                if run.get("status") in FINISHED:
                    latest.setdefault(run.get("job_definition_id"), run)
            chosen = list(latest.values())
        for finished in sorted(chosen, key=_run_id):
            event = run_event(finished, config, now=now)
            if event is not None:
                events.append(event)
        cursors[scope] = _next_cursor(runs, after, now, config)
    return events, cursors


def _next_cursor(runs: Sequence[Mapping[str, Any]], after: int | None, now: datetime, config: DbtCloudSourceConfig) -> int:
    waiting = []
    for run in runs:
        if run.get("status") in FINISHED:
            continue
        created = parse_time(run.get("created_at"))
        if created is None or now - created < config.max_run_wait:
            waiting.append(_run_id(run))
    if waiting:
        return max(min(waiting) - 1, after or 0)
    return max([_run_id(r) for r in runs] + [after or 0])
