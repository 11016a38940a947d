"""The demo story end to end (real Dagster runs, real dbt and dlt, real sensor ticks): what the
on-call engineer receives and what the audit views say, before and after the fix."""

from __future__ import annotations

import json

import duckdb
import pytest

from dagster_monitoring.alerting.notification import Notification
from dagster_monitoring.alerting.transports.teams_card import build_card

CRITICAL_TEST = "stg_loans:not_null_stg_loans_principal_amount"
WARN_TEST_PREFIX = "stg_loans:accepted_values_stg_loans_status"
DRIFT = "raw/loans:dlt_schema_drift"
EXPECTED_NEW = {
    ("dbt", "asset_check", CRITICAL_TEST): "critical",
    ("dlt", "schema_drift", DRIFT): "warn",
    ("dagster", "run", "lender_daily"): "error",
    ("dagster", "run", "import_partner_payments"): "error",
}
# dbt skipped the marts after the critical test failed: their step failed, so they failed to
# materialize; downstream of the failed test in the same run, they are folded into its message
NOT_MATERIALIZED = {("dagster", "materialization", "fct_loan_balances"), ("dagster", "materialization", "fct_repayments")}


def members(alerts, *, affected=True):
    """Every alert a phase's messages stand for: each message's lead, its members and (unless
    ``affected=False``) the downstream alerts folded into it."""
    for alert in alerts:
        yield alert
        yield from alert.get("members") or ()
        if affected:
            yield from alert.get("also_affected") or ()


def by_entity(alerts):
    out = {}
    for alert in members(alerts):
        event = alert["event"]
        entity = event["entity"]
        if entity.startswith(WARN_TEST_PREFIX):
            entity = WARN_TEST_PREFIX
        out[(event["source"], event["kind"], entity)] = alert
    return out


def test_green_phase_sends_nothing_and_no_failures(demo_run):
    result, _ = demo_run
    green = result.phases["green"]
    assert green.runs == {"lender_daily": True, "import_partner_payments": True}
    assert green.alerts == []
    assert green.recent_failures[1] == []
    assert green.preview is None


def test_broken_phase_sends_one_message_per_run_listing_what_broke_and_who_owns_it(demo_run):
    result, _ = demo_run
    broken = result.phases["broken"]
    assert broken.runs == {"lender_daily": False, "import_partner_payments": False}
    # two messages, not five: lender_daily's run (led by the critical test) and the partner job's
    assert [a["transition"] for a in broken.alerts] == ["new"] * 2
    lead, partner_run = broken.alerts
    assert lead["event"]["entity"] == CRITICAL_TEST and partner_run["event"]["entity"] == "import_partner_payments"
    assert {m["event"]["entity"] for m in lead["members"]} == {"lender_daily", DRIFT}
    # the WARN test on stg_loans failed downstream of the drifted raw/loans in the same run, and the
    # marts dbt did not build downstream of the critical test: folded in
    affected = sorted(m["event"]["entity"][:28] for m in lead["also_affected"])
    assert affected == ["fct_loan_balances", "fct_repayments", "stg_loans:accepted_values_st"]
    assert [a["transition"] for a in members(broken.alerts)] == ["new"] * 7
    alerts = by_entity(broken.alerts)
    assert set(alerts) == {*EXPECTED_NEW, ("dbt", "asset_check", WARN_TEST_PREFIX), *NOT_MATERIALIZED}
    for key, severity in EXPECTED_NEW.items():
        assert alerts[key]["severity"] == severity, key
    for key in NOT_MATERIALIZED:
        assert alerts[key]["severity"] == "error" and "DagsterDbtCliRuntimeError" in alerts[key]["event"]["details"]["error"], key
    assert alerts[("dbt", "asset_check", WARN_TEST_PREFIX)]["severity"] == "warn"

    critical = alerts[("dbt", "asset_check", CRITICAL_TEST)]["event"]
    assert "Got 1 result" in json.dumps(critical["details"])
    assert "team:data-eng" in critical["owners"]
    assert critical["links"]["run"].startswith("http://localhost:3000/runs/")
    assert critical["details"]["dbt/compiled_path"].startswith(str(result.home))  # dbt writes into the home, not the repo

    drift = alerts[("dlt", "schema_drift", DRIFT)]["event"]
    assert "currency" in json.dumps(drift["details"])

    partner = alerts[("dagster", "run", "import_partner_payments")]["event"]
    assert partner["owners"] == ["team:payments"]
    assert "FileNotFoundError" in partner["details"]["error"] and "partner_payments.csv" in partner["details"]["error"]
    assert partner["links"]["runbook"] == "https://wiki.lender.example/runbooks/partner-payments"
    assert partner["links"]["run"] == f"http://localhost:3000/runs/{partner['run_id']}"

    daily = alerts[("dagster", "run", "lender_daily")]["event"]
    assert "DagsterDbtCliRuntimeError" in daily["details"]["error"]
    assert daily["details"]["error"].count("DagsterDbtCliRuntimeError") == 1  # the class once, not re-qualified
    assert "\x1b" not in daily["details"]["error"]  # dbt's colour codes would show as boxes on the card

    # The card built from it says what broke, since when, who owns it, what to do, with the run link.
    card = json.dumps(build_card(Notification.from_dict(alerts[("dagster", "run", "import_partner_payments")])))
    for text in ("import_partner_payments", "FileNotFoundError", "team:payments", "Failing since", partner["links"]["run"], "re-execute"):
        assert text in card, text


