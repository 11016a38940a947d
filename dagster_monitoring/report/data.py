"""What the on-call report shows, read from the audit views through the sink (DuckDB or BigQuery).

Every query is BigQuery SQL on the curated views, transpiled per sink by
:func:`~..audit.read.run_query` (the one path ``audit query`` uses), so both backends give the
same report. Filters (severity, owners, sources) are applied here, in Python, on rows the
views already reduced: one code path for both dialects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from ..audit.read import read_view, rows_as_dicts, run_query, split_owners, utc
from ..audit.sinks.base import AuditSink

SEVERITIES = ("CRITICAL", "ERROR", "WARN")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}
HEATMAP_DAYS = 9
HEATMAP_ROWS = 40  # entities shown, most failures first
LIST_ROWS = 25  # flaky, open alerts, external jobs
JOB_ROWS = 10  # slowest / regressing jobs
RECENT_DAYS = 3  # regressing: p95 of the last 3 days against the days before
REGRESSION_RATIO = 1.2
# Another view is being added for Fivetran / dbt Cloud runs; the report shows it as soon as the
# schema has it, and says plainly that it is not there until then.
EXTERNAL_JOBS_VIEW = "vw_external_job_runs"


@dataclass(frozen=True)
class ReportFilters:
    """What a report or digest is about. Empty means everything."""

    min_severity: str = "WARN"  # CRITICAL | ERROR | WARN
    owners: tuple[str, ...] = ()  # an entity matches when one of its owners is listed
    sources: tuple[str, ...] = ()  # entity types (job, asset_check, dbt_test) or alert sources (dagster, fivetran, dbt_cloud)

    def severity_ok(self, severity: str | None) -> bool:
        return _RANK.get((severity or "").upper(), len(SEVERITIES)) <= _RANK[self.min_severity.upper()]

    def owners_ok(self, owners: str | None) -> bool:
        return not self.owners or bool(set(split_owners(owners)) & set(self.owners))

    def source_ok(self, *kinds: str | None) -> bool:
        return not self.sources or any(k in self.sources for k in kinds if k)

    def describe(self) -> str:
        parts = [] if self.min_severity.upper() == "WARN" else [f"severity ≥ {self.min_severity.upper()}"]
        parts += [f"owners: {', '.join(self.owners)}"] if self.owners else []
        parts += [f"sources: {', '.join(self.sources)}"] if self.sources else []
        return "; ".join(parts) or "everything"


def _number(value: Any) -> float | None:
    return None if value is None else float(value) if isinstance(value, (Decimal, int, float)) else float(str(value))


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


@dataclass(frozen=True)
class OwnerLoad:
    owner: str
    counts: Mapping[str, int]  # severity -> failing entities

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class HeatmapRow:
    entity_type: str
    entity: str
    total: int
    cells: tuple[int | None, ...]  # failures per day, oldest first; None: no outcome that day


@dataclass(frozen=True)
class JobTrend:
    job: str
    p95_s: float | None  # the latest day's p95
    recent_p95_s: float | None  # mean p95 over the last RECENT_DAYS days with runs
    before_p95_s: float | None  # mean p95 over the days before
    runs: int
    failures: int
    points: tuple[tuple[date, float], ...]  # (day, p95) oldest first

    @property
    def ratio(self) -> float | None:
        if not self.recent_p95_s or not self.before_p95_s:
            return None
        return self.recent_p95_s / self.before_p95_s


@dataclass(frozen=True)
class ExternalJobs:
    available: bool
    rows: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class ReportData:
    generated_at: datetime
    where: str
    filters: ReportFilters
    failing: list[dict[str, Any]]
    owners: list[OwnerLoad]
    heatmap_days: tuple[date, ...]
    heatmap: list[HeatmapRow]
    heatmap_more: int
    flaky: list[dict[str, Any]]
    slowest: list[JobTrend]
    regressing: list[JobTrend]
    open_alerts: list[dict[str, Any]]
    external: ExternalJobs

    @property
    def severity_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(SEVERITIES, 0)
        for row in self.failing:
            sev = (row.get("severity") or "ERROR").upper()
            counts[sev] = counts.get(sev, 0) + 1
        return counts

    @property
    def tickets(self) -> list[str]:
        return sorted({str(a["ticket_key"]) for a in self.open_alerts if a.get("ticket_key")})

    @property
    def nothing_failing(self) -> bool:
        return not self.failing and not self.open_alerts


def _owner_map(sink: AuditSink) -> dict[tuple[str, str], str]:
    """(entity_type, entity) -> owners, for views that do not carry owners (heatmap, flaky, jobs)."""
    sql = (
        "SELECT entity_type, entity, MAX(owners) AS owners FROM dagster_audit.vw_entity_events "
        "WHERE owners IS NOT NULL GROUP BY entity_type, entity"
    )
    return {(r["entity_type"], r["entity"]): r["owners"] for r in rows_as_dicts(run_query(sink, sql))}


def _owner_loads(failing: Iterable[Mapping[str, Any]]) -> list[OwnerLoad]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SEVERITIES, 0))
    for row in failing:
        sev = (row.get("severity") or "ERROR").upper()
        for owner in split_owners(row.get("owners")) or ["(no owner)"]:
            counts[owner][sev] = counts[owner].get(sev, 0) + 1
    loads = [OwnerLoad(owner, c) for owner, c in counts.items()]
    return sorted(loads, key=lambda o: (-o.counts["CRITICAL"], -o.counts["ERROR"], -o.total, o.owner))


def heatmap(rows: Sequence[Mapping[str, Any]], today: date, days: int = HEATMAP_DAYS) -> tuple[tuple[date, ...], list[HeatmapRow]]:
    """vw_failures_9d rows as one row per entity with failures, one cell per day (oldest first)."""
    axis = tuple(today - timedelta(days=days - 1 - i) for i in range(days))
    index = {d: i for i, d in enumerate(axis)}
    cells: dict[tuple[str, str], list[int | None]] = {}
    for r in rows:
        key = (r["entity_type"], r["entity"])
        line = cells.setdefault(key, [None] * days)
        i = index.get(_day(r["day"]))
        if i is not None:
            line[i] = int(r["failures"] or 0)
    out = [HeatmapRow(t, e, sum(c or 0 for c in line), tuple(line)) for (t, e), line in cells.items()]
    out = [r for r in out if r.total > 0]
    return axis, sorted(out, key=lambda r: (-r.total, r.entity_type, r.entity))


def job_trends(rows: Sequence[Mapping[str, Any]]) -> list[JobTrend]:
    """vw_run_summary rows (per job and day) as one p95 trend per job."""
    per_job: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        per_job[r["job_name"]].append(r)
    trends = []
    for job, days in per_job.items():
        days = sorted(days, key=lambda r: _day(r["run_date"]))
        points = tuple((_day(r["run_date"]), p) for r in days if (p := _number(r.get("p95_duration_s"))) is not None)
        values = [p for _, p in points]
        recent, before = values[-RECENT_DAYS:], values[:-RECENT_DAYS]
        trends.append(
            JobTrend(
                job=job,
                p95_s=values[-1] if values else None,
                recent_p95_s=sum(recent) / len(recent) if recent else None,
                before_p95_s=sum(before) / len(before) if len(before) >= RECENT_DAYS else None,
                runs=sum(int(r.get("runs") or 0) for r in days),
                failures=sum(int(r.get("failures") or 0) for r in days),
                points=points,
            )
        )
    return trends


EXTERNAL_COLUMNS = ("source", "job_name", "last_status", "last_event_at", "failures_9d", "owners", "message", "run_url")


def _external(sink: AuditSink, filters: ReportFilters) -> ExternalJobs:
    """Jobs outside Dagster (Fivetran, dbt Cloud, AWS): failing first, as ``audit query`` orders them."""
    from ..audit import schema

    try:
        schema.require_object(EXTERNAL_JOBS_VIEW)
    except KeyError:  # a schema without the view (an older package's files)
        return ExternalJobs(False, note=f"external job runs show here once the audit trail has the {EXTERNAL_JOBS_VIEW} view")
    rows = rows_as_dicts(read_view(sink, EXTERNAL_JOBS_VIEW, LIST_ROWS))
    kept = [r for r in rows if filters.source_ok(r.get("source")) and filters.owners_ok(r.get("owners"))]
    if filters.min_severity.upper() != "WARN":  # a severity floor: only failing jobs at or above it
        kept = [r for r in kept if r.get("failed") and filters.severity_ok(r.get("severity"))]
    return ExternalJobs(True, [{c: r.get(c) for c in EXTERNAL_COLUMNS} for r in kept])


def fetch_report(sink: AuditSink, *, filters: ReportFilters | None = None, now: datetime | None = None, where: str = "") -> ReportData:
    """Everything the report and the digest show, from ``sink``'s views."""
    filters = filters or ReportFilters()
    now = utc(now) if now else datetime.now(timezone.utc)
    owner_of = _owner_map(sink)

    def owned(entity_type: str, entity: str) -> bool:
        return filters.owners_ok(owner_of.get((entity_type, entity))) and filters.source_ok(entity_type)

    failing = [
        r
        for r in rows_as_dicts(read_view(sink, "vw_recent_failures"))
        if filters.severity_ok(r.get("severity")) and filters.owners_ok(r.get("owners")) and filters.source_ok(r.get("entity_type"))
    ]
    hm_rows = [r for r in rows_as_dicts(read_view(sink, "vw_failures_9d", where="failures_9d > 0")) if owned(r["entity_type"], r["entity"])]
    days, hm = heatmap(hm_rows, now.date())
    flaky = [r for r in rows_as_dicts(read_view(sink, "vw_flaky_checks")) if owned(r["entity_type"], r["entity"])][:LIST_ROWS]
    runs = [r for r in rows_as_dicts(read_view(sink, "vw_run_summary")) if owned("job", r["job_name"])]
    trends = job_trends(runs)
    slowest = sorted((t for t in trends if t.recent_p95_s), key=lambda t: (-(t.recent_p95_s or 0), t.job))[:JOB_ROWS]
    slower = [t for t in trends if t.ratio is not None and t.ratio >= REGRESSION_RATIO]
    regressing = sorted(slower, key=lambda t: (-(t.ratio or 0), t.job))[:JOB_ROWS]
    owned_entities = {r["entity"] for r in failing}
    alerts = [
        a
        for a in rows_as_dicts(read_view(sink, "vw_open_alerts"))
        if filters.severity_ok(a.get("severity"))
        and filters.source_ok(a.get("source"), a.get("kind"))
        and (not filters.owners or a.get("entity") in owned_entities or filters.owners_ok(owner_of.get(("job", a.get("entity") or ""))))
    ][:LIST_ROWS]
    return ReportData(
        generated_at=now,
        where=where,
        filters=filters,
        failing=failing,
        owners=_owner_loads(failing),
        heatmap_days=days,
        heatmap=hm[:HEATMAP_ROWS],
        heatmap_more=max(0, len(hm) - HEATMAP_ROWS),
        flaky=flaky,
        slowest=slowest,
        regressing=regressing,
        open_alerts=alerts,
        external=_external(sink, filters),
    )
