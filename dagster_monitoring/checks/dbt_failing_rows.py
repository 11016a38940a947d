"""The rows a failing dbt test found, read back for the alert card: the offending values.

"Got 1 result, configured to fail if != 0" does not tell the on-call which loan broke. dbt's own
answer is the test's query: it selects the failing rows. After the dbt process has ended (a
DuckDB file is locked while dbt writes it), the rows are read through the dbt adapter that
dagster-dbt already opened for the invocation:

- a test with ``store_failures`` has a ``relation_name`` in ``run_results.json``: the rows dbt
  stored are read from it (the whole row, even for ``not_null``, whose query selects only the
  tested column);
- otherwise the test's ``compiled_code`` is run again, wrapped in a ``LIMIT``.

The sample is bounded and redacted by :func:`~dagster_monitoring.alerting.failing_rows.bound_rows`.
Sampling never fails the dbt run: a problem is logged and the card goes out without rows. On
BigQuery the re-run query is billed like any query; ``store_failures`` makes it a read of a small
table, and ``failing_rows=0`` turns sampling off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..alerting.failing_rows import MAX_ROWS, FailingRows, bound_rows

__all__ = ["fetch_failing_rows", "release_adapter", "sample_query"]


def sample_query(result: Mapping[str, Any], limit: int) -> tuple[str, str] | None:
    """(SQL, source) reading at most ``limit`` failing rows of one run_results entry, or None."""
    relation = result.get("relation_name")
    if relation:
        return f"select * from {relation} limit {int(limit)}", "stored failures"
    code = str(result.get("compiled_code") or "").strip().rstrip(";").strip()
    if not code:
        return None
    # the newline before ")": a test query may end in a -- comment
    return f"select * from (\n{code}\n) as dagster_monitoring_failing_rows limit {int(limit)}", "test query"


def fetch_failing_rows(adapter: Any, result: Mapping[str, Any], *, limit: int = MAX_ROWS, **bounds: Any) -> FailingRows | None:
    """The bounded sample of one failing test's rows through a dbt adapter (``invocation.adapter``),
    or None when there is no query (no compiled code) or it found no rows. Raises what the
    adapter raises: the caller logs it."""
    query = sample_query(result, limit)
    if query is None or limit <= 0:
        return None
    sql, source = query
    with adapter.connection_named("dagster_monitoring_failing_rows"):
        _, table = adapter.execute(sql, fetch=True, limit=limit)
    rows = [list(row) for row in table.rows]
    if not rows:
        return None
    failures = result.get("failures")
    return bound_rows(
        list(table.column_names),
        rows,
        total=int(failures) if isinstance(failures, (int, float)) else None,
        source=source,
        max_rows=limit,
        **bounds,
    )


def release_adapter(adapter: Any) -> None:
    """Close what sampling opened. dbt's adapters keep connections per thread, and dbt-duckdb keeps
    the database open process-wide (read-only, as dagster-dbt configures it): left open, the next
    read-write open of that file in this process fails ("different configuration")."""
    try:
        adapter.cleanup_connections()
    except Exception:  # pragma: no cover - nothing to release
        pass
    manager: Any = type(getattr(adapter, "connections", None))
    env = getattr(manager, "_ENV", None)  # dbt-duckdb's shared DuckDB instance
    if env is not None and callable(getattr(env, "close", None)):
        try:
            env.close()
        finally:
            manager.close_all_connections()