def test_broken_phase_fills_vw_recent_failures_with_each_failing_entity(demo_run):
    result, _ = demo_run
    columns, rows = result.phases["broken"].recent_failures
    failing = {dict(zip(columns, row))["entity"]: dict(zip(columns, row)) for row in rows}
    for entity in ("lender_daily", "import_partner_payments", CRITICAL_TEST, DRIFT):
        assert entity in failing, (entity, sorted(failing))
    # one row per incident, the inhibited one too: a dbt test is not listed twice (an asset that
    # failed to materialize is an alert, not a row of the audit trail yet)
    checked = [a for a in members(result.phases["broken"].alerts) if a["event"]["kind"] != "materialization"]
    assert len(rows) == len(checked) == 5
    assert failing["import_partner_payments"]["entity_type"] == "job"
    assert "FileNotFoundError" in failing["import_partner_payments"]["last_error"]
    assert failing[CRITICAL_TEST]["entity_type"] == "dbt_test"
    assert failing[CRITICAL_TEST]["severity"] == "CRITICAL"  # the alert's severity (the check itself is ERROR)


def test_fix_announces_each_recovery_once_and_empties_the_view(demo_run):
    result, _ = demo_run
    recovered = result.phases["recovered"]
    assert recovered.runs == {"lender_daily": True, "import_partner_payments": True}
    assert [a["transition"] for a in recovered.alerts] == ["recovered"] * 2  # grouped like the failures
    assert [a["transition"] for a in members(recovered.alerts)] == ["recovered"] * 4
    # every incident someone heard of recovers, once; the inhibited one, never announced, recovers silently
    heard = {a["incident"]["incident_id"] for a in members(result.phases["broken"].alerts, affected=False)}
    assert {a["incident"]["incident_id"] for a in members(recovered.alerts)} == heard
    assert recovered.recent_failures[1] == []
    # the alerts file holds exactly the four messages, nothing twice
    lines = result.alerts_file.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4 and len({json.loads(line)["key"] for line in lines}) == 4


def test_audit_file_records_the_three_runs_of_each_job(demo_run):
    result, _ = demo_run
    with duckdb.connect(str(result.audit_file), read_only=True) as con:
        rows = con.execute(
            "SELECT job_name, SUM(runs), SUM(failures), ANY_VALUE(last_status) FROM dagster_audit.vw_run_summary GROUP BY job_name ORDER BY job_name"
        ).fetchall()
        notifications = con.execute("SELECT COUNT(*) FROM dagster_audit.alert_notifications").fetchone()[0]
    assert rows == [("import_partner_payments", 3, 1, "SUCCESS"), ("lender_daily", 3, 1, "SUCCESS")]
    assert notifications >= 10  # every decision and delivery (a grouped message: a row per member)


