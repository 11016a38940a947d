"""Realistic sample alerts: one failure (:func:`sample_notification`, for ``send-test``) and one
notification per card kind (:func:`sample_notifications`, for card previews and rendering tests)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from .events import AlertEvent, Severity, Status
from .failing_rows import bound_rows
from .grouping import merge
from .lifecycle import Transition, recovery_links
from .notification import IncidentSnapshot, Notification

ARTIFACTS_URL = "https://dbt-artifacts.example.com/lender/8f1c2e4a"  # where a job publishes its dbt target folder
FIXED_BY_RUN_ID = "c3d9e0f1-2a4b-4c6d-8e0f-1a2b3c4d5e6f"
# what monitor_dbt_events reads back for a failing not_null test with store_failures
SAMPLE_FAILING_ROWS = bound_rows(
    ["repayment_id", "loan_id", "amount", "currency", "received_at"],
    [
        ["R-20931", "L-1042", None, "GBP", "2026-11-24 09:12"],
        ["R-20932", "L-1043", None, "GBP", "2026-11-24 09:13"],
        ["R-21187", "L-1187", None, "EUR", "2026-11-24 11:40"],
    ],
    total=3,
    source="stored failures",
).to_json()


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
            "dbt/failing_rows": SAMPLE_FAILING_ROWS,
        },
        owners=("team:data-eng",),
        tags={"criticality": "high", "dagster-monitoring/test": "true"},
        links={
            "run": f"{base_url}/runs/8f1c2e4a-5b6d-4c3e-9a7f-0d1e2f3a4b5c",
            "asset_check": f"{base_url}/assets/loans/fct_repayments?view=checks&checkDetail=not_null_fct_repayments_amount",
            "dbt_artifacts": f"{ARTIFACTS_URL}/run_results.json",
        },
        run_id="8f1c2e4a-5b6d-4c3e-9a7f-0d1e2f3a4b5c",
        next_action="Find the repayments with a NULL amount in raw.repayments, fix the source extract and re-run loans_daily.",
    )
    recovered = transition is Transition.RECOVERED
    if recovered:  # the recovery links the run that fixed it first
        event = replace(event, links=recovery_links(event.links, {"run": f"{base_url}/runs/{FIXED_BY_RUN_ID}"}))
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


# -- one realistic notification per card kind ------------------------------------------------------

SAMPLE_TICKET = {"key": "DATA-1234", "url": "https://example.atlassian.net/browse/DATA-1234"}
SAMPLE_RUN_ERROR = """DagsterExecutionStepExecutionError: Error occurred while executing op "load_repayments":

Traceback (most recent call last):
  File "/opt/dagster/lib/python3.12/site-packages/dagster/_core/execution/plan/utils.py", line 56, in op_execution_error_boundary
    yield
  File "/opt/dagster/app/lender/assets/repayments.py", line 88, in load_repayments
    rows = conn.execute(text(REPAYMENTS_SQL), {"day": context.partition_key}).fetchall()
  File "/opt/dagster/lib/python3.12/site-packages/sqlalchemy/engine/base.py", line 1418, in execute
    return meth(self, distilled_parameters, execution_options or NO_OPTIONS)
sqlalchemy.exc.ProgrammingError: (psycopg2.errors.UndefinedColumn) column "amount_eur" does not exist
LINE 1: select loan_id, amount_eur from raw.repayments where day = %(day)s
                        ^
