"""DuckDB: the embedded default. A file, created on first use, with the same tables and views
as BigQuery (transpiled from ``audit_sql/``).

Rows go in as Arrow tables built column by column from the records, one ``INSERT ... SELECT``
per table per batch, in one transaction, exactly once by ``event_id`` in one of two ways:

- **by time** (runs, materializations, check evaluations, alert decisions: the tables a sensor
  tick writes, ``AuditRecord.DEDUPE_BY_TIME``): no primary key; a row goes in unless a row of
  its ``event_id`` is there within ``DEDUPE_WINDOW`` of its ``event_ts``. DuckDB reads only the
  row groups of those times (zone maps), so a tick costs what it writes, not what the trail
  holds: a primary-key index is loaded again after each attach and rewritten whole by each
  checkpoint (at 400,000 rows: 70 ms of a 1,000-row tick against 10 ms without). Writers of
  one file take turns (DuckDB admits one writing process; within the process, a lock), so no
  two transactions miss each other's rows; the same fact twice in one batch is one row.
- **by primary key** (the other tables, whose facts may be seen again at other times: a dbt
  Cloud run by a webhook and by a poll; a trail made before this is rebuilt once): the
  plain ``INSERT`` is tried first: DuckDB checks the key in its index, while ``ON CONFLICT DO
  NOTHING`` (a MERGE since DuckDB 2) scans the table's ``event_id`` column on every statement.
  When a row is there already the key check fails, the transaction rolls back and the batch
  goes in again with ``ON CONFLICT DO NOTHING``.

The file is attached per call and detached after, because a DuckDB file admits one writing
process at a time and the CLI must be able to read it while Dagster runs; ``session()`` holds it
for a sensor tick. It is attached (``ATTACH``) to one in-memory DuckDB database the process keeps
open, not opened with ``duckdb.connect``: opening a database costs ~18 ms, attaching a file to
one already open ~2.5 ms, and detaching releases the file's lock as closing did (see
:class:`_Attachments`). Every failure (file locked by another process, folder not creatable, no
permission, disk full, a broken file) is an :class:`AuditSinkError`, which the trail spools.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import pyarrow as pa

from ...alerting.redact import describe_error, get_logger
from .. import schema
from ..records import BY_TABLE, DEDUPE_WINDOW, INGESTED_AT, AuditRecord, group_by_table
from .base import AuditSinkError, SinkCapabilities, WriteResult

_log = get_logger(__name__)

_ARROW_TYPES = {
    "STRING": pa.string(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "INT64": pa.int64(),
    "FLOAT64": pa.float64(),
    "BOOL": pa.bool_(),
    "JSON": pa.string(),
}
# DuckDB reads the Arrow table from the local variable of this name (its replacement scan):
# cheaper than register/unregister per statement.
_BATCH = "_dm_audit_batch"


def arrow_schema(table: schema.TableDef) -> pa.Schema:
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.bq_type], nullable=not c.required) for c in table.columns])


@dataclass(frozen=True)
class _TablePlan:
    """What writing to one table needs, worked out once per sink (and again when the file is new)."""

    arrow_schema: pa.Schema
    insert: str
    insert_on_conflict: str
    by_time: bool  # deduplicated by event_id within DEDUPE_WINDOW of event_ts; no primary key


class _Batch(NamedTuple):
    """One table's rows of a write, as the statement reads them."""

    table: str
    plan: _TablePlan
    rows: pa.Table
    window: list[datetime]  # the event_ts range a by-time table looks for earlier rows in ([] otherwise)


def arrow_table(records: Sequence[AuditRecord], ingested_at: datetime, target: pa.Schema) -> pa.Table:
    """``records`` (one table's) as an Arrow table of ``target``'s columns, built column-major
    (:meth:`AuditRecord.columns`) rather than a dict per row: a third of the time."""
    names = [f.name for f in target if f.name != INGESTED_AT]
    values = dict(zip(names, type(records[0]).columns(records, names), strict=True))
    arrays = [
        pa.repeat(pa.scalar(ingested_at, type=f.type), len(records)) if f.name == INGESTED_AT else pa.array(values[f.name], type=f.type)
        for f in target
    ]
    return pa.Table.from_arrays(arrays, schema=target)


