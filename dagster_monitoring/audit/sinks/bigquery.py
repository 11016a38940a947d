"""BigQuery through the official ``google-cloud-bigquery`` client.

Tables are created through the API (``TimePartitioning`` on ``event_ts`` + clustering, schema
from the same DDL files), views with their DDL. Rows go in with streaming ``insertAll``
(``insert_rows_json(row_ids=event_id)``) in batches within the API's limits: never one load job
per tick (load jobs are capped at 1,500 per table per day). insertId dedup is best effort, so
every view keeps one row per ``event_id``; a batch that fails is spooled by the trail and
replayed, which the views absorb.

The client library is imported on first use, so DuckDB users never import it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ...alerting.redact import describe_error, redact
from .. import schema
from ..records import AuditRecord, group_by_table
from .base import AuditSinkError, SinkCapabilities, WriteResult

if TYPE_CHECKING:  # pragma: no cover
    from google.cloud import bigquery

MAX_REQUEST_BYTES = 9 * 1024 * 1024  # insertAll accepts 10 MB per request; keep a margin
_MODE = {True: "REQUIRED", False: "NULLABLE"}


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            out[key] = value.astimezone(timezone.utc).isoformat()
        else:
            out[key] = value
    return out


def chunk_rows(rows: list[dict[str, Any]], max_rows: int, max_bytes: int = MAX_REQUEST_BYTES) -> list[list[dict[str, Any]]]:
    """Split into requests of at most ``max_rows`` rows and ``max_bytes`` of JSON."""
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        row_size = len(json.dumps(row, default=str)) + 64  # + insertId and envelope
        if current and (len(current) >= max_rows or size + row_size > max_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append(row)
        size += row_size
    if current:
        chunks.append(current)
    return chunks


class BigQuerySink:
    capabilities = SinkCapabilities(exactly_once=False, max_rows_per_request=500)

    def __init__(
        self,
        dataset: str = "dagster_audit",
        *,
        project: str | None = None,
        location: str | None = None,
        api_endpoint: str | None = None,
        batch_rows: int = 500,
        credentials_info: dict[str, Any] | None = None,
        client: bigquery.Client | None = None,
        retry_deadline: float = 30.0,
        timeout: float = 30.0,
    ) -> None:
        # The client retries 5xx and connection errors for 600 s by default: a sensor tick would
        # hang for ten minutes during an outage. Bound it; the spool takes over after that.
        self.retry_deadline = retry_deadline
        self.timeout = timeout
        self.credentials_info = credentials_info
        self.dataset = dataset
        self.project = project
        self.location = location
        self.api_endpoint = api_endpoint
        self.batch_rows = batch_rows
        self._client = client

    @property
    def client(self) -> bigquery.Client:
        if self._client is None:
            from google.cloud import bigquery

            kwargs: dict[str, Any] = {"project": self.project, "location": self.location}
            if self.api_endpoint:  # an emulator: no Google credentials involved
                from google.auth.credentials import AnonymousCredentials

                kwargs["client_options"] = {"api_endpoint": self.api_endpoint}
                kwargs["credentials"] = AnonymousCredentials()
            elif self.credentials_info:
                from google.oauth2 import service_account

                kwargs["credentials"] = service_account.Credentials.from_service_account_info(self.credentials_info)
            self._client = bigquery.Client(**kwargs)
        return self._client

    def _retry(self) -> Any:
        from google.cloud import bigquery

        return bigquery.DEFAULT_RETRY.with_deadline(self.retry_deadline)

    def _run(self, sql: str) -> Any:
        return self.client.query(sql, retry=self._retry(), job_retry=None, timeout=self.timeout).result(timeout=self.timeout)

    @property
    def project_id(self) -> str:
        return self.project or self.client.project

    def table_id(self, name: str) -> str:
        return f"{self.project_id}.{self.dataset}.{name}"

    def table_resource(self, table: schema.TableDef) -> bigquery.Table:
        """The table as sent to the API: schema, DAY partitioning on event_ts, clustering."""
        from google.cloud import bigquery

        resource = bigquery.Table(
            self.table_id(table.name),
            schema=[
                bigquery.SchemaField(c.name, c.bq_type, mode=_MODE[c.required], description=c.description)  # type: ignore[arg-type]
                for c in table.columns
            ],
        )
        resource.time_partitioning = bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.DAY, field=table.partition_column)
        resource.clustering_fields = list(table.cluster_columns)
        resource.description = table.description
        return resource

    def init(self) -> None:
        from google.cloud import bigquery

        try:
            dataset = bigquery.Dataset(f"{self.project_id}.{self.dataset}")
            if self.location:
                dataset.location = self.location
            self.client.create_dataset(dataset, exists_ok=True, retry=self._retry(), timeout=self.timeout)
            for table in schema.tables():
                self.client.create_table(self.table_resource(table), exists_ok=True, retry=self._retry(), timeout=self.timeout)
            for view in schema.views():
                self._run(schema.bigquery_sql(view.ast, self.dataset, self.project_id))
        except Exception as exc:  # google.api_core errors, transport errors
            raise AuditSinkError(f"BigQuery init of {self.project_id}.{self.dataset} failed: {describe_error(exc)}") from exc

    def write(self, records: Sequence[AuditRecord]) -> WriteResult:
        """insertAll per table in chunks. Any failure (client set-up, transport, API error, rows
        rejected in a response) raises :class:`AuditSinkError` for the whole batch: the trail
        spools it and the replay re-sends what had gone in already, which the views absorb."""
        result = WriteResult(attempted=len(records))
        if not records:
            return result
        ingested_at = datetime.now(timezone.utc)
        table_name = "?"
        try:
            for table_name, batch in group_by_table(records).items():
                rows = [_jsonable(r.to_row(ingested_at)) for r in batch]
                for chunk in chunk_rows(rows, self.batch_rows):
                    errors = self.client.insert_rows_json(
                        self.table_id(table_name),
                        chunk,
                        row_ids=[row["event_id"] for row in chunk],
                        retry=self._retry(),
                        timeout=self.timeout,
                    )
                    result.requests += 1
                    if errors:
                        raise AuditSinkError(f"BigQuery rejected rows of {table_name}: {redact(str(errors[:3]))[:500]}")
                result.per_table[table_name] = len(batch)
        except AuditSinkError:
            raise
        except Exception as exc:  # google.api_core / google.auth errors, requests transport errors
            raise AuditSinkError(f"BigQuery insertAll into {table_name} failed: {describe_error(exc)}") from exc
        return result

    def query_view(self, view: str, limit: int | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        schema.require_object(view)
        sql = f"SELECT * FROM `{self.table_id(view)}`" + (f" LIMIT {int(limit)}" if limit else "")
        return self.query(sql)

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        rows = self._run(sql)
        names = [f.name for f in rows.schema]
        return names, [tuple(row.values()) for row in rows]

    def query_arrow(self, sql: str) -> Any:
        """``sql``'s results as an Arrow table, read through the query's result pages: no load or
        extract job (those count against per-table quotas)."""
        return self._run(sql).to_arrow(create_bqstorage_client=False)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
