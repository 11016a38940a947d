"""Row-count and schema-drift checks for dlt assets, and dlt loads as audit records.

The checks read what dagster-dlt already records on every materialization (``rows_loaded``,
``jobs``, ``dagster/column_schema`` and one table schema per child table) from the instance's
history, so a plain ``@dlt_assets`` body needs no change. Why not yield check results from the
asset body with ``load_info``: ``@dlt_assets`` takes no ``check_specs``, and ``load_info``
exists only inside the run, so a re-executed check could not see it.

How the results are computed, and what real dlt does that shapes them:

- **Rows**: ``rows_loaded`` of the latest materialization (dlt's normalize count for the table in
  that run; for incremental or merge resources, the load's new rows, not the table's size).
  dagster-dlt omits the key when a load has 0 rows, so a dlt materialization (it always carries
  ``jobs``) without it counts as 0. The check fails below ``min_rows``, or below
  ``(1 - max_drop) * trailing average`` of the previous ``trailing_loads`` loads. The pipeline's
  first load (``first_run``) is left out of the average: it is often a backfill.
- **Schema drift**: the latest ``dagster/column_schema`` (and child tables) against the previous
  materialization's. dagster-dlt restores the schema from the destination on every run, so the
  schema only grows: a new column is reported by the one load that added it, and the check
  passes again on the next load (the alert opens and recovers). dlt never changes a column's
  type: a value that does not fit goes to a *variant* column (``amount`` bigint receiving text
  creates ``amount__v_text``), which this check reports as a type change of ``amount``.
- **Removed columns**: dlt never drops a column, so a field the source stopped sending stays in
  every schema and only shows in the data, as NULLs. Comparing schemas finds removals only after
  a dlt refresh. With ``detect_removed_columns=True`` the check asks the destination (through the
  dlt pipeline's SQL client, one ``COUNT(col)`` query over the two load ids) which columns had
  values in the previous load and none in the latest. It is off by default because it scans the
  table's columns in the warehouse on every check (billed on BigQuery); it needs the previous
  load's rows still in the table (``append``; not after ``replace``).

Limits: history is per asset key, not per partition; a materialization without dagster-dlt
metadata fails the check with a message saying so.

Usage::

    from dagster_monitoring.checks.dlt import audit_dlt_load, build_dlt_checks

    @dlt_assets(dlt_source=lending_source(), dlt_pipeline=pipeline)
    def lending(context: dg.AssetExecutionContext, dlt: DagsterDltResource, audit: AuditResource):
        yield from dlt.run(context=context, dlt_source=lending_source())  # a fresh source per run
        audit_dlt_load(audit, pipeline, run_id=context.run.run_id, log=context.log)  # optional

    defs = dg.Definitions(
        assets=[lending],
        asset_checks=build_dlt_checks(lending, min_rows=100, max_drop=0.5, trailing_loads=7),
        resources={"dlt": DagsterDltResource(), "audit": AuditResource()},
    )

Checks named ``dlt_schema_drift`` (WARN by default) and ``dlt_row_count`` (ERROR) appear on each
table's Checks tab and run after the load when the run selects them (the default for a job or
``dg.materialize`` over the assets and checks). ``min_rows`` also takes ``{"asset/key": n}``.
Failed results carry ``dagster_monitoring/source: dlt``, ``dagster_monitoring/kind``, the drift
(``drift`` JSON and ``drift_summary`` text) or the counts, and ``dagster_monitoring/next_action``,
which the alert sensor turns into the alert.
"""

import hashlib
import logging
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg

from ..alerting.redact import get_logger, redact
from ..audit.records import DltLoadRecord
from ..audit.resource import AuditResource
from ..audit.trail import AuditTrail
from ..translator import KIND_METADATA_KEY, NEXT_ACTION_METADATA_KEY, SOURCE_METADATA_KEY

if TYPE_CHECKING:
    from dlt.common.pipeline import LoadInfo, NormalizeInfo
    from dlt.pipeline.pipeline import Pipeline

    from ..audit.sinks.base import WriteResult

_log = get_logger(__name__)

SCHEMA_DRIFT_CHECK = "dlt_schema_drift"
ROW_COUNT_CHECK = "dlt_row_count"
CheckKind = Literal["schema_drift", "row_count"]
CHECK_NAMES: Mapping[str, str] = {"schema_drift": SCHEMA_DRIFT_CHECK, "row_count": ROW_COUNT_CHECK}

