"""The sink protocol: write a batch of records, idempotently; create the schema; run a view.

Like dlt's destinations, each sink declares what it can do (``capabilities``) and imports its
driver lazily, so the DuckDB default never imports google-cloud-bigquery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..records import AuditRecord


class AuditSinkError(RuntimeError):
    """A batch could not be written (sink down, locked, unwritable, quota, network, rejected
    rows): the spool keeps it. Sinks raise only this from ``write``."""


@dataclass(frozen=True)
class SinkCapabilities:
    exactly_once: bool  # the sink itself drops a repeated event_id (DuckDB) vs. the views do (BigQuery)
    max_rows_per_request: int


@dataclass
class WriteResult:
    attempted: int = 0
    inserted: int | None = None  # rows new to the sink, when the sink can tell
    requests: int = 0  # API requests / statements used
    spooled: int = 0  # rows kept locally for the next call
    replayed: int = 0  # spooled (or held) rows written on this call
    held: int = 0  # rows of this call kept in memory only: the spool was not writable either
    dropped: int = 0  # held rows given up on this call because memory reached its bound
    buffered: int = 0  # rows of this call left in a write-behind session's buffer (written by its end)
    per_table: dict[str, int] = field(default_factory=dict)


@runtime_checkable
class AuditSink(Protocol):
    capabilities: SinkCapabilities

    def init(self) -> None:
        """Create the dataset/schema, tables and views (idempotent)."""

    def write(self, records: Sequence[AuditRecord]) -> WriteResult:
        """Write a batch; raise :class:`AuditSinkError` when it could not be written."""

    def query_view(self, view: str, limit: int | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and rows of a curated view."""

    def close(self) -> None: ...
