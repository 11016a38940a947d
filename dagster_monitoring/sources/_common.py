"""What the source adapters (Fivetran, dbt Cloud, AWS) share: timestamps, and the audit-ready run record.

Every source event carries, under namespaced ``external_job/...`` keys in ``details`` (cards
leave namespaced keys out; the audit trail can read them), the facts an ``external_job_runs``
row needs later: the source, the connector or job id and name, the run id, the status, when it
started and finished, and its message. The human facts sit next to them under plain labels.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

EXTERNAL_JOB = "external_job/"


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp from an API (``2026-05-22T00:06:08.638Z``, ``...+00:00``, dbt Cloud's
    ``2023-01-31 19:28:07.1234+00:00`` and nanosecond fractions) as aware UTC; None when absent
    or unreadable."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:  # Python < 3.11 reads at most 6 fraction digits; dbt Cloud sends 9
        digits = len(rest) - len(rest.lstrip("0123456789"))
        rest = rest[:digits][:6].ljust(6, "0") + rest[digits:]
        text = f"{head}.{rest}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def iso(at: datetime | None) -> str | None:
    return at.astimezone(timezone.utc).isoformat(timespec="seconds") if at else None


def external_job(
    *,
    source: str,
    job_id: str,
    job_name: str,
    run_id: str | None,
    status: str,
    started_at: datetime | None,
    finished_at: datetime | None,
    message: str | None,
    via: str,
    account: str | None = None,
    region: str | None = None,
) -> dict[str, Any]:
    """The audit-ready record of one run, as ``external_job/<field>`` detail keys (AWS sources
    add their account and region)."""
    record = {
        "source": source,
        "job_id": job_id,
        "job_name": job_name,
        "run_id": run_id,
        "status": status,
        "started_at": iso(started_at),
        "finished_at": iso(finished_at),
        "message": message,
        "via": via,  # poll | webhook | eventbridge
    }
    if account or region:
        record.update(account=account, region=region)
    return {EXTERNAL_JOB + key: value for key, value in record.items()}


def first_text(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value.strip() and value.strip().lower() != "none":
            return value.strip()
    return None
