"""A realistic sample failure, for ``send-test`` and for card previews."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from .events import AlertEvent, Severity, Status
from .lifecycle import Transition
from .notification import IncidentSnapshot, Notification


def sample_notification(
    receiver: str,
    transition: Transition = Transition.NEW,
    *,
    now: datetime | None = None,
    base_url: str = "http://localhost:3000",
) -> Notification:
    now = now or datetime.now(timezone.utc)
    first = now - timedelta(hours=2, minutes=14)
    event = AlertEvent(
        source="dbt",
        kind="asset_check",
        entity="loans/fct_repayments:not_null_fct_repayments_amount",
        status=Status.FAILING,
        severity=Severity.CRITICAL,
        occurred_at=now,
        summary="Critical dbt test not_null_fct_repayments_amount failed on fct_repayments (3 failing rows)",
        details={
            "offending_value": "3 rows with amount IS NULL (loan_id 1042, 1043, 1187)",
            "error": "dbt test failed: Got 3 results, configured to fail if != 0",
            "compiled_sql": "target/compiled/lender/models/schema.yml/not_null_fct_repayments_amount.sql",
        },
        owners=("team:data-eng",),
        tags={"criticality": "high", "dagster-monitoring/test": "true"},
        links={
            "run": f"{base_url}/runs/8f1c2e4a-5b6d-4c3e-9a7f-0d1e2f3a4b5c",
            "asset_check": f"{base_url}/assets/loans/fct_repayments?view=checks&checkDetail=not_null_fct_repayments_amount",
            "dbt_artifacts": f"{base_url}/runs/8f1c2e4a-5b6d-4c3e-9a7f-0d1e2f3a4b5c?logFileKey=dbt",
        },
        run_id="8f1c2e4a-5b6d-4c3e-9a7f-0d1e2f3a4b5c",
        next_action="Find the repayments with a NULL amount in raw.repayments, fix the source extract and re-run loans_daily.",
    )
    recovered = transition is Transition.RECOVERED
    incident = IncidentSnapshot(
        incident_id="sample-incident",
        fingerprint=event.fingerprint,
        first_failed_at=first,
        last_failed_at=now - timedelta(minutes=30) if recovered else now,
        failures=3,
        last_success_at=now if recovered else first - timedelta(days=1),
        recovered_at=now if recovered else None,
    )
    return Notification(
        key=f"sample:{transition.value}:{receiver}",
        receiver=receiver,
        transition=transition,
        severity=event.severity,
        event=event,
        incident=incident,
        created_at=now,
    )
