"""AuditTrail: a sink plus its spool; what Dagster-facing code writes to.

``write`` never raises because the sink is down: the batch is spooled and written on the next
call, before the new rows, so order is kept and nothing is lost (the dbt_artifacts lesson: an
upload failure must never fail the pipeline). Invalid records do raise, at build time
(:class:`~.records.AuditRecordError`), because retrying cannot fix them.

When the spool cannot be written either (it often lives in the same broken folder as the DuckDB
file), the rows are held in memory, one per ``(table, event_id)``, retried first on every later
call and moved to the spool as soon as it is writable again. Memory is not durable, so a
:class:`~.sinks.base.WriteResult` with ``held`` rows tells a caller that can read its rows
again (the audit sensor) not to move its cursor. Past ``max_held_rows`` the oldest held rows are
dropped, counted in ``dropped`` and logged as an error: a bound, not a silent loss.

``session()`` holds the sink's connection for several writes. By default every ``write`` in it
still goes to the sink before it returns (durable at return: the router's audit hooks and the
SQS sensor need that, since they commit or delete their input right after). With
``write_behind_rows=N`` the session buffers the rows per table instead and writes a table, one
statement, when N of its rows are waiting, and everything when the session ends, before it
returns (between calls fewer than N rows per table wait). Only for a caller that moves its
cursor after the session has ended, and only when ``session.result`` shows no ``held`` rows:
then a row is in the sink, in the spool, or still unread by the caller (read and written again
next time, one row per ``event_id``). A flush the sink refuses is spooled whole, like any write.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from ..alerting.redact import describe_error, get_logger
from .config import AuditConfig
from .records import AuditRecord, group_by_table
from .sinks.base import AuditSink, AuditSinkError, WriteResult
from .spool import Spool

_log = get_logger(__name__)

MAX_HELD_ROWS = 100_000  # ~100 MB at worst; a sensor tick writes up to a few thousand


def build_sink(config: AuditConfig) -> AuditSink:
    """The configured sink; the BigQuery client is imported only when it is chosen."""
    if config.backend == "bigquery":
        import json

        from .sinks.bigquery import BigQuerySink

        info = json.loads(config.credentials_json.get_secret_value()) if config.credentials_json else None
        return BigQuerySink(
            dataset=config.dataset,
            project=config.project,
            location=config.location,
            api_endpoint=config.api_endpoint,
            batch_rows=config.batch_rows,
            credentials_info=info,
        )
    from .sinks.duckdb import DuckDBSink

    return DuckDBSink(config.resolved_duckdb_path(), dataset=config.dataset)


def _why(exc: BaseException) -> str:
    """The sink's own message (already redacted), or class and message of an error it did not expect."""
    return str(exc) if isinstance(exc, AuditSinkError) else describe_error(exc)


class AuditSession:
    """One ``trail.session()``: ``write`` as the trail's, ``result`` the totals of every write
    and flush in it (final once the session has ended: read it after the ``with`` block)."""

    def __init__(self, trail: AuditTrail, write_behind_rows: int) -> None:
        self.trail = trail
        self.write_behind_rows = write_behind_rows
        self.pending: dict[str, list[AuditRecord]] = {}  # table -> buffered rows, in call order
        self.result = WriteResult()

    @property
    def pending_rows(self) -> int:
        return sum(map(len, self.pending.values()))

    def write(self, records: Sequence[AuditRecord]) -> WriteResult:
        return self.trail.write(records)

    def flush(self) -> WriteResult:
        """Write the buffered rows (and what the spool holds) now."""
        return self.trail.flush()

    def _add(self, records: Sequence[AuditRecord]) -> WriteResult:
        """Buffer ``records``; write each table whose buffer has reached ``write_behind_rows``
        (all such tables in one call: one statement each, one transaction)."""
        mine = group_by_table(records)
        for table, rows in mine.items():
            self.pending.setdefault(table, []).extend(rows)
        full = [table for table, rows in self.pending.items() if len(rows) >= self.write_behind_rows]
        result = WriteResult(attempted=len(records), buffered=sum(len(rows) for table, rows in mine.items() if table not in full))
        if full:
            _merge(result, self._flush_pending(full), attempted=False)
        return result

    def _flush_pending(self, tables: Sequence[str] | None = None) -> WriteResult:
        """Write the buffers of ``tables`` (all when None); a refused write is spooled whole."""
        batch: list[AuditRecord] = []
        for table in list(self.pending) if tables is None else tables:
            batch.extend(self.pending.pop(table))
        done = self.trail._write_now(batch)
        _merge(self.result, done, attempted=False)
        return done


def _merge(into: WriteResult, done: WriteResult, *, attempted: bool = True) -> None:
    """Add ``done``'s counts to ``into`` (a session's totals, or a buffered call that flushed)."""
    if attempted:
        into.attempted += done.attempted
    if done.inserted is not None:
        into.inserted = (into.inserted or 0) + done.inserted
    into.requests += done.requests
    into.spooled += done.spooled
    into.replayed += done.replayed
    into.held += done.held
    into.dropped += done.dropped
    for table, n in done.per_table.items():
        into.per_table[table] = into.per_table.get(table, 0) + n


