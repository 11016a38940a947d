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
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from ..alerting.redact import describe_error, get_logger
from .config import AuditConfig
from .records import AuditRecord
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


class AuditTrail:
    def __init__(self, sink: AuditSink, spool: Spool, *, max_held_rows: int = MAX_HELD_ROWS) -> None:
        self.sink = sink
        self.spool = spool
        self.max_held_rows = max_held_rows
        self._held: dict[tuple[str, str], AuditRecord] = {}  # insertion order: oldest first
        self._lock = threading.RLock()

    @classmethod
    def from_config(cls, config: AuditConfig) -> AuditTrail:
        return cls(build_sink(config), Spool(config.resolved_spool_dir()))

    @property
    def held_rows(self) -> int:
        """Rows only in memory: neither the sink nor the spool could take them."""
        return len(self._held)

    @contextmanager
    def session(self) -> Iterator[AuditTrail]:
        """Hold the sink's connection for several writes (a sensor tick), when the sink has one.
        The trail's lock is taken first, as ``write`` does, so two threads cannot deadlock."""
        with self._lock:
            opener: Any = getattr(self.sink, "session", None)
            with opener() if opener is not None else nullcontext():
                yield self

    def write(self, records: Sequence[AuditRecord]) -> WriteResult:
        """Replay the spool and the held rows, then write ``records``; keep what the sink did not take."""
        result = WriteResult(attempted=len(records))
        with self._lock:
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

    def flush(self) -> WriteResult:
        """Write what the spool and memory hold (e.g. at the start of a sensor tick)."""
        return self.write(())

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
