"""Runs in progress past their limit: FAILING while they run on, PASSING once they end.

The alert sensor calls :func:`long_run_events` every tick: one indexed query for the runs in
progress (``STARTED``), and for a job with no explicit limit one more for its latest successful
runs (kept ten minutes per job). The runs found too long are remembered in the sensor's cursor,
so their end (or their job's limit being raised) resolves the incident. One incident per job:
two runs of a job both too long are one alert, resolved when the last of them ends. A run still
too long is reported again once per ``policy.repeat_interval``, so the router's reminder says
how long it has run by then (and escalation by failures counts reminders, not ticks).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from fnmatch import fnmatchcase
from typing import Any

import dagster as dg

from ..alerting.durations import format_duration, parse_duration
from ..alerting.events import AlertEvent, Severity
from ..config import RunDurationConfig
from ..runtime import MonitoringRuntime
from ..translator import is_ad_hoc_job

MAX_RUNTIME_TAG = "dagster-monitoring/max_runtime"
NO_LIMIT = ("off", "none", "no")  # tag values that exempt a run (and keep history limits off it)
HISTORY_TTL_S = 600.0
MAX_RUNS_IN_PROGRESS = 1_000

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimeLimit:
    limit: timedelta
    source: str  # where it came from, as the card says it


class RuntimeLimits:
    """A run's limit: its tag, else the config per job, else the default, else N × the job's p95."""

    def __init__(self, config: RunDurationConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self._history: dict[str, tuple[float, timedelta | None, int]] = {}  # job -> (read at, p95, runs)

    def limit_for(self, instance: dg.DagsterInstance, run: dg.DagsterRun) -> RuntimeLimit | None:
        tagged = run.tags.get(MAX_RUNTIME_TAG)
        if tagged:
            if tagged.strip().lower() in NO_LIMIT:
                return None
            try:
                limit = parse_duration(tagged)
            except ValueError as exc:
                _log.warning("run %s: ignoring tag %s: %s", run.run_id, MAX_RUNTIME_TAG, exc)
            else:
                if limit > timedelta(0):
                    return RuntimeLimit(limit, f"run tag {MAX_RUNTIME_TAG}={tagged}")
        config = self.config
        exact = config.limits.get(run.job_name)
        if exact is not None:
            return RuntimeLimit(exact, f"run_duration.limits[{run.job_name!r}] in the monitoring config")
        for pattern, limit in config.limits.items():
            if fnmatchcase(run.job_name, pattern):
                return RuntimeLimit(limit, f"run_duration.limits[{pattern!r}] in the monitoring config")
        if config.default_limit is not None:
            return RuntimeLimit(config.default_limit, "run_duration.default_limit in the monitoring config")
        multiplier = config.p95_multiplier
        if multiplier is None or is_ad_hoc_job(run.job_name):  # ad-hoc runs select different assets each time
            return None
        p95, runs = self._p95(instance, run.job_name)
        if p95 is None:
            return None
        return RuntimeLimit(
            p95 * multiplier, f"{multiplier:g} × the p95 duration ({format_duration(p95)}) of the job's last {runs} successful runs"
        )

    def _p95(self, instance: dg.DagsterInstance, job_name: str) -> tuple[timedelta | None, int]:
        now = self.clock()
        known = self._history.get(job_name)
        if known is not None and now - known[0] < HISTORY_TTL_S:
            return known[1], known[2]
        records = instance.get_run_records(
            filters=dg.RunsFilter(job_name=job_name, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=self.config.history_runs
        )
        durations = sorted(r.end_time - r.start_time for r in records if r.start_time is not None and r.end_time is not None)
        p95 = None
        if len(durations) >= self.config.min_history_runs:
            p95 = timedelta(seconds=durations[math.ceil(0.95 * len(durations)) - 1])  # nearest rank
        self._history[job_name] = (now, p95, len(durations))
        return p95, len(durations)


def long_run_events(
    instance: dg.DagsterInstance,
    runtime: MonitoringRuntime,
    limits: RuntimeLimits,
    flagged: Mapping[str, Any],
    now: float | None = None,
    job_names: Sequence[str] | None = None,
) -> tuple[list[AlertEvent], dict[str, Any]]:
    """Events for the runs in progress past their limit and for those flagged before that are not
    any more; and what to remember in the cursor (run id -> entity, limit, last report).
    ``job_names``: only runs of these jobs (the alert sensor's own filter)."""
    now = time.time() if now is None else now
    translator = runtime.translator
    severity = Severity.parse(runtime.config.run_duration.severity)
    repeat_s = runtime.config.policy.repeat_interval.total_seconds()
    events: list[AlertEvent] = []
    still: dict[str, Any] = {}
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]), limit=MAX_RUNS_IN_PROGRESS):
        run = record.dagster_run
        if record.start_time is None or (job_names is not None and run.job_name not in job_names):
            continue
        limit = limits.limit_for(instance, run)
        elapsed = now - record.start_time
        if limit is None or elapsed <= limit.limit.total_seconds():
            continue
        before = flagged.get(run.run_id)
        memo = {"entity": translator.get_run_entity(run), "limit_s": limit.limit.total_seconds(), "source": limit.source}
        if before is None or now - float(before.get("at", 0)) >= repeat_s:
            events.append(
                translator.to_long_run_event(
                    run,
                    running=True,
                    occurred_at=_at(now),
                    elapsed=timedelta(seconds=elapsed),
                    limit=limit.limit,
                    limit_source=limit.source,
                    severity=severity,
                )
            )
            still[run.run_id] = {**memo, "at": now}
        else:
            still[run.run_id] = {**memo, "at": before["at"]}
    gone = [run_id for run_id in flagged if run_id not in still]
    if not gone:
        return events, still
    failing_entities = {m["entity"] for m in still.values()}
    by_id = {r.dagster_run.run_id: r for r in instance.get_run_records(filters=dg.RunsFilter(run_ids=gone))}
    for run_id in gone:
        memo = flagged[run_id]
        gone_record = by_id.get(run_id)
        if gone_record is None or memo.get("entity") in failing_entities:  # deleted, or another run of the job is still too long
            continue
        run = gone_record.dagster_run
        ended = gone_record.end_time if run.is_finished and gone_record.end_time is not None else None
        at = ended if ended is not None and ended > float(memo.get("at", 0)) else now
        start = gone_record.start_time if gone_record.start_time is not None else at
        events.append(
            translator.to_long_run_event(
                run,
                running=False,
                occurred_at=_at(at),
                elapsed=timedelta(seconds=max((ended or now) - start, 0.0)),
                limit=timedelta(seconds=float(memo.get("limit_s", 0))),
                limit_source=str(memo.get("source", "")),
                severity=severity,
                ended_status=run.status.value if run.is_finished else None,
            )
        )
    return events, still


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)