# What dagster-dlt writes on each materialization (dagster_dlt.resource.extract_resource_metadata).
COLUMN_SCHEMA_KEY = "dagster/column_schema"
ROWS_LOADED_KEY = "rows_loaded"
JOBS_KEY = "jobs"
FIRST_RUN_KEY = "first_run"
PIPELINE_METADATA_KEY = "dagster_dlt/pipeline"  # dagster_dlt.constants.META_KEY_PIPELINE
DLT_COLUMN_PREFIX = "_dlt"
LOAD_ID_COLUMN = "_dlt_load_id"
_JOB_STATE_DIRS = {"completed_jobs", "failed_jobs", "started_jobs", "new_jobs"}
_LOAD_ID = re.compile(r"^\d+(\.\d+)?$")
# dlt names a variant column <column><path separator>v_<type>: "__" in snake_case, "▶" in direct naming.
_VARIANT = re.compile(r"^(?P<base>.+?)(?:__|▶)v_(?P<type>[a-z0-9]+)$")

AssetRef = dg.AssetsDefinition | dg.AssetSpec | dg.AssetKey | str | Sequence[str]  # pass AssetKey for a multi-part key


# -- what one materialization says about a load -----------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of a dlt table as dagster-dlt recorded it; ``table`` is "" for the asset's own table."""

    name: str
    type: str
    table: str = ""
    variant: bool = False

    @property
    def qualified(self) -> str:
        return f"{self.table}.{self.name}" if self.table else self.name


@dataclass(frozen=True)
class LoadSnapshot:
    """The facts of one dagster-dlt materialization that the checks compare."""

    run_id: str
    timestamp: float
    rows_loaded: int | None  # None: the materialization carries no dagster-dlt metadata
    columns: Mapping[str, Column]  # by qualified name
    first_run: bool = False
    table_name: str | None = None  # the dlt table, from the load's jobs
    load_ids: tuple[str, ...] = ()

    @classmethod
    def from_record(cls, record: dg.EventLogRecord) -> "LoadSnapshot":
        materialization = record.asset_materialization
        metadata = dict(materialization.metadata) if materialization else {}
        rows = metadata.get(ROWS_LOADED_KEY)
        jobs = _value(metadata.get(JOBS_KEY))
        jobs = [job for job in jobs if isinstance(job, Mapping)] if isinstance(jobs, list) else None
        if rows is not None:
            rows_loaded: int | None = int(_value(rows))
        else:  # dagster-dlt leaves rows_loaded out of a load of 0 rows but always writes jobs
            rows_loaded = 0 if jobs is not None else None
        return cls(
            run_id=record.run_id,
            timestamp=record.timestamp,
            rows_loaded=rows_loaded,
            columns=columns_from_metadata(metadata),
            first_run=bool(_value(metadata.get(FIRST_RUN_KEY)) or False),
            table_name=next((str(job["table_name"]) for job in jobs or () if job.get("table_name")), None),
            load_ids=tuple(dict.fromkeys(i for i in (_load_id_of_job(job) for job in jobs or ()) if i)),
        )


def _value(metadata_value: Any) -> Any:
    return getattr(metadata_value, "value", metadata_value)


def _load_id_of_job(job: Mapping[str, Any]) -> str | None:
    """dlt keeps a job file in <load_id>/<state>_jobs/; the load id is not in the metadata otherwise."""
    path = job.get("file_path")
    if not path:
        return None
    parent = PurePath(str(path)).parent
    load_id = parent.parent.name
    return load_id if parent.name in _JOB_STATE_DIRS and _LOAD_ID.match(load_id) else None


def columns_from_metadata(metadata: Mapping[str, Any]) -> dict[str, Column]:
    """Columns of ``dagster/column_schema`` and of the child-table schemas dagster-dlt adds by table name."""
    columns: dict[str, Column] = {}
    for key, value in metadata.items():
        schema = _value(value)
        if not isinstance(schema, dg.TableSchema):
            continue
        table = "" if key == COLUMN_SCHEMA_KEY else key
        for col in schema.columns:
            other = col.constraints.other if col.constraints else ()
            column = Column(name=col.name, type=col.type, table=table, variant="variant" in (other or ()))
            columns[column.qualified] = column
    return columns


