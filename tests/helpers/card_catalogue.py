"""Every Teams card kind, what a human must see on it, and adversarial variants of them.

``sample_notifications`` (dagster_monitoring/alerting/sample.py) holds one realistic notification
per card kind; :data:`MUST_SHOW` writes down, by hand, what the on-call must read on each (the
headline words, the kind's key facts, the owner, the next action, the buttons). The adversarial
variants take those notifications and fill them with hostile text: a ~50 KB check description,
right-to-left, CJK, emoji and combining text, Markdown and HTML that must stay text, a 2,000
character path without a space, and credentials that must be masked.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from dagster_monitoring.alerting import Notification, Transition
from dagster_monitoring.alerting.sample import ARTIFACTS_URL, FIXED_BY_RUN_ID, SAMPLE_TICKET, sample_notifications

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)
BASE_URL = "https://dagster.example.com"
RUN_URL = f"{BASE_URL}/runs/8f1c2e4a-5b6d-4c3e-9a7f-0d1e2f3a4b5c"


@dataclass(frozen=True)
class MustShow:
    """What the rendered card must say: ``texts`` appear in the card's text (a fact row reads
    "Label value"); ``buttons`` maps each button title to its URL; ``absent`` must not appear."""

    texts: tuple[str, ...]
    buttons: dict[str, str]
    absent: tuple[str, ...] = ()


_DBT_BUTTONS = {
    "Open run": RUN_URL,
    "Asset check": f"{BASE_URL}/assets/loans/fct_repayments?view=checks&checkDetail=not_null_fct_repayments_amount",
    "dbt artifacts": f"{ARTIFACTS_URL}/run_results.json",
    "Test SQL": f"{ARTIFACTS_URL}/compiled/lender/models/marts/_marts.yml/not_null_fct_repayments_amount.sql",
}
_DRIFT_BUTTONS = {"Open run": RUN_URL, "Asset check": f"{BASE_URL}/assets/lending/loans?view=checks"}
_DRIFT_FACTS = ("Added promo_code (text)", "Removed legacy_flag", "Type changed principal_amount (decimal)", "Columns 14 → 14")
_RUN_BUTTONS = {
    "Open run": RUN_URL,
    "Logs": f"{RUN_URL}?logs=step:load_repayments",
    "Runbook": "https://wiki.example.com/runbooks/loans_daily",
}
_RUN_FACTS = (
    "Run of loans_daily (partition 2026-11-24) failed: DagsterExecutionStepExecutionError",
    "Error DagsterExecutionStepExecutionError",
    "Partition 2026-11-24",
    "Error message",
    'Error occurred while executing op "load_repayments":',
    'column "amount_eur" does not exist',
    "Owner team:data-eng",
    "Next action: Open the run, read the failing step's error, fix the cause and re-execute loans_daily from failure.",
)
_FRESHNESS_FACTS = (
    "marts/loan_book is stale: last updated 7 h 05 min ago",
    "Last updated 7 h 05 min ago",
    "Warn after 6h",
    "Fail after 12h",
    "Owner team:finance-analytics",
    "Next action: Open the asset, check why loans_daily has not materialized it",
)
_FRESHNESS_BUTTONS = {"Asset": f"{BASE_URL}/assets/marts/loan_book"}
_TICKET_BUTTON = {f"Ticket {SAMPLE_TICKET['key']}": SAMPLE_TICKET["url"]}

MUST_SHOW: dict[str, MustShow] = {
    "dbt_test": MustShow(
        (
            "CRITICAL · NEW",
            "Critical dbt test failed: not_null on fct_repayments.amount",
            "Failing since 2026-11-25 00:46 UTC (2h 14m ago)",
            "Failures 3 in a row",
            "Test not_null_fct_repayments_amount",
            "Model fct_repayments",
            "Column amount",
            "Failing rows 3 rows",
            "dbt says Got 3 results, configured to fail if != 0",
            "Failing rows (3)",  # the sample's caption, then its table
            "repayment_id loan_id amount currency received_at",
            "R-20931 L-1042 NULL GBP 2026-11-24 09:12",
            "R-21187 L-1187 NULL EUR 2026-11-24 11:40",
            "Owner team:data-eng",
            "Next action: Find the repayments with a NULL amount in raw.repayments, fix the source extract and re-run loans_daily.",
        ),
        _DBT_BUTTONS,
        absent=("Ticket",),
    ),
    "schema_drift": MustShow(
        (
            "ERROR · NEW",
            "Schema changed: lending/loans (added: promo_code (text), removed: legacy_flag)",
            *_DRIFT_FACTS,
            "Owner team:lending",
        ),
        _DRIFT_BUTTONS,
    ),
    "row_count": MustShow(
        (
            "ERROR · NEW",
            "Row count too low: lending/repayments loaded 1,204 rows",
            "Rows loaded 1,204 rows",
            "Trailing average 48,210 rows over 7 loads",
            "Minimum 10,000 rows",
            "Allowed drop 50%",
            "Owner team:lending",
            "Next action: Compare the load with the source API's count",
        ),
        {"Open run": RUN_URL, "Asset check": f"{BASE_URL}/assets/lending/repayments?view=checks"},
    ),
    "freshness": MustShow(("WARN · NEW", *_FRESHNESS_FACTS), _FRESHNESS_BUTTONS),
    "run_failure": MustShow(("ERROR · NEW", *_RUN_FACTS), _RUN_BUTTONS),
    "watchdog": MustShow(
        (
            "ERROR · NEW",
            "Monitoring sensor dagster_monitoring_alerts stopped ticking 42m ago",
            "Last tick 42m ago (2026-11-25 02:18 UTC)",
            "Expected every 1m",
            "Failures 5 in a row",
            "Owner team:platform",
            "Next action: Alerts for your pipelines are not being sent.",
        ),
        {"Open sensor": f"{BASE_URL}/locations/monitoring/sensors/dagster_monitoring_alerts"},
    ),
    "escalated": MustShow(
        ("ERROR · ESCALATED", "Escalated from WARN to ERROR: 8 failures in a row over 6h 05m.", *_FRESHNESS_FACTS),
        _FRESHNESS_BUTTONS,
    ),
    "reminder": MustShow(
        (
            "ERROR · ONGOING (REMINDER)",
            "Reminder: still failing after 4h 00m, 4 failure(s) in a row.",
            "Failures 4 in a row (1 flaps)",
            *_RUN_FACTS,
        ),
        _RUN_BUTTONS,
    ),
    "recovered": MustShow(
        (
            "RECOVERED",
            "Recovered: dbt test not_null on fct_repayments.amount",
            "Recovered after 2h 14m and 3 failure(s).",
            "Recovered at 2026-11-25 03:00 UTC",
            "Broken for 2h 14m",
            "Owner team:data-eng",
            "Ticket DATA-1234 (closed)",
            "Next action: No action needed.",
        ),
        {
            "Run that fixed it": f"{BASE_URL}/runs/{FIXED_BY_RUN_ID}",
            **_TICKET_BUTTON,
            "Failing run": RUN_URL,
            "Asset check": _DBT_BUTTONS["Asset check"],
            "dbt artifacts": _DBT_BUTTONS["dbt artifacts"],  # five buttons at most: the test SQL is left out
        },
        absent=("What failed", "Failing rows", "R-20931", "Next action: Find"),
    ),
    "jira_ticket": MustShow(
        ("ERROR · NEW", "Schema changed: lending/loans", "Ticket DATA-1234", *_DRIFT_FACTS),
        {"Open run": RUN_URL, **_TICKET_BUTTON, "Asset check": _DRIFT_BUTTONS["Asset check"]},
        absent=("(closed)",),
    ),
    # one run's alerts in one card: the critical test leads, every member listed with its state and link
    "grouped": MustShow(
        (
            "CRITICAL · NEW",
            "Critical dbt test failed: not_null on fct_repayments.amount and 2 more",
            "Failing since 2026-11-25 02:55 UTC (5m ago)",
            "3 alerts in this message",
            "CRITICAL new loans/fct_repayments:not_null_fct_repayments_amount ↗",
            "ERROR new loans_daily ↗",
            "ERROR new lending/loans:dlt_schema_drift ↗",
            "Also affected (1, downstream in the same run)",
            "ERROR loans/fct_loan_book:not_null_fct_loan_book_principal ↗",
            "Test not_null_fct_repayments_amount",
            "Owner team:data-eng",
            "Next action: Find the repayments with a NULL amount in raw.repayments",
        ),
        _DBT_BUTTONS,
        absent=("+", "Ticket"),
    ),
}


def catalogue() -> dict[str, Notification]:
    """The sample notifications at a fixed time and base URL (so MUST_SHOW can spell them out)."""
    return sample_notifications(now=NOW, base_url=BASE_URL)


# -- adversarial text --------------------------------------------------------------------------------

# A configured Teams receiver's URL (registered as a secret, as config loading does) and one nobody
# registered (another team's webhook quoted in an error), plus credentials in other shapes.
REGISTERED_WEBHOOK = (
    "https://prod-42.westeurope.logic.azure.com:443/workflows/0a1b2c3d4e5f/triggers/manual/paths/invoke"
    "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=Rg7SECRETsig9Xq2Lm4Pz8Kc1"
)
UNREGISTERED_WEBHOOK = (
    "https://contoso.webhook.office.com/webhookb2/SECRET-6f1e2d3c-guid@a1b2c3d4-tenant"
    "/IncomingWebhook/SECRETd41d8cd98f00b204e9800998ecf8427e/SECRET-owner-guid"
)
SECRETS = (
    "Rg7SECRETsig9Xq2Lm4Pz8Kc1",
    "SECRET-6f1e2d3c-guid",
    "SECRETd41d8cd98f00b204e9800998ecf8427e",
    "hunter2",
    "s3cr3t-Pg-pass",
    "eyJhbGciOiJIUzI1NiJ9.SECRETtoken.sig",
)
ARABIC = "فشل اختبار البيانات: القيم المفقودة في عمود المبلغ"
CJK = "数据测试失败：金额列存在空值（3行）・データ品質チェック失敗"
EMOJI = "🚨🔥 family 👨‍👩‍👧‍👦 flag 🇩🇪 skin 👍🏽"
COMBINING = "Zalgo: Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǵ̶̬̹o̤͑, Å vs Å, e\u0301"
ZERO_WIDTH = "zero\u200bwidth\u200cnon\u200djoiner\u2060word\ufeffjoiner"
UNICODE = f"{ARABIC} — {CJK} — {EMOJI} — {COMBINING} — {ZERO_WIDTH}"
MARKUP = (
    "**bold** __strong__ _italic_ *em* ~~strike~~ `code` # heading\n- list item\n1. numbered\n"
    "[click me](javascript:alert(1)) [phish](https://evil.example/login) <https://evil.example/auto> "
    "<script>alert('xss')</script> <img src=x onerror=alert(1)> <a href=\"javascript:alert(2)\">a</a> "
    "&lt;b&gt;entity&lt;/b&gt; &amp; \\*escaped\\* back\\slash"
)
LONG_PATH = "/" + "/".join(f"very_long_directory_name_{i:03d}" for i in range(80))  # ~2,000 chars, no space
assert len(LONG_PATH) >= 2000 and " " not in LONG_PATH


def long_description(size: int = 50_000) -> str:
    """A check description of ``size`` characters: sentences, a traceback-ish block, no end."""
    unit = (
        "This test asserts that every repayment row carries a non-null amount in EUR, "
        "as required by the finance reconciliation (see the data contract v3, section 4.2). "
    )
    return (unit * (size // len(unit) + 1))[:size]


def _with(notification: Notification, name: str, **event: Any) -> Notification:
    ev = replace(notification.event, **event)
    return replace(
        notification, key=f"{notification.key}:{name}", event=ev, incident=replace(notification.incident, fingerprint=ev.fingerprint)
    )


def adversarial(base: dict[str, Notification] | None = None) -> dict[str, Notification]:
    """Hostile variants of the catalogue's cards, by name."""
    cat = base or catalogue()
    dbt, run, watchdog, drift = cat["dbt_test"], cat["run_failure"], cat["watchdog"], cat["schema_drift"]
    desc = long_description()
    dbt_details = {k: v for k, v in dbt.event.details.items() if k != "dbt/message"}
    custom = _with(
        watchdog,
        "custom",
        source="dagster",
        kind="asset_check",
        entity="finance/ledger:reconciles_with_bank",
        summary=f"Check reconciles_with_bank on finance/ledger failed: {desc}",
        details={"result": desc, "error": desc, "offending_value": "17 unmatched transfers"},
        links={"asset_check": f"{BASE_URL}/assets/finance/ledger?view=checks"},
    )
    return {
        # a 50 KB check description, as the translator passes it: in the summary and as "result"
        "dbt_long_description": _with(
            dbt,
            "long",
            summary=f"Check not_null_fct_repayments_amount on loans/fct_repayments failed: {desc}",
            details={**dbt_details, "result": desc},
        ),
        "generic_long_description": custom,
        "run_long_error": _with(run, "long", details={"error": f"RuntimeError: {desc}", "partition": "2026-11-24"}),
        "long_next_action": _with(custom, "next", next_action=desc),
        "unicode": _with(
            dbt,
            "unicode",
            entity=f"loans/مدفوعات_{CJK[:4]}:not_null_金额",
            details={**dbt_details, "dbt/column": "المبلغ", "dbt/model": "返済_🚨", "dbt/message": UNICODE, "notes": COMBINING},
            owners=("team:données-équipe", "فريق البيانات"),
            next_action=f"{ARABIC}. {CJK}. {EMOJI}.",
        ),
        "unicode_run": _with(
            run, "unicode", summary=f"Run of loans_daily failed: {UNICODE}", details={"error": f"UnicodeError: {UNICODE}\n{UNICODE}"}
        ),
        "markup": _with(
            cat["watchdog"],
            "markup",
            source="dagster",
            kind="asset_check",
            entity="finance/ledger:**bold_check**",
            summary=f"Check failed: {MARKUP}",
            details={"**Error**": MARKUP.replace("\n", " "), "<b>html key</b>": "<i>x</i>", "trace": f"Traceback:\n{MARKUP}"},
            owners=("**team**", "<script>alert(3)</script>"),
            next_action=f"Fix it: {MARKUP}",
            links={
                "sensor": f"{BASE_URL}/locations/monitoring/sensors/dagster_monitoring_alerts",
                "runbook": "javascript:alert(document.cookie)",
                "logs": "data:text/html,<script>alert(1)</script>",
            },
        ),
        "markup_dbt": _with(
            dbt,
            "markup",
            details={**dbt_details, "dbt/message": MARKUP, "dbt/column": "<img src=x onerror=alert(1)>", "dbt/model": "**fct**"},
        ),
        "long_token": _with(
            run,
            "token",
            entity=f"loans_daily{LONG_PATH}",
            summary=f"Run failed: FileNotFoundError: {LONG_PATH}",
            details={"error": f"FileNotFoundError: [Errno 2] No such file: '{LONG_PATH}'", "path": LONG_PATH[:118], "partition": LONG_PATH},
            owners=(f"team:{LONG_PATH[:200]}",),
            next_action=f"Create {LONG_PATH} and re-run.",
        ),
        "long_token_drift": _with(
            drift,
            "token",
            entity=f"lending/{'x' * 2000}:dlt_schema_drift",
            details={
                "drift": {"added": [{"column": "c" * 2000, "type": "text"}], "removed": [], "type_changed": []},
                "columns_before": 14,
                "columns_now": 15,
            },
        ),
        "secrets": _with(
            run,
            "secrets",
            summary="Run of loans_daily failed: could not connect with password=hunter2",
            details={
                "error": (
                    f"ConnectionError: POST {REGISTERED_WEBHOOK} failed\n"
                    "sqlalchemy.exc.OperationalError: postgresql://loader:s3cr3t-Pg-pass@db.internal:5432/lending\n"
                    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.SECRETtoken.sig"
                ),
                "webhook": UNREGISTERED_WEBHOOK,
                "dsn": "host=db.internal user=loader password=hunter2",
            },
            next_action=f"Check the webhook {UNREGISTERED_WEBHOOK} and the DB password=hunter2.",
            owners=(f"team:data-eng (alerts: {REGISTERED_WEBHOOK})",),  # a fact no presenter redacted before
        ),
        "secrets_reminder": replace(
            _with(
                watchdog,
                "secrets",
                summary=f"Webhook {REGISTERED_WEBHOOK} rejected the card",
                details={"Note": f"api_key={SECRETS[0]} token: {SECRETS[5]}", "Receiver": UNREGISTERED_WEBHOOK},
            ),
            transition=Transition.REMINDER,
        ),
    }