def test_demo_prints_progress_and_where_everything_is(demo_run):
    result, printed = demo_run
    text = "\n".join(printed)
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert step in text
    assert "CRITICAL new" in text and "RECOVERED" in text
    assert "vw_recent_failures: empty" in text.split("[4/5]", 1)[1]
    for path in (result.alerts_file, result.audit_file, result.log_file, result.phases["broken"].preview.html):
        assert str(path) in text and path.exists()
    # Dagster's and dbt's own output went to the log file, not the terminal
    assert "RUN_START" not in text and "RUN_START" in result.log_file.read_text(encoding="utf-8")


@pytest.mark.chromium
def test_card_previews_render_every_card(demo_run):
    from ..test_card_render import require_renderer

    require_renderer()
    result, _ = demo_run
    for name in ("broken", "recovered"):
        preview = result.phases[name].preview
        assert preview.png is not None, preview.note
        assert preview.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert preview.rendered == 2  # the renderer drew every card of the phase


def test_a_configured_teams_receiver_gets_the_same_four_cards(demo_run, demo_teams):
    from ..transports.test_teams import card_of, facts

    result, printed = demo_run
    assert demo_teams.violations == []
    cards = [card_of(r) for r in demo_teams.accepted]
    badges = [c["body"][0]["items"][0]["text"] for c in cards]
    assert len(cards) == 4 and sum(b.endswith(" · NEW") for b in badges) == 2 and badges.count("RECOVERED") == 2, badges
    assert all("Failing since" in facts(c) or "Recovered at" in facts(c) for c in cards)
    entities = {c["body"][-1]["text"].split(" · ")[0].split(":", 2)[-1] for c in cards}  # "Fingerprint src:kind:entity · incident"
    assert entities == {"import_partner_payments", CRITICAL_TEST}, entities
    grouped = json.dumps(cards[0] if "3 alerts in this message" in json.dumps(cards[0]) else cards[1]).replace("\\u200b", "")
    for text in ("3 alerts in this message", "lender_daily", DRIFT, "Also affected (3, downstream in the same run)", WARN_TEST_PREFIX):
        assert text in grouped, text
    # the webhook's signature never reaches what the demo prints or writes
    secret = demo_teams.webhook_url.split("sig=")[1]
    assert secret not in "\n".join(printed)
    assert secret not in result.alerts_file.read_text(encoding="utf-8")
    assert secret not in result.log_file.read_text(encoding="utf-8")
    for stored in (result.audit_file, result.audit_file.with_name("alert_state.db"), *result.previews_dir.iterdir()):
        assert secret.encode() not in stored.read_bytes(), stored


def test_the_process_environment_is_restored(demo_run):
    import os

    result, _ = demo_run
    assert os.environ.get("DAGSTER_HOME") != str(result.home)
    assert "DM_DBT_DUCKDB_PATH" not in os.environ  # the example sets it for dbt while it runs


def test_a_second_run_on_the_same_home_tells_the_same_story(demo_run, tmp_path):
    import shutil

    from ..transports.test_teams import FakeTeamsWorkflow
    from .conftest import run_demo_in

    first, _ = demo_run
    home = tmp_path / "home"
    shutil.copytree(first.home, home)  # the demo's own home after a full run (a copy: other tests read the first)
    with FakeTeamsWorkflow() as teams:
        second, _ = run_demo_in(home, first.home.parent / "monitoring.yaml", teams)
    assert len(teams.accepted) == 4
    assert [a["transition"] for a in second.phases["broken"].alerts] == ["new"] * 2
    assert set(by_entity(second.phases["broken"].alerts)) == set(by_entity(first.phases["broken"].alerts))
    assert [a["transition"] for a in second.phases["recovered"].alerts] == ["recovered"] * 2
    assert second.phases["green"].alerts == [] and second.phases["recovered"].recent_failures[1] == []
    assert len(second.alerts_file.read_text(encoding="utf-8").splitlines()) == 4  # started over