# -- schema drift ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaDrift:
    """Columns added, removed and type-changed between two loads; JSON-ready dicts."""

    added: tuple[dict[str, Any], ...] = ()  # {"column", "type"}
    removed: tuple[dict[str, Any], ...] = ()  # {"column", "type", "reason"}
    type_changed: tuple[dict[str, Any], ...] = ()  # {"column", "from", "to", "variant_column"}

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.type_changed)

    def as_json(self) -> dict[str, list[dict[str, Any]]]:
        return {"added": list(self.added), "removed": list(self.removed), "type_changed": list(self.type_changed)}

    def summary(self) -> str:
        """One readable line, e.g. ``added: currency (text); type changed: amount bigint → text (amount__v_text)``."""
        parts = []
        if self.added:
            parts.append("added: " + ", ".join(f"{c['column']} ({c['type']})" for c in self.added))
        if self.removed:
            parts.append("removed: " + ", ".join(f"{c['column']} ({c['reason']})" for c in self.removed))
        if self.type_changed:
            parts.append(
                "type changed: "
                + ", ".join(
                    f"{c['column']} {c['from'] or '?'} → {c['to']}" + (f" ({c['variant_column']})" if c.get("variant_column") else "")
                    for c in self.type_changed
                )
            )
        return "; ".join(parts) or "no change"

    def with_removed_by_data(self, removed: Iterable[dict[str, Any]], type_changed: Iterable[dict[str, Any]]) -> "SchemaDrift":
        known = {c["column"] for c in (*self.removed, *self.type_changed)}
        return SchemaDrift(
            added=self.added,
            removed=self.removed + tuple(c for c in removed if c["column"] not in known),
            type_changed=self.type_changed + tuple(c for c in type_changed if c["column"] not in known),
        )


def variant_base(column: Column, columns: Mapping[str, Column]) -> Column | None:
    """The column a dlt variant column holds the misfit values of, if ``columns`` has it."""
    match = _VARIANT.match(column.name)
    if not match:
        return None
    return columns.get(Column(name=match["base"], type="", table=column.table).qualified)


def diff_columns(previous: Mapping[str, Column], current: Mapping[str, Column]) -> SchemaDrift:
    """Schema drift between two column sets (by qualified name); pure.

    A new variant column (flagged ``variant`` by dlt, or named like one next to an existing base
    column) is a type change of its base column, not an added column.
    """
    added, type_changed = [], []
    for name, col in current.items():
        before = previous.get(name)
        if before is None:
            base = variant_base(col, current)
            if col.variant or (base is not None and base.qualified in previous):
                base_name = base.qualified if base else name
                type_changed.append(
                    {
                        "column": base_name,
                        "from": base.type if base else None,
                        "to": col.type,
                        "variant_column": name,
                    }
                )
            else:
                added.append({"column": name, "type": col.type})
        elif before.type != col.type:
            type_changed.append({"column": name, "from": before.type, "to": col.type, "variant_column": None})
    removed = [
        {"column": name, "type": col.type, "reason": "dropped from the dlt schema"} for name, col in previous.items() if name not in current
    ]
    return SchemaDrift(tuple(added), tuple(removed), tuple(type_changed))


