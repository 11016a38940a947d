"""The digest as a real Dagster schedule evaluation plus the job it targets, against the real
local SMTP server (aiosmtpd) and a local Teams webhook: one mail and one card per slot however
often the slot's run is executed; nothing when nothing fails (unless asked); a failed channel
is sent by the retry; invalid digest config fails at load naming the field."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dagster_monitoring import build_monitoring_defs
from dagster_monitoring.alerting.config import ConfigError
from dagster_monitoring.audit.config import AuditConfig
from dagster_monitoring.audit.trail import AuditTrail
from dagster_monitoring.config import config_from_dict

from ..helpers.http_server import LocalHTTPServer, Response
from ..helpers.smtp_server import SmtpServer, free_port

SLOT = datetime(2026, 12, 2, 14, 0, tzinfo=timezone.utc)
JOB = "dagster_monitoring_digest"


def settings(tmp_path: Path, audit_file: Path, smtp_port: int, teams_url: str | None, **digest: Any) -> dict[str, Any]:
    receivers: list[dict[str, Any]] = [
        {
            "name": "oncall-email",
            "type": "email",
            "host": "127.0.0.1",
            "port": smtp_port,
            "security": "none",
            "from": "alerts@example.test",
            "to": ["oncall@example.test"],
            "timeout": "3s",
        }
    ]
    if teams_url:
        receivers.append({"name": "teams-oncall", "type": "teams", "webhook_url": teams_url})
    return {
        "receivers": receivers,
        "state": {"path": str(tmp_path / "state.db")},
        "audit": {"duckdb_path": str(audit_file), "spool_dir": str(tmp_path / "spool")},
        "digest": {
            "email": {"receiver": "oncall-email", "to": ["lead@example.test", "oncall@example.test"]},
            **({"teams": {"receiver": "teams-oncall"}} if teams_url else {}),
            **digest,
        },
    }


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, slot: datetime) -> dg.ExecuteInProcessResult:
    """What the daemon does for one tick: evaluate the schedule, then run the job it asks for."""
    schedule = defs.resolve_schedule_def(f"{JOB}_schedule")
    data = schedule.evaluate_tick(dg.build_schedule_context(instance=instance, scheduled_execution_time=slot))
    (request,) = data.run_requests or []
    assert request.run_key == slot.isoformat() and request.tags["dagster_monitoring/digest_slot"] == slot.isoformat()
    return defs.resolve_job_def(JOB).execute_in_process(
        run_config=request.run_config, tags=request.tags, instance=instance, raise_on_error=False
    )


def parts(mail) -> tuple[str, str]:
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    return text, html


def test_one_mail_and_one_card_per_slot(story_trail, tmp_path):
    with SmtpServer("none") as smtp, LocalHTTPServer(default=Response(202)) as teams, dg.instance_for_test() as instance:
        defs = build_monitoring_defs(config_from_dict(settings(tmp_path, story_trail.sink.path, smtp.port, teams.url("/hook"))))
        schedule = defs.resolve_schedule_def(f"{JOB}_schedule")
        assert schedule.cron_schedule == "0 6,10,14,18 * * *" and schedule.default_status == dg.DefaultScheduleStatus.RUNNING
        for _ in range(3):  # the tick, a retried tick, a re-executed run: one slot
            assert tick(defs, instance, SLOT).success
        assert len(smtp.received) == 1
        assert len(teams.settled()) == 1
        (mail,) = smtp.messages()
        assert mail["Subject"] == (
            "[dagster-monitoring] Dagster on-call digest: 3 failing (1 critical, 1 error, 1 warn) — 2026-12-02 14:00 UTC"
        )
        assert sorted(smtp.received[0].rcpt_tos) == ["lead@example.test", "oncall@example.test"]
        text, html = parts(mail)
        assert "[CRITICAL] dbt_test unique_fct_loans_loan_id — owners: team:data-eng" in text and "ticket DM-42" in text
        assert html.count('class="hm"') == 27 and "&lt;script&gt;" in html and "<script>" not in html
        card = teams.settled()[0].json["attachments"][0]["content"]
        texts = [b.get("text", "") for b in card["body"][0]["items"] + card["body"][2:]]
        assert texts[:2] == ["DIGEST · 2026-12-02 14:00 UTC", "Dagster on-call digest: 3 failing (1 critical, 1 error, 1 warn)"]
        assert texts[2:5] == [
            "CRITICAL · unique_fct_loans_loan_id (dbt_test) · team:data-eng",
            "ERROR · ingest_loans (job) · team:data-eng",
            "WARN · loans/fct_loans:row_count_ok (asset_check) · team:credit",
        ]
        assert card["body"][0]["style"] == "attention" and card["version"] == "1.5"
        facts = {f["title"]: f["value"] for f in card["body"][1]["facts"]}
        assert facts["Critical"] == "1" and facts["Tickets"] == "DM-42" and facts["Regressing jobs"] == "ingest_loans"
        assert [a["url"] for a in card["actions"]] == ["http://dagster.example.test/runs/il-0-2", "http://dagster.example.test/runs/ck-0"]

        assert tick(defs, instance, SLOT + timedelta(hours=4)).success  # the next slot is a new digest
        assert len(smtp.received) == 2 and len(teams.settled()) == 2


def empty_trail(tmp_path: Path) -> Path:
    trail = AuditTrail.from_config(AuditConfig(duckdb_path=str(tmp_path / "empty.duckdb"), spool_dir=str(tmp_path / "s")))
    trail.sink.init()
    return trail.sink.path


def test_nothing_failing_is_not_sent_unless_asked(tmp_path):
    audit = empty_trail(tmp_path)
    with SmtpServer("none") as smtp, dg.instance_for_test() as instance:
        quiet = build_monitoring_defs(config_from_dict(settings(tmp_path / "a", audit, smtp.port, None)))
        result = tick(quiet, instance, SLOT)
        assert result.success and smtp.received == []
        logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
        assert any("email skipped (nothing failing (send_when_empty: false))" in m for m in logs)
        loud = build_monitoring_defs(config_from_dict(settings(tmp_path / "b", audit, smtp.port, None, send_when_empty=True)))
        assert tick(loud, instance, SLOT).success
        (mail,) = smtp.messages()
        assert "nothing failing" in mail["Subject"] and "Nothing is failing." in parts(mail)[0]


def test_a_failed_send_fails_the_run_and_the_retry_sends_it_once(story_trail, tmp_path):
    port = free_port()  # nothing listens yet: the relay is down
    with dg.instance_for_test() as instance:
        defs = build_monitoring_defs(config_from_dict(settings(tmp_path, story_trail.sink.path, port, None)))
        down = tick(defs, instance, SLOT)
        assert not down.success
        with SmtpServer("none", port=port) as smtp:
            assert tick(defs, instance, SLOT).success
            assert tick(defs, instance, SLOT).success
            assert len(smtp.received) == 1


def test_inline_smtp_server(story_trail, tmp_path):
    with SmtpServer("none") as smtp, dg.instance_for_test() as instance:
        data = settings(tmp_path, story_trail.sink.path, smtp.port, None)
        data["receivers"] = []
        data["digest"]["email"] = {
            "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "none", "from": "digest@example.test"},
            "to": ["lead@example.test"],
        }
        assert tick(build_monitoring_defs(config_from_dict(data)), instance, SLOT).success
        (mail,) = smtp.messages()
        assert mail["From"] == "digest@example.test" and mail["To"] == "lead@example.test"


@pytest.mark.parametrize(
    ("digest", "message"),
    [
        ({"email": {"receiver": "nope"}}, "digest.email.receiver: unknown receiver 'nope' (known: ['oncall-email'])"),
        ({"teams": {"receiver": "oncall-email"}}, "digest.teams.receiver: receiver 'oncall-email' is of type email, not teams"),
        ({"email": {"receiver": "oncall-email"}, "schedule": "every day"}, "digest.schedule: not a valid cron expression: 'every day'"),
        ({"email": {"receiver": "oncall-email"}, "timezone": "Mars/Olympus"}, "digest.timezone: unknown time zone 'Mars/Olympus'"),
        ({"email": {"receiver": "oncall-email"}, "min_severity": "INFO"}, "digest.min_severity:"),
        ({}, "digest: give email, teams or both"),
        ({"email": {"receiver": "oncall-email", "smtp": {"host": "h", "from": "a@b"}}}, "digest.email: give either receiver"),
        ({"email": {"receiver": "oncall-email"}, "sned_when_empty": True}, "digest.sned_when_empty"),
    ],
)
def test_invalid_digest_config_fails_at_load_naming_the_field(tmp_path, digest, message):
    data = settings(tmp_path, tmp_path / "a.duckdb", 25, None)
    data["digest"] = digest
    with pytest.raises(ConfigError) as err:
        config_from_dict(data)
    assert message in str(err.value)


def test_the_summary_card_is_a_valid_adaptive_card(story_trail):
    from dagster_monitoring.report import fetch_report
    from dagster_monitoring.report.digest import build_digest_card

    from ..test_card_schema import assert_valid_card

    card = build_digest_card(fetch_report(story_trail.sink), "Dagster on-call digest", SLOT)
    assert_valid_card(card)
