"""AuditTrail: a sink plus its spool; what Dagster-facing code writes to.

``write`` never raises because the sink is down: the batch is spooled and written on the next
call, before the new rows, so order is kept and nothing is lost (the dbt_artifacts lesson: an
upload failure must never fail the pipeline). Invalid records do raise, at build time
(:class:`~.records.AuditRecordError`), because retrying cannot fix them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ..alerting.redact import get_logger, redact
from .config import AuditConfig
from .records import AuditRecord
from .sinks.base import AuditSink, AuditSinkError, WriteResult
from .spool import Spool

_log = get_logger(__name__)


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


class AuditTrail:
    def __init__(self, sink: AuditSink, spool: Spool) -> None:
        self.sink = sink
        self.spool = spool
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: AuditConfig) -> AuditTrail:
        return cls(build_sink(config), Spool(config.resolved_spool_dir()))

    def write(self, records: Sequence[AuditRecord]) -> WriteResult:
        """Replay the spool, then write ``records``; spool whatever the sink did not take."""
        result = WriteResult(attempted=len(records))
        with self._lock:
            for path, batch in self.spool.batches():
                try:
                    done = self.sink.write(batch)
                except AuditSinkError as exc:
                    self._spool(records, result, exc)
                    return result
                path.unlink()
                result.replayed += len(batch)
                result.requests += done.requests
            if not records:
                return result
            try:
                done = self.sink.write(records)
            except AuditSinkError as exc:
                self._spool(records, result, exc)
                return result
            result.inserted = done.inserted
            result.requests += done.requests
            result.per_table = done.per_table
        return result

    def flush(self) -> WriteResult:
        """Write what the spool holds (e.g. at the start of a sensor tick)."""
        return self.write(())

    def _spool(self, records: Sequence[AuditRecord], result: WriteResult, exc: Exception) -> None:
        if records:
            self.spool.put(records)
            result.spooled = len(records)
        _log.warning(
            "audit sink unavailable, %d row(s) kept in %s for the next call (%d row(s) waiting): %s",
            len(records),
            self.spool.directory,
            self.spool.pending_rows(),
            redact(exc),
        )
