"""What a human reads about one alert: a headline that says what it is, and 2-5 curated facts.

An event's ``details`` are whatever its source measured (raw metadata keys, durations in
seconds, repeated status lines). A presenter per kind of alert (dbt test, dlt schema drift,
row count, freshness, run failure, heartbeat, the state DB) picks what the on-call needs, in
plain labels with units; every receiver (Teams, e-mail, tickets) shows the same presentation, so
a fix lands everywhere at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .events import AlertEvent, Severity
from .failing_rows import FailingRows
from .redact import redact
from .text import truncate

MAX_HEADLINE = 180  # a card header, an e-mail subject: long check descriptions must not blow them up
MAX_FACT = 300
MAX_TEXT = 4000

# metadata keys the checks set (kept as strings here: the alert core imports nothing from Dagster)
DBT_TEST_TYPE = "dbt/test_type"
DBT_COLUMN = "dbt/column"
DBT_MODEL = "dbt/model"
DBT_FAILURES = "dbt/failures"
DBT_MESSAGE = "dbt/message"
DBT_FAILING_ROWS = "dbt/failing_rows"
# dagster-dbt's own check metadata, under plain names but not for humans
DBT_RAW_KEYS = ("status", "invocation_id", "unique_id", "Execution Duration")


@dataclass(frozen=True)
class Presentation:
    subject: str  # what it is: "dbt test not_null on stg_loans.principal_amount" (stable per incident)
    problem: str  # what is wrong with it, for the failing headline
    facts: list[tuple[str, str]] = field(default_factory=list)  # 2-5 (label, value with unit)
    text_label: str | None = None  # a longer monospace text (an error), when there is one
    text: str | None = None
    rows: FailingRows | None = None  # the offending rows, also in ``text`` as aligned text

    def headline(self, severity: Severity, recovered: bool = False) -> str:
        if recovered:
            return truncate(f"Recovered: {self.subject}", MAX_HEADLINE)
        return truncate(self.problem, MAX_HEADLINE)


Presenter = Callable[[AlertEvent, Severity], Presentation]


def _count(value: Any, unit: str) -> str:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{n:,} {unit}{'' if n == 1 else 's'}"


def _text(value: Any) -> str:
    return redact(value if isinstance(value, str) else json.dumps(value, default=str))


def _after_colon(entity: str) -> tuple[str, str]:
    asset, _, check = entity.rpartition(":")
    return (asset, check) if asset else (entity, entity)


def present_dbt_test(ev: AlertEvent, severity: Severity) -> Presentation:
    d = ev.details
    model, test = _after_colon(ev.entity)
    model = str(d.get(DBT_MODEL) or model)
    test_type, column = d.get(DBT_TEST_TYPE), d.get(DBT_COLUMN)
    where = f"{model}.{column}" if column else model
    subject = f"dbt test {test_type} on {where}" if test_type else f"dbt test {test} on {model}"
    verb = "warning" if severity is Severity.WARN else "failed"
    prefix = "Critical dbt test failed" if severity is Severity.CRITICAL else f"dbt test {verb}"
    problem = f"{prefix}: {test_type} on {where}" if test_type else f"{prefix}: {test} on {model}"
    facts = [("Test", test), ("Model", model)]
    if column:
        facts.append(("Column", str(column)))
    failures = d.get(DBT_FAILURES, d.get("dagster_dbt/failed_row_count"))
    if failures is not None:
        facts.append(("Failing rows", _count(failures, "row")))
    message = d.get(DBT_MESSAGE) or d.get("result")
    if message:
        facts.append(("dbt says", _text(message)))
    extra, _ = plain_details(d, skip=DBT_RAW_KEYS)
    raw = d.get(DBT_FAILING_ROWS)
    rows = FailingRows.from_json(raw) if isinstance(raw, Mapping) else None
    if rows is None or not rows.rows:
        return Presentation(subject, problem, (facts + extra)[:5])
    return Presentation(subject, problem, (facts + extra)[:5], text_label=rows.caption, text=rows.as_text(), rows=rows)


def present_schema_drift(ev: AlertEvent, severity: Severity) -> Presentation:
    d = ev.details
    asset, _ = _after_colon(ev.entity)
    raw = d.get("drift")
    drift: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}

    def columns(kind: str) -> str:
        items = drift.get(kind) or []
        return ", ".join(
            f"{i.get('column')} ({i.get('type') or i.get('to') or ''})".replace(" ()", "") if isinstance(i, Mapping) else str(i)
            for i in items
        )

    facts = [(label, columns(kind)) for label, kind in (("Added", "added"), ("Removed", "removed"), ("Type changed", "type_changed"))]
    facts = [(label, value) for label, value in facts if value]
    if d.get("columns_before") is not None and d.get("columns_now") is not None:
        facts.append(("Columns", f"{d['columns_before']} → {d['columns_now']}"))
    summary = d.get("drift_summary") or ", ".join(f"{label.lower()}: {value}" for label, value in facts[:2])
    return Presentation(f"schema of {asset}", f"Schema changed: {asset} ({summary})", facts[:5] or [("Change", _text(d.get("result", "")))])


def present_row_count(ev: AlertEvent, severity: Severity) -> Presentation:
    d = ev.details
    asset, _ = _after_colon(ev.entity)
    facts = [("Rows loaded", _count(d.get("rows_loaded"), "row"))]
    if d.get("trailing_average") is not None:
        facts.append(("Trailing average", f"{float(d['trailing_average']):,.0f} rows over {_count(d.get('baseline_loads'), 'load')}"))
    if d.get("min_rows") is not None:
        facts.append(("Minimum", _count(d["min_rows"], "row")))
    if d.get("max_drop") is not None:
        facts.append(("Allowed drop", f"{float(d['max_drop']):.0%}"))
    return Presentation(f"row count of {asset}", f"Row count too low: {asset} loaded {_count(d.get('rows_loaded'), 'row')}", facts)


def present_freshness(ev: AlertEvent, severity: Severity) -> Presentation:
    d = ev.details
    asset, _ = _after_colon(ev.entity)
    age = d.get("age_minutes")
    facts = []
    if isinstance(age, (int, float)) and age >= 0:
        hours, minutes = divmod(int(age), 60)
        facts.append(("Last updated", f"{hours} h {minutes:02d} min ago" if hours else f"{minutes} min ago"))
    elif d.get("last_updated") == "never":
        facts.append(("Last updated", "never"))
    for label, key in (("Warn after", "warn_after"), ("Fail after", "fail_after")):
        if d.get(key):
            facts.append((label, str(d[key])))
    stale = facts[0][1] if facts else "no recent update"
    return Presentation(f"freshness of {asset}", f"{asset} is stale: last updated {stale}", facts)


def _label(key: str) -> str:
    return key.replace("_", " ").capitalize() if key.islower() else key


def plain_details(details: Mapping[str, Any], skip: tuple[str, ...] = ()) -> tuple[list[tuple[str, str]], tuple[str, str] | None]:
    """Details a source set under plain names (``offending_value``, ``Error``), as labelled facts,
    and the first long one as a text; raw namespaced metadata keys (``dagster_dbt/...``) and the
    summary repeated (``result``) are left out."""
    facts: list[tuple[str, str]] = []
    long_text: tuple[str, str] | None = None
    for key, value in details.items():
        if "/" in key or key == "result" or key in skip:
            continue
        text = _text(value)
        if len(text) > 120 or "\n" in text:
            long_text = long_text or (_label(key), text)
            continue
        facts.append((_label(key), text))
    return facts, long_text


def present_run(ev: AlertEvent, severity: Severity) -> Presentation:
    d = ev.details
    error = str(d.get("error") or "")
    error_class, _, message = error.partition(": ")
    if error and len(error) <= 120 and "\n" not in error:  # short: one fact says it all
        error_class, message = error, ""
    facts = [("Error", error_class)] if error_class else []
    if d.get("partition"):
        facts.append(("Partition", str(d["partition"])))
    extra, long_text = plain_details(d, skip=("error", "partition"))
    text_label, text = ("Error message", message) if message else (long_text or (None, None))
    return Presentation(
        ev.entity,
        ev.summary or f"Run of {ev.entity} failed",
        (facts + extra)[:5],
        text_label=text_label,
        text=truncate(redact(text), MAX_TEXT) if text else None,
    )


def present_generic(ev: AlertEvent, severity: Severity) -> Presentation:
    """Other kinds (heartbeat, state DB, custom checks): their short, plainly named details."""
    facts, long_text = plain_details(ev.details)
    label, text = long_text if long_text else (None, None)
    return Presentation(
        ev.entity,
        ev.summary or f"{ev.source} {ev.kind.replace('_', ' ')} failing: {ev.entity}",
        facts[:5],
        text_label=label,
        text=truncate(text, MAX_TEXT) if text else None,
    )


def present(ev: AlertEvent, severity: Severity) -> Presentation:
    """The presentation of ``ev``: by kind first, then by source, else the generic one."""
    if ev.source == "dbt" and ev.kind == "asset_check":
        presenter: Presenter = present_dbt_test
    else:
        presenter = PRESENTERS.get(ev.kind, present_generic)
    shown = presenter(ev, severity)
    return Presentation(
        subject=truncate(redact(shown.subject), MAX_HEADLINE),
        problem=truncate(redact(shown.problem), MAX_HEADLINE),
        facts=[(label, truncate(redact(value), MAX_FACT)) for label, value in shown.facts if value],
        text_label=shown.text_label,
        text=shown.text,
        rows=shown.rows,
    )


PRESENTERS: dict[str, Presenter] = {
    "schema_drift": present_schema_drift,
    "row_count": present_row_count,
    "freshness": present_freshness,
    "run": present_run,
    "materialization": present_run,  # an asset's failed step: its error, partition, step and job
}