"""


def _incident(
    event: AlertEvent,
    now: datetime,
    *,
    failed_for: timedelta,
    failures: int,
    recovered: bool = False,
    tickets: dict[str, dict[str, str]] | None = None,
    flaps: int = 0,
) -> IncidentSnapshot:
    first = now - failed_for
    return IncidentSnapshot(
        incident_id=f"sample-{event.kind}-{int(first.timestamp())}",
        fingerprint=event.fingerprint,
        first_failed_at=first,
        last_failed_at=now - timedelta(minutes=15) if recovered else now,
        failures=failures,
        last_success_at=now if recovered else first - timedelta(days=1),
        recovered_at=now if recovered else None,
        flaps=flaps,
        tickets=tickets or {},
    )


def sample_events(*, now: datetime | None = None, base_url: str = "http://localhost:3000") -> dict[str, AlertEvent]:
    """One failing event per kind of alert a card shows, as the checks and sensors emit them."""
    now = now or datetime.now(timezone.utc)
    run_id = "8f1c2e4a-5b6d-4c3e-9a7f-0d1e2f3a4b5c"
    run = f"{base_url}/runs/{run_id}"
    return {
        "dbt_test": AlertEvent(
            source="dbt",
            kind="asset_check",
            entity="loans/fct_repayments:not_null_fct_repayments_amount",
            status=Status.FAILING,
            severity=Severity.CRITICAL,
            occurred_at=now,
            summary="Check not_null_fct_repayments_amount on loans/fct_repayments failed",
            details={
                "dbt/test_type": "not_null",
                "dbt/column": "amount",
                "dbt/model": "fct_repayments",
                "dbt/failures": 3,
                "dbt/message": "Got 3 results, configured to fail if != 0",
                "dbt/failing_rows": SAMPLE_FAILING_ROWS,
            },
            owners=("team:data-eng",),
            links={
                "run": run,
                "asset_check": f"{base_url}/assets/loans/fct_repayments?view=checks&checkDetail=not_null_fct_repayments_amount",
                "dbt_artifacts": f"{ARTIFACTS_URL}/run_results.json",
                "compiled_sql": f"{ARTIFACTS_URL}/compiled/lender/models/marts/_marts.yml/not_null_fct_repayments_amount.sql",
            },
            run_id=run_id,
            next_action="Find the repayments with a NULL amount in raw.repayments, fix the source extract and re-run loans_daily.",
        ),
        "schema_drift": AlertEvent(
            source="dlt",
            kind="schema_drift",
            entity="lending/loans:dlt_schema_drift",
            status=Status.FAILING,
            severity=Severity.ERROR,
            occurred_at=now,
            summary="Check dlt_schema_drift on lending/loans failed",
            details={
                "drift": {
                    "added": [{"column": "promo_code", "type": "text"}],
                    "removed": [{"column": "legacy_flag"}],
                    "type_changed": [{"column": "principal_amount", "from": "bigint", "to": "decimal"}],
                },
                "columns_before": 14,
                "columns_now": 14,
            },
            owners=("team:lending",),
            links={"run": run, "asset_check": f"{base_url}/assets/lending/loans?view=checks"},
            run_id=run_id,
            next_action="Check with the loans API team whether the change is intended, then update the staging model.",
        ),
        "row_count": AlertEvent(
            source="dlt",
            kind="row_count",
            entity="lending/repayments:dlt_row_count",
            status=Status.FAILING,
            severity=Severity.ERROR,
            occurred_at=now,
            summary="Check dlt_row_count on lending/repayments failed",
            details={"rows_loaded": 1204, "trailing_average": 48210.4, "baseline_loads": 7, "min_rows": 10000, "max_drop": 0.5},
            owners=("team:lending",),
            links={"run": run, "asset_check": f"{base_url}/assets/lending/repayments?view=checks"},
            run_id=run_id,
            next_action="Compare the load with the source API's count for the day; re-run the pipeline once the source is complete.",
        ),
        "freshness": AlertEvent(
            source="dagster",
            kind="freshness",
            entity="marts/loan_book:freshness",
            status=Status.FAILING,
            severity=Severity.WARN,
            occurred_at=now,
            summary="Check freshness on marts/loan_book failed",
            details={
                "age_minutes": 425.0,
                "last_updated": (now - timedelta(minutes=425)).isoformat(),
                "warn_after": "6h",
                "fail_after": "12h",
            },
            owners=("team:finance-analytics",),
            links={"asset": f"{base_url}/assets/marts/loan_book"},
            next_action="Open the asset, check why loans_daily has not materialized it since this morning, and materialize it.",
        ),
        "run_failure": AlertEvent(
            source="dagster",
            kind="run",
            entity="loans_daily",
            status=Status.FAILING,
            severity=Severity.ERROR,
            occurred_at=now,
            summary="Run of loans_daily (partition 2026-11-24) failed: DagsterExecutionStepExecutionError",
            details={"error": SAMPLE_RUN_ERROR, "partition": "2026-11-24"},
            owners=("team:data-eng",),
            links={"run": run, "logs": f"{run}?logs=step:load_repayments", "runbook": "https://wiki.example.com/runbooks/loans_daily"},
            run_id=run_id,
            next_action="Open the run, read the failing step's error, fix the cause and re-execute loans_daily from failure.",
        ),
        "watchdog": AlertEvent(
            source="dagster-monitoring",
            kind="heartbeat",
            entity="dagster_monitoring_alerts",
            status=Status.FAILING,
            severity=Severity.ERROR,
            occurred_at=now,
            summary="Monitoring sensor dagster_monitoring_alerts stopped ticking 42m ago",
            details={"Last tick": f"42m ago ({now - timedelta(minutes=42):%Y-%m-%d %H:%M UTC})", "Expected every": "1m"},
            owners=("team:platform",),
            links={"sensor": f"{base_url}/locations/monitoring/sensors/dagster_monitoring_alerts"},
            next_action=(
                "Alerts for your pipelines are not being sent. Open the sensor's page (Automation > dagster_monitoring_alerts), "
                "read the latest tick's error, and check that dagster-daemon is running."
            ),
        ),
    }


def sample_notifications(
    receiver: str = "teams", *, now: datetime | None = None, base_url: str = "http://localhost:3000"
) -> dict[str, Notification]:
    """Every card kind: a NEW notification per kind of alert (:func:`sample_events`), then the
    transitions: an escalation (WARN to ERROR), a reminder, a recovery with its (closed) ticket,
    a NEW card linking a Jira ticket, and one run's alerts grouped in one card (with an inhibited
    downstream alert under "Also affected"). For previews, ``send-test`` and the card rendering tests."""
    at = now or datetime.now(timezone.utc)
    events = sample_events(now=at, base_url=base_url)
    jira = {"jira": dict(SAMPLE_TICKET)}

    def notify(name: str, event: AlertEvent, transition: Transition = Transition.NEW, **incident: Any) -> tuple[str, Notification]:
        return name, Notification(
            key=f"sample:{name}:{transition.value}:{receiver}",
            receiver=receiver,
            transition=transition,
            severity=event.severity,
            event=event,
            incident=_incident(event, at, recovered=transition is Transition.RECOVERED, **incident),
            created_at=at,
        )

    failing = timedelta(hours=2, minutes=14)
    # One bad run: the critical test leads, the run failure and the drift ride along, and a test of
    # a model downstream of the drifted table is folded in as "also affected" (inhibited).
    _, lead = notify("dbt_test", events["dbt_test"], failed_for=timedelta(minutes=5), failures=1)
    downstream = replace(
        events["schema_drift"],
        source="dbt",
        kind="asset_check",
        entity="loans/fct_loan_book:not_null_fct_loan_book_principal",
        summary="dbt test not_null_fct_loan_book_principal failed",
        links={"asset_check": f"{base_url}/assets/loans/fct_loan_book?view=checks"},
    )
    grouped = merge(
        [
            lead,
            notify("run_failure", replace(events["run_failure"], run_id=lead.event.run_id), failed_for=timedelta(minutes=5), failures=1)[1],
            notify("schema_drift", events["schema_drift"], failed_for=timedelta(minutes=5), failures=1)[1],
        ]
    )
    grouped = replace(grouped, also_affected=(notify("downstream", downstream, failed_for=timedelta(minutes=5), failures=1)[1],))
    return dict(
        [
            notify("dbt_test", events["dbt_test"], failed_for=failing, failures=3),
            notify("schema_drift", events["schema_drift"], failed_for=timedelta(minutes=20), failures=1),
            notify("row_count", events["row_count"], failed_for=timedelta(minutes=35), failures=1),
            notify("freshness", events["freshness"], failed_for=timedelta(minutes=65), failures=2),
            notify("run_failure", events["run_failure"], failed_for=timedelta(minutes=8), failures=1),
            notify("watchdog", events["watchdog"], failed_for=timedelta(minutes=42), failures=5),
            notify(
                "escalated",
                events["freshness"].with_severity(Severity.ERROR),
                Transition.ESCALATED,
                failed_for=timedelta(hours=6, minutes=5),
                failures=8,
            ),
            notify("reminder", events["run_failure"], Transition.REMINDER, failed_for=timedelta(hours=4), failures=4, flaps=1),
            notify(
                "recovered",
                replace(events["dbt_test"], links=recovery_links(events["dbt_test"].links, {"run": f"{base_url}/runs/{FIXED_BY_RUN_ID}"})),
                Transition.RECOVERED,
                failed_for=failing,
                failures=3,
                tickets=jira,
            ),
            notify("jira_ticket", events["schema_drift"], failed_for=timedelta(hours=1), failures=2, tickets=jira),
            ("grouped", grouped),
        ]
    )