class AuditTrail:
    def __init__(self, sink: AuditSink, spool: Spool, *, max_held_rows: int = MAX_HELD_ROWS) -> None:
        self.sink = sink
        self.spool = spool
        self.max_held_rows = max_held_rows
        self._held: dict[tuple[str, str], AuditRecord] = {}  # insertion order: oldest first
        self._lock = threading.RLock()
        self._session: AuditSession | None = None

    @classmethod
    def from_config(cls, config: AuditConfig) -> AuditTrail:
        return cls(build_sink(config), Spool(config.resolved_spool_dir()))

    @property
    def held_rows(self) -> int:
        """Rows only in memory: neither the sink nor the spool could take them."""
        return len(self._held)

    @contextmanager
    def session(self, *, write_behind_rows: int = 0) -> Iterator[AuditSession]:
        """Hold the sink's connection for several writes (a sensor tick), when the sink has one.
        The trail's lock is taken first, as ``write`` does, so two threads cannot deadlock.

        ``write_behind_rows``: buffer the rows of the session's writes per table, write a table
        when that many of its rows are waiting and all of them at the end, before the session
        returns (see the module docstring for when that is safe). A nested session shares the
        outer one, buffer included."""
        if write_behind_rows < 0:
            raise ValueError(f"write_behind_rows must be >= 0, got {write_behind_rows}")
        with self._lock:
            if self._session is not None:
                yield self._session
                return
            opener: Any = getattr(self.sink, "session", None)
            with opener() if opener is not None else nullcontext():
                session = self._session = AuditSession(self, write_behind_rows)
                try:
                    yield session
                finally:  # also when the caller failed: what it wrote is kept (or spooled)
                    try:
                        if session.pending:
                            session._flush_pending()
                    finally:
                        self._session = None

    def has_backlog(self) -> bool:
        """Rows from earlier writes wait to be written (in the spool, or held in memory)."""
        return bool(self._held) or self.spool.pending_files() > 0

    def write(self, records: Sequence[AuditRecord]) -> WriteResult:
        """Replay the spool and the held rows, then write ``records``; keep what the sink did not
        take. In a write-behind session the rows are buffered (``buffered``) instead."""
        with self._lock:
            session = self._session
            if session is not None and session.write_behind_rows and records:
                session.result.attempted += len(records)
                return session._add(records)
            result = self._write_now(records)
            if session is not None:
                _merge(session.result, result)
            return result

    def flush(self) -> WriteResult:
        """Write what a write-behind session buffers, the spool and memory hold (e.g. at the
        start of a sensor tick)."""
        with self._lock:
            session = self._session
            if session is not None and session.pending:
                return session._flush_pending()
            result = self._write_now(())
            if session is not None:
                _merge(session.result, result)
            return result

    def _write_now(self, records: Sequence[AuditRecord]) -> WriteResult:
        result = WriteResult(attempted=len(records))
        failure = self._replay(result)
        if failure is None and records:
            try:
                done = self.sink.write(records)
            except Exception as exc:  # AuditSinkError, or a sink bug: keep the rows either way
                failure = exc
            else:
                result.inserted = done.inserted
                result.requests += done.requests
                result.per_table = done.per_table
                return result
        if failure is not None:
            self._keep(records, result, failure)
        return result

    def _replay(self, result: WriteResult) -> Exception | None:
        """Spooled batches oldest first, then the held rows; stop at the first failure."""
        for path, batch in self.spool.batches():
            try:
                done = self.sink.write(batch)
            except Exception as exc:
                return exc
            self.spool.remove(path)
            result.replayed += len(batch)
            result.requests += done.requests
        if self._held:
            batch = list(self._held.values())
            try:
                done = self.sink.write(batch)
            except Exception as exc:
                return exc
            self._held.clear()
            result.replayed += len(batch)
            result.requests += done.requests
        return None

    def _keep(self, records: Sequence[AuditRecord], result: WriteResult, exc: Exception) -> None:
        """Spool the held rows (older) and then ``records``; hold in memory what the spool refuses."""
        try:
            if self._held:
                self.spool.put(list(self._held.values()))
                self._held.clear()
            if records:
                self.spool.put(records)
                result.spooled = len(records)
        except Exception as spool_exc:  # OSError mostly: the folder is missing, a file, read-only, full
            self._hold(records, result)
            _log.error(
                "audit sink unavailable (%s) and the spool folder %s is not writable (%s): %d row(s) held in memory "
                "(at most %d), retried on every call",
                _why(exc),
                self.spool.directory,
                describe_error(spool_exc),
                len(self._held),
                self.max_held_rows,
            )
            return
        _log.warning(
            "audit sink unavailable, %d row(s) kept in %s for the next call (%d row(s) waiting): %s",
            len(records),
            self.spool.directory,
            self.spool.pending_rows(),
            _why(exc),
        )

    def _hold(self, records: Sequence[AuditRecord], result: WriteResult) -> None:
        for record in records:
            self._held[(record.TABLE, record.event_id)] = record
        result.held = len(records)
        overflow = len(self._held) - self.max_held_rows
        if overflow > 0:
            for key in list(self._held)[:overflow]:
                del self._held[key]
            result.dropped = overflow
            _log.error(
                "audit rows held in memory exceed %d: the %d oldest were dropped (sink and spool folder %s both unavailable)",
                self.max_held_rows,
                overflow,
                self.spool.directory,
            )