def drift_from_populated_columns(
    columns: Mapping[str, Column], populated_before: Collection[str], populated_now: Collection[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(removed, type_changed) from which root-table columns had values in the previous and latest load.

    A column with values before and none now is removed, unless its values now land in one of its
    variant columns: then its type changed.
    """
    removed: list[dict[str, Any]] = []
    type_changed: list[dict[str, Any]] = []
    for name, col in columns.items():
        if col.table or col.variant or col.name.startswith(DLT_COLUMN_PREFIX):
            continue
        if name not in populated_before or name in populated_now:
            continue
        variants = [v for v in columns.values() if v.qualified in populated_now and variant_base(v, columns) == col]
        if variants:
            type_changed.extend({"column": name, "from": col.type, "to": v.type, "variant_column": v.qualified} for v in variants)
        else:
            removed.append({"column": name, "type": col.type, "reason": "no values in this load"})
    return removed, type_changed


def probe_populated_columns(pipeline: "Pipeline", table_name: str, load_ids: Sequence[str], columns: Sequence[str]) -> dict[str, set[str]]:
    """Load id -> columns with at least one non-NULL value in that load; one query on the destination."""
    with pipeline.sql_client() as client:
        load_col = client.escape_column_name(LOAD_ID_COLUMN)
        counts = ", ".join(f"COUNT({client.escape_column_name(c)})" for c in columns)
        sql = (
            f"SELECT {load_col}, {counts} FROM {client.make_qualified_table_name(table_name)}"
            f" WHERE {load_col} IN ({', '.join(['%s'] * len(load_ids))}) GROUP BY {load_col}"
        )
        rows = client.execute_sql(sql, *load_ids) or []
    return {str(row[0]): {c for c, n in zip(columns, row[1:], strict=False) if n} for row in rows}


# -- row counts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowCountVerdict:
    passed: bool
    rows: int
    min_rows: int | None
    max_drop: float | None
    baseline: tuple[int, ...]  # rows of the previous loads averaged, newest first
    reasons: tuple[str, ...]

    @property
    def trailing_average(self) -> float | None:
        return sum(self.baseline) / len(self.baseline) if self.baseline else None

    @property
    def drop_threshold(self) -> float | None:
        average = self.trailing_average
        return None if average is None or self.max_drop is None else (1 - self.max_drop) * average


def evaluate_row_count(rows: int, baseline: Sequence[int], *, min_rows: int | None, max_drop: float | None) -> RowCountVerdict:
    """Fail below ``min_rows`` or below ``(1 - max_drop) * mean(baseline)``; pure."""
    verdict = RowCountVerdict(True, rows, min_rows, max_drop, tuple(baseline), ())
    reasons = []
    if min_rows is not None and rows < min_rows:
        reasons.append(f"below the minimum of {min_rows}")
    threshold, average = verdict.drop_threshold, verdict.trailing_average
    if threshold is not None and average is not None and rows < threshold:
        drop = 1 - rows / average if average else 0.0
        reasons.append(
            f"{drop:.0%} below the trailing average of {average:.1f} rows over {len(baseline)} previous load(s)"
            f" (allowed drop {max_drop:.0%})"
        )
    return RowCountVerdict(not reasons, rows, min_rows, max_drop, tuple(baseline), tuple(reasons))


# -- the checks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DltCheckSettings:
    """Thresholds and severities of :func:`build_dlt_checks`; validated on creation."""

    min_rows: int | None = None
    min_rows_by_key: Mapping[dg.AssetKey, int] = field(default_factory=dict)
    max_drop: float | None = 0.5
    trailing_loads: int = 5
    drift_severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.WARN
    row_count_severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR
    blocking: bool = False
    detect_removed_columns: bool = False

    def __post_init__(self) -> None:
        for where, value in [
            ("min_rows", self.min_rows),
            *((f"min_rows[{k.to_user_string()!r}]", v) for k, v in self.min_rows_by_key.items()),
        ]:
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{where} must be a whole number of rows >= 0, got {value!r}")
        if self.max_drop is not None and not (isinstance(self.max_drop, (int, float)) and 0 < self.max_drop < 1):
            raise ValueError(
                f"max_drop must be a fraction between 0 and 1 (0.5 fails a load below half the trailing average), got {self.max_drop!r}"
            )
        if isinstance(self.trailing_loads, bool) or not isinstance(self.trailing_loads, int) or not 1 <= self.trailing_loads <= 1000:
            raise ValueError(f"trailing_loads must be a whole number of loads from 1 to 1000, got {self.trailing_loads!r}")
        for where, severity in (("drift_severity", self.drift_severity), ("row_count_severity", self.row_count_severity)):
            if not isinstance(severity, dg.AssetCheckSeverity):
                raise TypeError(f"{where} must be a dg.AssetCheckSeverity (WARN or ERROR), got {severity!r}")

    def min_rows_for(self, key: dg.AssetKey) -> int | None:
        return self.min_rows_by_key.get(key, self.min_rows)


def _to_key(ref: Any) -> dg.AssetKey:
    if isinstance(ref, dg.AssetKey):
        return ref
    if isinstance(ref, dg.AssetSpec):
        return ref.key
    if isinstance(ref, str):
        return dg.AssetKey.from_user_string(ref)
    if isinstance(ref, Sequence) and ref and all(isinstance(part, str) for part in ref):
        return dg.AssetKey(list(ref))
    raise TypeError(f"build_dlt_checks: cannot use {ref!r} as an asset; pass an @dlt_assets definition, an AssetKey or 'path/to/key'")


def _resolve_assets(assets: AssetRef | Iterable[AssetRef]) -> tuple[list[dg.AssetKey], dict[dg.AssetKey, Any], str | None]:
    """(keys, dlt pipeline by key where known, the op name of a single assets definition)."""
    single = isinstance(assets, (dg.AssetsDefinition, dg.AssetSpec, dg.AssetKey, str))
    refs: list[Any] = [assets] if single else list(assets)  # type: ignore[arg-type]
    keys: list[dg.AssetKey] = []
    pipelines: dict[dg.AssetKey, Any] = {}
    definitions = [ref for ref in refs if isinstance(ref, dg.AssetsDefinition)]
    for ref in refs:
        if isinstance(ref, dg.AssetsDefinition):
            for key in ref.keys:
                keys.append(key)
                pipeline = ref.metadata_by_key.get(key, {}).get(PIPELINE_METADATA_KEY)
                if pipeline is not None:
                    pipelines[key] = pipeline
        else:
            keys.append(_to_key(ref))
    keys = list(dict.fromkeys(keys))
    single_name = definitions[0].node_def.name if len(definitions) == 1 and len(refs) == 1 else None
    return keys, pipelines, single_name


def build_dlt_checks(
    assets: AssetRef | Iterable[AssetRef],
    *,
    min_rows: int | Mapping[dg.AssetKey | str | Sequence[str], int] | None = None,
    max_drop: float | None = 0.5,
    trailing_loads: int = 5,
    drift_severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.WARN,
    row_count_severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    blocking: bool = False,
    detect_removed_columns: bool = False,
    checks: Collection[CheckKind | str] = ("schema_drift", "row_count"),
    name: str | None = None,
) -> list[dg.AssetChecksDefinition]:
    """Schema-drift and row-count checks on dlt assets, read from the instance's materialization history.

    Args:
        assets: the ``@dlt_assets`` definition(s), or asset keys of dagster-dlt assets.
        min_rows: fail a load with fewer rows; an int for every table or ``{asset key: n}``.
        max_drop: fail a load below ``(1 - max_drop) *`` the trailing average (0.5: half); None: off.
        trailing_loads: how many previous loads (not counting the pipeline's first) are averaged.
        drift_severity / row_count_severity: the results' severity (WARN / ERROR by default).
        blocking: block downstream assets when a check fails (in the same run).
        detect_removed_columns: query the destination for columns that stopped getting values
            (needs the ``@dlt_assets`` definition, whose metadata holds the dlt pipeline).
        checks: which checks to build.
        name: the check op's name (default: derived from the assets).

    Returns one multi-asset check (one op, ``can_subset``), in a list to pass to
    ``asset_checks=``.
    """
    keys, pipelines, single_name = _resolve_assets(assets)
    if not keys:
        raise ValueError("build_dlt_checks: no assets given; pass the @dlt_assets definition or the asset keys of its tables")
    unknown_kinds = sorted(set(checks) - set(CHECK_NAMES))
    if unknown_kinds or not checks:
        raise ValueError(f"build_dlt_checks: checks must be a non-empty subset of {sorted(CHECK_NAMES)}, got {sorted(checks)!r}")
    by_key: dict[dg.AssetKey, int] = {}
    if isinstance(min_rows, Mapping):
        by_key = {_to_key(k): v for k, v in min_rows.items()}
        strays = sorted(k.to_user_string() for k in by_key if k not in keys)
        if strays:
            raise ValueError(
                f"build_dlt_checks: min_rows names asset(s) {strays} that are not among the checked assets "
                f"{sorted(k.to_user_string() for k in keys)}"
            )
    settings = DltCheckSettings(
        min_rows=None if isinstance(min_rows, Mapping) else min_rows,
        min_rows_by_key=by_key,
        max_drop=max_drop,
        trailing_loads=trailing_loads,
        drift_severity=drift_severity,
        row_count_severity=row_count_severity,
        blocking=blocking,
        detect_removed_columns=detect_removed_columns,
    )
    if "row_count" in checks and max_drop is None and min_rows is None:
        raise ValueError("build_dlt_checks: the row-count check needs min_rows or max_drop; set one, or leave 'row_count' out of checks")
    if detect_removed_columns and "schema_drift" in checks:
        missing = sorted(k.to_user_string() for k in keys if k not in pipelines)
        if missing:
            raise ValueError(
                f"build_dlt_checks: detect_removed_columns needs the dlt pipeline, which only the @dlt_assets definition carries; "
                f"pass the definition instead of the key(s) {missing}"
            )

    specs = [
        dg.AssetCheckSpec(CHECK_NAMES[kind], asset=key, blocking=blocking, description=_SPEC_DESCRIPTIONS[kind])
        for key in keys
        for kind in ("schema_drift", "row_count")
        if kind in checks
    ]
    op_name = name or (f"{single_name}_dlt_checks" if single_name else _default_name(keys))

    @dg.multi_asset_check(specs=specs, name=op_name, can_subset=True, description="dlt row counts and schema drift")
    def _dlt_checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        selected = context.selected_asset_check_keys
        for key in keys:
            wanted = {kind for kind in checks if dg.AssetCheckKey(key, CHECK_NAMES[kind]) in selected}
            if not wanted:
                continue
            records = context.instance.fetch_materializations(key, limit=settings.trailing_loads + 2).records
            history = [LoadSnapshot.from_record(r) for r in records]
            if "schema_drift" in wanted:
                yield schema_drift_result(key, history, settings, pipeline=pipelines.get(key), log=context.log)
            if "row_count" in wanted:
                yield row_count_result(key, history, settings)

    return [_dlt_checks]


_SPEC_DESCRIPTIONS: Mapping[str, str] = {
    "schema_drift": "Columns added, removed or type-changed (dlt variant columns) since the previous dlt load.",
    "row_count": "Rows of the latest dlt load against a minimum and the trailing average of previous loads.",
}


def _default_name(keys: Sequence[dg.AssetKey]) -> str:
    digest = hashlib.sha1("\n".join(sorted(k.to_user_string() for k in keys)).encode()).hexdigest()[:8]
    return f"dlt_checks_{digest}"


def _base_metadata(kind: str) -> dict[str, Any]:
    return {SOURCE_METADATA_KEY: "dlt", KIND_METADATA_KEY: kind}


def _unusable(
    key: dg.AssetKey, check: str, kind: str, history: Sequence[LoadSnapshot], severity: dg.AssetCheckSeverity
) -> dg.AssetCheckResult | None:
    """A failed result when there is nothing dlt-shaped to check, else None."""
    table = key.to_user_string()
    if not history:
        reason = f"{table} has no materialization yet: materialize the dlt asset before running {check}"
        action = f"Materialize {table} (its @dlt_assets), then re-run the check."
    elif history[0].rows_loaded is None:
        reason = (
            f"the latest materialization of {table} has no dagster-dlt metadata ({ROWS_LOADED_KEY}/{JOBS_KEY}): "
            f"is it materialized by @dlt_assets?"
        )
        action = f"Point build_dlt_checks at dagster-dlt assets only, or re-materialize {table} through DagsterDltResource.run."
    else:
        return None
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=check,
        passed=False,
        severity=severity,
        description=reason,
        metadata={**_base_metadata(kind), NEXT_ACTION_METADATA_KEY: action},
    )


def schema_drift_result(
    key: dg.AssetKey,
    history: Sequence[LoadSnapshot],
    settings: DltCheckSettings,
    *,
    pipeline: Any = None,
    log: logging.Logger | None = None,
) -> dg.AssetCheckResult:
    """The drift check's result from the asset's loads, newest first."""
    unusable = _unusable(key, SCHEMA_DRIFT_CHECK, "schema_drift", history, settings.drift_severity)
    if unusable:
        return unusable
    table = key.to_user_string()
    latest = history[0]
    previous = next((s for s in history[1:] if s.rows_loaded is not None), None)
    metadata: dict[str, Any] = {**_base_metadata("schema_drift"), "columns_now": len(latest.columns), "load_run_id": latest.run_id}
    if previous is None:
        return dg.AssetCheckResult(
            asset_key=key,
            check_name=SCHEMA_DRIFT_CHECK,
            passed=True,
            severity=settings.drift_severity,
            description=f"First load of {table}: {len(latest.columns)} column(s) recorded as the baseline.",
            metadata={**metadata, "drift": dg.MetadataValue.json(SchemaDrift().as_json()), "drift_summary": "first load"},
        )
    drift = diff_columns(previous.columns, latest.columns)
    if settings.detect_removed_columns and pipeline is not None:
        drift, probe_note = _probe_removed(drift, latest, history, pipeline, table, log or _log)
        metadata["removed_columns_probe"] = probe_note
    metadata.update(
        {
            "drift": dg.MetadataValue.json(drift.as_json()),
            "drift_summary": drift.summary(),
            "added_columns": len(drift.added),
            "removed_columns": len(drift.removed),
            "type_changed_columns": len(drift.type_changed),
            "columns_before": len(previous.columns),
            "previous_load_run_id": previous.run_id,
        }
    )
    if not drift:
        return dg.AssetCheckResult(
            asset_key=key,
            check_name=SCHEMA_DRIFT_CHECK,
            passed=True,
            severity=settings.drift_severity,
            description=f"No schema change in {table} since the previous load ({len(latest.columns)} columns).",
            metadata=metadata,
        )
    metadata[NEXT_ACTION_METADATA_KEY] = drift_next_action(table, drift)
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=SCHEMA_DRIFT_CHECK,
        passed=False,
        severity=settings.drift_severity,
        description=f"Schema of {table} changed since the previous load: {drift.summary()}",
        metadata=metadata,
    )


def _probe_removed(
    drift: SchemaDrift, latest: LoadSnapshot, history: Sequence[LoadSnapshot], pipeline: Any, table: str, log: logging.Logger
) -> tuple[SchemaDrift, str]:
    """Add columns that stopped getting values; never raises (a failed probe is reported, not fatal)."""
    before = next((s for s in history[1:] if s.load_ids and s.rows_loaded), None)
    if not latest.rows_loaded or not latest.load_ids or latest.table_name is None:
        return drift, "not evaluated: the latest load has no rows"
    if before is None:
        return drift, "not evaluated: no earlier load with rows"
    columns = [c.name for c in latest.columns.values() if not c.table and not c.name.startswith(DLT_COLUMN_PREFIX)]
    if not columns:
        return drift, "not evaluated: no data columns"
    try:
        populated = probe_populated_columns(pipeline, latest.table_name, [*latest.load_ids, *before.load_ids], columns)
    except Exception as exc:  # noqa: BLE001 - the destination is unreachable or the table moved: report, do not fail the check
        log.warning("dlt removed-column probe of %s failed: %s", table, redact(exc))
        return drift, f"failed: {type(exc).__name__}: {redact(exc)}"[:500]
    now = set().union(*(populated.get(i, set()) for i in latest.load_ids))
    then_ids = [i for i in before.load_ids if i in populated]
    if not then_ids:
        return drift, "not evaluated: the previous load's rows are no longer in the table (replace or merge)"
    then = set().union(*(populated[i] for i in then_ids))
    removed, type_changed = drift_from_populated_columns(latest.columns, then, now)
    return drift.with_removed_by_data(removed, type_changed), f"compared load(s) {list(latest.load_ids)} with {then_ids}"


def drift_next_action(table: str, drift: SchemaDrift) -> str:
    steps = []
    if drift.added:
        steps.append(f"check that downstream models of {table} handle the new column(s) {', '.join(c['column'] for c in drift.added)}")
    if drift.type_changed:
        variants = [c["variant_column"] for c in drift.type_changed if c.get("variant_column")]
        where = f" (dlt put the values in {', '.join(variants)})" if variants else ""
        steps.append(
            "fix the source or pin the type with a dlt column hint or schema contract for "
            f"{', '.join(c['column'] for c in drift.type_changed)}{where}"
        )
    if drift.removed:
        steps.append(f"ask the source owner about {', '.join(c['column'] for c in drift.removed)}; downstream models now read NULLs")
    text = "; ".join(steps)
    return text[0].upper() + text[1:] + "."


def _baseline(history: Sequence[LoadSnapshot], trailing_loads: int) -> list[int]:
    """Rows of the previous loads, newest first, without the pipeline's first load (often a backfill)."""
    earlier = [s for s in history[1:] if s.rows_loaded is not None and not s.first_run]
    return [s.rows_loaded for s in earlier[:trailing_loads] if s.rows_loaded is not None]


def row_count_result(key: dg.AssetKey, history: Sequence[LoadSnapshot], settings: DltCheckSettings) -> dg.AssetCheckResult:
    """The row-count check's result from the asset's loads, newest first."""
    unusable = _unusable(key, ROW_COUNT_CHECK, "row_count", history, settings.row_count_severity)
    if unusable:
        return unusable
    table = key.to_user_string()
    latest = history[0]
    rows = latest.rows_loaded or 0
    verdict = evaluate_row_count(
        rows, _baseline(history, settings.trailing_loads), min_rows=settings.min_rows_for(key), max_drop=settings.max_drop
    )
    metadata: dict[str, Any] = {
        **_base_metadata("row_count"),
        "rows_loaded": rows,
        "baseline_loads": len(verdict.baseline),
        "baseline_rows": dg.MetadataValue.json(list(verdict.baseline)),
        "load_run_id": latest.run_id,
    }
    if verdict.min_rows is not None:
        metadata["min_rows"] = verdict.min_rows
    if verdict.trailing_average is not None:
        metadata["trailing_average"] = round(verdict.trailing_average, 3)
    if verdict.drop_threshold is not None:
        metadata["drop_threshold"] = round(verdict.drop_threshold, 3)
        metadata["max_drop"] = verdict.max_drop
    if verdict.passed:
        against = [f"minimum {verdict.min_rows}"] if verdict.min_rows is not None else []
        if verdict.trailing_average is not None:
            against.append(f"trailing average {verdict.trailing_average:.1f} over {len(verdict.baseline)} load(s)")
        description = f"{table} loaded {rows} rows" + (f" ({'; '.join(against)})." if against else " (no baseline yet).")
    else:
        description = f"{table} loaded {rows} rows: {'; '.join(verdict.reasons)}."
        metadata[NEXT_ACTION_METADATA_KEY] = (
            f"Compare the {rows} rows of this load of {table} with the source: check the source system's own count, "
            "the API filters and pagination, and the dlt incremental cursor; re-run the load once the source is complete."
        )
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=ROW_COUNT_CHECK,
        passed=verdict.passed,
        severity=settings.row_count_severity,
        description=description,
        metadata=metadata,
    )


# -- dlt loads as audit records ----------------------------------------------------------------


def _aware(ts: Any) -> datetime | None:
    if not isinstance(ts, datetime):
        return None
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts


def _table_changes(package: Any, table: str) -> dict[str, list[dict[str, Any]]]:
    """{"added", "removed", "type_changed"} of one table from a load package's ``schema_update``."""
    new_columns = ((package.schema_update or {}).get(table) or {}).get("columns") or {}
    known: dict[str, Any] = {}
    if package.schema is not None and table in package.schema.tables:
        known = package.schema.tables[table].get("columns") or {}
    columns = {name: Column(name=name, type=str(col.get("data_type")), variant=bool(col.get("variant"))) for name, col in known.items()}
    added, type_changed = [], []
    for name, col in new_columns.items():
        column = Column(name=name, type=str(col.get("data_type")), variant=bool(col.get("variant")))
        base = variant_base(column, columns) if column.variant else None
        if column.variant:
            type_changed.append(
                {
                    "column": base.name if base else name,
                    "from": base.type if base else None,
                    "to": column.type,
                    "variant_column": name,
                }
            )
        else:
            added.append({"column": name, "type": column.type})
    return {"added": added, "removed": [], "type_changed": type_changed}  # dlt never drops a column


def build_dlt_load_records(
    load_info: "LoadInfo", *, normalize_info: "NormalizeInfo | None" = None, run_id: str | None = None
) -> list[DltLoadRecord]:
    """One :class:`DltLoadRecord` per load package and data table (dlt's own ``_dlt_*`` tables left out); pure.

    Rows come from ``normalize_info`` (``pipeline.last_trace.last_normalize_info``; LoadInfo has
    no row counts): None without it. Schema changes come from each package's ``schema_update``.
    """
    pipeline_name = getattr(load_info.pipeline, "pipeline_name", None)
    if not pipeline_name:
        raise ValueError("build_dlt_load_records: load_info.pipeline has no pipeline_name; pass the LoadInfo that pipeline.run returned")
    rows_by_load: dict[str, dict[str, int]] = {}
    for load_id, metrics in ((normalize_info.metrics if normalize_info else None) or {}).items():
        counts = rows_by_load.setdefault(load_id, {})
        for metric in metrics:
            for table, writer in (metric.get("table_metrics") or {}).items():
                counts[table] = counts.get(table, 0) + int(writer.items_count)
    records = []
    for package in load_info.load_packages:
        job_tables = [job.job_file_info.table_name for jobs in package.jobs.values() for job in jobs]
        tables = dict.fromkeys([*job_tables, *(package.schema_update or {})])
        event_ts = _aware(package.completed_at) or _aware(load_info.finished_at) or datetime.now(timezone.utc)
        for table in tables:
            if table.startswith(DLT_COLUMN_PREFIX):
                continue
            rows = rows_by_load.get(package.load_id, {}).get(table, 0) if normalize_info is not None else None
            records.append(
                DltLoadRecord.build(
                    event_ts=event_ts,
                    pipeline_name=pipeline_name,
                    load_id=package.load_id,
                    table_name=table,
                    dataset_name=load_info.dataset_name,
                    rows_loaded=rows,
                    schema_changes=_table_changes(package, table),
                    run_id=run_id,
                )
            )
    return records  # type: ignore[return-value]


def audit_dlt_load(
    audit: AuditResource | AuditTrail, dlt_pipeline: "Pipeline", *, run_id: str | None = None, log: logging.Logger | None = None
) -> "WriteResult | None":
    """Write the pipeline's last load (``dlt_pipeline.last_trace``) to the audit trail; never raises.

    A sink outage is spooled by the trail; anything else (no trace, a record that does not
    validate) is logged and None returned, so the audit never fails the load.
    """
    logger = log or _log
    try:
        trace = dlt_pipeline.last_trace
        load_info = trace.last_load_info if trace else None
        if trace is None or load_info is None:
            logger.warning("dlt audit: pipeline %s has no load in its last trace; nothing written", dlt_pipeline.pipeline_name)
            return None
        records = build_dlt_load_records(load_info, normalize_info=trace.last_normalize_info, run_id=run_id)
        trail = audit.get_trail() if isinstance(audit, AuditResource) else audit
        result = trail.write(records)
        if result.spooled:
            logger.warning("dlt audit: %d row(s) of pipeline %s spooled for the next write", result.spooled, dlt_pipeline.pipeline_name)
        return result
    except Exception as exc:  # noqa: BLE001 - the audit must never fail the load
        logger.error("dlt audit: could not record the load of pipeline %s: %s", getattr(dlt_pipeline, "pipeline_name", "?"), redact(exc))
        return None