@dataclass(frozen=True)
class Expect:
    """Literal texts an adversarial card must show (on top of its headline, facts and owner)."""

    texts: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    buttons: dict[str, str] = field(default_factory=dict)


ADVERSARIAL_EXPECT: dict[str, Expect] = {
    "dbt_long_description": Expect(("dbt says This test asserts that every repayment row",), buttons=_DBT_BUTTONS),
    "generic_long_description": Expect(
        ("Check reconciles_with_bank on finance/ledger failed: This test asserts", "Offending value 17 unmatched transfers")
    ),
    "run_long_error": Expect(("Error RuntimeError", "Error message This test asserts"), buttons=_RUN_BUTTONS),
    "long_next_action": Expect(("Next action: This test asserts",)),
    "unicode": Expect((ARABIC, CJK, "👨‍👩‍👧‍👦", "🇩🇪", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǵ̶̬̹o̤͑", "e\u0301", ZERO_WIDTH, "Owner team:données-équipe, فريق البيانات")),
    "unicode_run": Expect((ARABIC, CJK, EMOJI)),
    "markup": Expect(
        (
            "**bold**",
            "[click me](javascript:alert(1))",
            "[phish](https://evil.example/login)",
            "<script>alert('xss')</script>",
            "<img src=x onerror=alert(1)>",
            "**bold_check**",
            "Owner **team**, <script>alert(3)</script>",
            "\\*escaped\\*",
            "&lt;b&gt;entity&lt;/b&gt; &amp;",
        ),
        absent=("Runbook", "Logs"),
        buttons={"Open sensor": f"{BASE_URL}/locations/monitoring/sensors/dagster_monitoring_alerts"},
    ),
    "markup_dbt": Expect(("Column <img src=x onerror=alert(1)>", "Model **fct**", "**bold** __strong__ _italic_ *em*")),
    "long_token": Expect(("Run failed: FileNotFoundError: /very_long_directory_name_000/",)),
    "long_token_drift": Expect(("Schema changed: lending/xxxx",)),
    "secrets": Expect(("password=***", "postgresql://loader:***@db.internal:5432/lending", "Bearer ***", "contoso.webhook.office.com/***")),
    "secrets_reminder": Expect(("Webhook *** rejected the card", "Note api_key=*** token: ***", "Reminder: still failing")),
}