class _Attachments:
    """The process's in-memory DuckDB database and the audit files attached to it.

    A file is attached once however many sinks and threads use it (DuckDB refuses to attach one
    file twice in a process), each user gets its own cursor (a DuckDB connection is not
    thread-safe) with the file as its default catalog (``USE``), and the last user to leave
    detaches it: the checkpoint and the release of the file lock that closing did. After a
    failure the file is detached; if even that fails, the database is closed (which releases
    every file) as soon as no one uses it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._host: duckdb.DuckDBPyConnection | None = None
        self._attached: dict[str, list[Any]] = {}  # resolved path -> [alias, users]
        self._writers: dict[str, threading.Lock] = {}  # resolved path -> held while a write transaction runs
        self._aliases = 0
        self._broken = False

    def acquire(self, path: Path, read_only: bool = False) -> tuple[duckdb.DuckDBPyConnection, bool]:
        """A cursor on ``path`` (attached now unless it already is) and True: :meth:`release` it.
        A read of a file this process has not attached gets a read-only connection of its own and
        False (close it): other processes may read the file at the same time, which a writer's
        attachment would lock them out of."""
        key = str(path.resolve())
        with self._lock:
            entry = self._attached.get(key)
            if entry is None and read_only:
                return _configured(duckdb.connect(str(path), read_only=True), read_only=True), False
            host = self._host_connection()
            if entry is None:
                self._aliases += 1
                alias = f"dm_audit_{self._aliases}"
                escaped = str(path).replace("'", "''")
                host.execute(f"ATTACH '{escaped}' AS \"{alias}\"")
                entry = self._attached[key] = [alias, 0]
            cursor = host.cursor()
            try:
                cursor.execute(f'USE "{entry[0]}"')
            except duckdb.Error:
                cursor.close()
                if entry[1] == 0:
                    self._detach(key)
                raise
            entry[1] += 1
            return cursor, True

    def release(self, path: Path, cursor: duckdb.DuckDBPyConnection, *, failed: bool = False) -> None:
        """Give ``cursor`` back; the last user detaches the file (a failed one: at once)."""
        try:
            cursor.close()
        except duckdb.Error as exc:
            _log.debug("closing an audit cursor failed: %s", describe_error(exc))
        key = str(path.resolve())
        with self._lock:
            entry = self._attached.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] <= 0 or failed:
                self._detach(key)

    def writing(self, path: Path) -> threading.Lock:
        """The lock a write transaction on ``path`` holds: the sinks and threads of one process
        take turns, as DuckDB makes processes do (the by-time check must see every earlier row)."""
        key = str(path.resolve())
        with self._lock:
            return self._writers.setdefault(key, threading.Lock())

    def _host_connection(self) -> duckdb.DuckDBPyConnection:
        if self._host is None:
            self._host = _configured(duckdb.connect(":memory:"), scope="GLOBAL ")
        return self._host

    def _detach(self, key: str) -> None:
        alias = self._attached.pop(key)[0]
        host = self._host
        if host is None:
            return
        try:
            host.execute(f'DETACH DATABASE IF EXISTS "{alias}"')
        except duckdb.Error as exc:  # a broken file: closing the database releases it
            _log.debug("detaching the audit file failed: %s", describe_error(exc))
            self._broken = True
        if self._broken and not any(users > 0 for _, users in self._attached.values()):
            self._attached.clear()
            self._host, self._broken = None, False
            try:
                host.close()
            except duckdb.Error as exc:
                _log.debug("closing the audit database failed: %s", describe_error(exc))


def _configured(con: duckdb.DuckDBPyConnection, *, read_only: bool = False, scope: str = "") -> duckdb.DuckDBPyConnection:
    """UTC for TIMESTAMP casts (not via ``config=``: that autoloads ICU, which fails offline), and
    one thread for writes: a batch is a few hundred rows per table, and handing that to a second
    thread costs more than it saves (measured: ~1.3x the rows/s single-threaded on two cores)."""
    try:
        con.execute(f"SET {scope}TimeZone = 'UTC'")
        if not read_only:
            con.execute(f"SET {scope}threads = 1")
    except duckdb.Error:
        con.close()
        raise
    return con


_attachments = _Attachments()


def _forget_in_child() -> None:
    """A forked child (a run worker started with ``fork``) must not use its parent's DuckDB
    database: it starts with none (the parent's is left alone, never closed from here)."""
    global _attachments
    _attachments = _Attachments()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


class DuckDBSink:
    capabilities = SinkCapabilities(exactly_once=True, max_rows_per_request=50_000)

    def __init__(self, path: str | Path, dataset: str = "dagster_audit") -> None:
        self.path = Path(path)
        self.dataset = dataset
        self._lock = threading.RLock()
        self._initialised = False
        self._session: duckdb.DuckDBPyConnection | None = None
        self._plans: dict[str, _TablePlan] = {}
        self._keyed: frozenset[str] | None = None  # the file's tables with a primary key; None: not read yet

    def _plan(self, table_name: str) -> _TablePlan:
        """Known once the file's tables are (``_create``): a table made with a primary key keeps it."""
        plan = self._plans.get(table_name)
        if plan is None:
            assert self._keyed is not None, "plans are made after the schema was read"
            table = schema.table(table_name)
            cols = ", ".join(f'"{c}"' for c in table.column_names)
            target = f'"{self.dataset}"."{table_name}"'
            insert = f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {_BATCH}"
            if table_name in self._keyed:
                plan = _TablePlan(arrow_schema(table), insert, insert + " ON CONFLICT (event_id) DO NOTHING", by_time=False)
            else:
                seen = f"SELECT 1 FROM {target} AS t WHERE t.event_id = {_BATCH}.event_id AND t.event_ts BETWEEN ? AND ?"
                insert += f" WHERE NOT EXISTS ({seen})"
                plan = _TablePlan(arrow_schema(table), insert, insert, by_time=True)
            self._plans[table_name] = plan
        return plan

    @contextmanager
    def session(self) -> Iterator[DuckDBSink]:
        """Hold one connection for several writes (a sensor tick, a backfill): opening and
        closing a DuckDB file costs more than writing 1,000 rows. When the file cannot be opened
        (locked by another process, unwritable) the session holds nothing and each write fails
        on its own, so the trail spools instead of the tick failing."""
        with self._lock:
            if self._session is not None:  # already inside a session: share it
                yield self
                return
            try:
                self._session = self._open()[0]
            except AuditSinkError as exc:
                _log.debug("audit session without a held connection: %s", exc)
            try:
                yield self
            finally:
                self._drop_session()

    def _drop_session(self, *, failed: bool = False) -> None:
        con, self._session = self._session, None
        if con is not None:
            self._release(con, failed=failed)

    def _release(self, con: duckdb.DuckDBPyConnection, *, failed: bool = False) -> None:
        try:
            _attachments.release(self.path, con, failed=failed)
        except duckdb.Error as exc:  # already broken: nothing more to release
            _log.debug("releasing the audit connection failed: %s", describe_error(exc))

    def _open(self, read_only: bool = False) -> tuple[duckdb.DuckDBPyConnection, bool]:
        """A cursor on the attached file and True, or (reads only) a connection of its own and False."""
        try:
            if not read_only:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if not self.path.exists():  # a new (or deleted) file: create the schema again
                    self._initialised = False
            return _attachments.acquire(self.path, read_only)
        except (OSError, duckdb.Error) as exc:
            raise AuditSinkError(f"cannot open DuckDB audit file {self.path}: {describe_error(exc)}") from exc

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._session is not None:
            yield self._session
            return
        con, attached = self._open(read_only)
        failed = False
        try:
            yield con
        except BaseException:
            failed = True
            raise
        finally:
            if attached:
                self._release(con, failed=failed)
            else:
                con.close()

    def init(self) -> None:
        with self._lock:
            try:
                with self.connect() as con:
                    self._create(con)
            except duckdb.Error as exc:
                raise AuditSinkError(f"DuckDB init of {self.path} failed: {describe_error(exc)}") from exc

    def _create(self, con: duckdb.DuckDBPyConnection) -> None:
        expected = {t.name for t in schema.tables()} | {v.name for v in schema.views()}
        present = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database() AND table_schema = ?",
                [self.dataset],
            ).fetchall()
        }
        views = [(v.name, schema.duckdb_sql(v.ast, self.dataset)) for v in schema.views()]
        version = "dagster-monitoring views " + hashlib.sha256("\n".join(sql for _, sql in views).encode()).hexdigest()[:16]
        if expected <= present:  # created by an earlier process: skip ~0.1 s of DDL on every new sink
            if self._views_version(con, views[-1][0]) != version:  # made by another version: new view SQL
                self._create_views(con, views, version)
        else:
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.dataset}"')
            for table in schema.tables():  # IF NOT EXISTS: a table there already stays as it is
                by_time = BY_TABLE[table.name].DEDUPE_BY_TIME
                con.execute(schema.duckdb_sql(table.ast, self.dataset, primary_key=not by_time))
            self._create_views(con, views, version)
        self._read_keys(con)
        self._drop_primary_keys(con)
        self._initialised = True

    def _drop_primary_keys(self, con: duckdb.DuckDBPyConnection) -> None:
        """A trail made before the by-time tables has a primary key on every table: the by-time
        ones are rebuilt without it, once, rows and order kept (one transaction per table: a
        failure leaves the table as it was, written with its key until the next try)."""
        keyed = self._keyed or frozenset()
        rebuild = [t for t in schema.tables() if t.name in keyed and BY_TABLE[t.name].DEDUPE_BY_TIME]
        if not rebuild:
            return
        with _attachments.writing(self.path):  # no other writer of this process adds rows meanwhile
            for table in rebuild:
                self._rebuild_without_key(con, table)
        self._read_keys(con)

    def _rebuild_without_key(self, con: duckdb.DuckDBPyConnection, table: schema.TableDef) -> None:
        """One table rebuilt without its primary key, in one transaction."""
        started = time.perf_counter()
        cols = ", ".join(f'"{c}"' for c in table.column_names)
        old, target = f'"{self.dataset}"."{table.name}__keyed"', f'"{self.dataset}"."{table.name}"'
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f'ALTER TABLE {target} RENAME TO "{table.name}__keyed"')
            con.execute(schema.duckdb_sql(table.ast, self.dataset, primary_key=False))
            count = con.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {old} ORDER BY ingested_at").fetchone()
            con.execute(f"DROP TABLE {old}")
            con.execute("COMMIT")
        except duckdb.Error:
            con.execute("ROLLBACK")
            raise
        _log.info(
            "audit table %s.%s rebuilt without its primary key (%d rows, %.1f s): deduplicated by time from now on",
            self.dataset,
            table.name,
            int(count[0]) if count else 0,
            time.perf_counter() - started,
        )

    def _read_keys(self, con: duckdb.DuckDBPyConnection) -> None:
        """Which tables of this file have a primary key (all of them in a trail made before the
        by-time tables): each is written the way it was made."""
        rows = con.execute(
            "SELECT table_name FROM duckdb_constraints() WHERE database_name = current_database() AND schema_name = ? "
            "AND constraint_type = 'PRIMARY KEY'",
            [self.dataset],
        ).fetchall()
        keyed = frozenset(r[0] for r in rows)
        if keyed != self._keyed:
            self._keyed, self._plans = keyed, {}

    def _views_version(self, con: duckdb.DuckDBPyConnection, view: str) -> str | None:
        """The version the views were made with, kept as the last view's comment."""
        row = con.execute(
            "SELECT comment FROM duckdb_views() WHERE database_name = current_database() AND schema_name = ? AND view_name = ?",
            [self.dataset, view],
        ).fetchone()
        return str(row[0]) if row and row[0] else None

    def _create_views(self, con: duckdb.DuckDBPyConnection, views: Sequence[tuple[str, str]], version: str) -> None:
        """(Re)create every view, in dependency order, and mark them with ``version``: a trail made
        by an earlier release picks up changed views (``CREATE OR REPLACE``; tables are untouched)."""
        for _name, sql in views:
            con.execute(sql)
        escaped = version.replace("'", "''")
        con.execute(f'COMMENT ON VIEW "{self.dataset}"."{views[-1][0]}" IS \'{escaped}\'')

    def write(self, records: Sequence[AuditRecord]) -> WriteResult:
        result = WriteResult(attempted=len(records), inserted=0)
        if not records:
            return result
        ingested_at = datetime.now(timezone.utc)
        with self._lock:
            try:
                # built before the file is attached once its tables are known, so the file is
                # held for the inserts only; again if reading the tables changed the plans
                plans = self._plans
                batches = self._batches(records, ingested_at) if self._initialised else None
                with self.connect() as con:
                    if not self._initialised:
                        self._create(con)
                    if batches is None or self._plans is not plans:
                        batches = self._batches(records, ingested_at)
                    with _attachments.writing(self.path):
                        try:
                            self._insert(con, batches, result, on_conflict=False)
                        except duckdb.ConstraintException:  # an event_id is there already, or twice in the batch
                            self._insert(con, batches, result, on_conflict=True)
            except (duckdb.Error, OSError, pa.ArrowException) as exc:
                self._initialised = False  # check the schema again next time (the file may be new)
                self._drop_session(failed=True)  # a connection that failed is not reused; the next write reopens
                raise AuditSinkError(f"DuckDB write to {self.path} failed: {describe_error(exc)}") from exc
        return result

    def _batches(self, records: Sequence[AuditRecord], ingested_at: datetime) -> list[_Batch]:
        return [self._batch(name, rows, ingested_at) for name, rows in group_by_table(records).items()]

    def _batch(self, table_name: str, records: Sequence[AuditRecord], ingested_at: datetime) -> _Batch:
        plan = self._plan(table_name)
        window: list[datetime] = []
        if plan.by_time:  # the same fact twice in the batch is one row; the times it is looked for among
            first: dict[str, AuditRecord] = {}
            for record in records:
                first.setdefault(record.event_id, record)
            records = list(first.values())
            times = [r.event_ts for r in records]
            window = [min(times) - DEDUPE_WINDOW, max(times) + DEDUPE_WINDOW]
        return _Batch(table_name, plan, arrow_table(records, ingested_at, plan.arrow_schema), window)

    @staticmethod
    def _insert(con: duckdb.DuckDBPyConnection, batches: list[_Batch], result: WriteResult, *, on_conflict: bool) -> None:
        """One statement per table, all in one transaction; rolled back whole if one fails."""
        result.inserted, result.requests, result.per_table = 0, 0, {}
        con.execute("BEGIN TRANSACTION")
        try:
            for table_name, plan, _dm_audit_batch, window in batches:  # noqa: B007 - read by name in the SQL
                count = con.execute(plan.insert_on_conflict if on_conflict else plan.insert, window).fetchone()
                inserted = int(count[0]) if count else 0
                result.inserted += inserted
                result.per_table[table_name] = inserted
                result.requests += 1
            con.execute("COMMIT")
        except BaseException:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:  # no transaction left to roll back (the failure ended it)
                pass
            raise

    def query(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self._lock, self.connect(read_only=True) as con:
            cur = con.execute(sql, list(params))
            return [d[0] for d in cur.description], cur.fetchall()

    def query_arrow(self, sql: str) -> pa.Table:
        """``sql``'s rows as an Arrow table (the BI export); reading never creates the trail."""
        if not self.path.is_file():
            raise AuditSinkError(f"no audit trail at {self.path}")
        with self._lock, self.connect(read_only=True) as con:
            return con.sql(sql).to_arrow_table()

    def query_view(self, view: str, limit: int | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Rows of ``view``. Reading never creates the trail (only ``init`` and ``write`` do): an
        empty new file would hide a wrong path or DAGSTER_HOME."""
        schema.require_object(view)
        if not self.path.is_file():
            raise AuditSinkError(f"no audit trail at {self.path}")
        sql = f'SELECT * FROM "{self.dataset}"."{view}"' + (f" LIMIT {int(limit)}" if limit else "")
        return self.query(sql)

    def close(self) -> None:  # connections are per call (or per session)
        return None
