"""The CLI through click's runner and as the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from click.testing import CliRunner

from dagster_monitoring.cli import main


def local_config(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(
        f"receivers:\n  - {{name: local, type: file, path: {tmp_path / 'alerts.jsonl'}}}\n"
        f"  - {{name: teams, type: teams, webhook_url: {{env: DM_TEST_HOOK}}}}\n"
        "dagster_base_url: https://dagster.example.com\n"
    )
    return path


def test_validate_config_ok_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("DM_TEST_HOOK", "https://example.invalid/workflows/x?sig=cli-secret-123")
    ok = CliRunner().invoke(main, ["validate-config", str(local_config(tmp_path))])
    assert ok.exit_code == 0 and "2 receiver(s) (local:file, teams:teams)" in ok.output
    assert "cli-secret-123" not in ok.output

    bad = tmp_path / "bad.yaml"
    bad.write_text("receivers:\n  - {name: a, type: file, pth: x}\n")
    result = CliRunner().invoke(main, ["validate-config", str(bad)])
    assert result.exit_code == 2
    assert "receivers[0].pth: unknown key" in result.output


def test_send_test_to_file_receiver_writes_one_alert(tmp_path, monkeypatch):
    monkeypatch.setenv("DM_TEST_HOOK", "https://example.invalid/workflows/x?sig=cli-secret-123")
    result = CliRunner().invoke(main, ["send-test", "--config", str(local_config(tmp_path)), "--receiver", "local"])
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert len(lines) == 1
    sent = json.loads(lines[0])
    assert sent["transition"] == "new" and sent["severity"] == "critical"
    assert sent["event"]["links"]["run"].startswith("https://dagster.example.com/runs/")


def test_send_test_dry_run_prints_the_exact_teams_payload_and_sends_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("DM_TEST_HOOK", "http://127.0.0.1:9/workflows/x?sig=cli-secret-123")  # nothing listens there
    result = CliRunner().invoke(main, ["send-test", "--config", str(local_config(tmp_path)), "--receiver", "teams", "--dry-run"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["type"] == "message"
    assert payload["attachments"][0]["content"]["version"] == "1.5"
    assert "cli-secret-123" not in result.output


def test_send_test_failure_is_reported_without_the_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("DM_TEST_HOOK", "http://127.0.0.1:9/workflows/x?sig=cli-secret-123")
    cfg = local_config(tmp_path)
    cfg.write_text(cfg.read_text() + "delivery: {attempts_per_call: 1}\n")
    result = CliRunner().invoke(main, ["send-test", "--config", str(cfg), "--receiver", "teams"])
    assert result.exit_code == 1
    assert "teams (teams) failed after 1 attempt(s), retryable" in result.output
    assert "cli-secret-123" not in result.output and "/workflows/x" not in result.output


def test_unknown_receiver_lists_the_configured_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("DM_TEST_HOOK", "https://h/x?sig=abcdefgh")
    result = CliRunner().invoke(main, ["send-test", "--config", str(local_config(tmp_path)), "--receiver", "nope"])
    assert result.exit_code == 2 and "configured: ['local', 'teams']" in result.output


def test_console_script_is_installed():
    exe = shutil.which("dagster-monitoring") or ".venv/bin/dagster-monitoring"
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "send-test" in proc.stdout and "validate-config" in proc.stdout


def test_format_table_shows_dates_and_timestamps():
    from datetime import date, datetime, timedelta, timezone

    from dagster_monitoring.cli import format_table

    at = datetime(2026, 12, 2, 3, 4, 5, 678, tzinfo=timezone.utc)
    text = format_table(["run_date", "last_run_at"], [(date(2026, 12, 2), at)])
    assert "2026-12-02  2026-12-02 03:04:05" in text and "678" not in text and text.endswith("(1 row, times in UTC)")
    # another offset is shown in UTC; seconds=False keeps the minute
    cet = at.astimezone(timezone(timedelta(hours=1)))
    assert "2026-12-02 03:04\n" in format_table(["at"], [(cet,)], seconds=False) + "\n"


def test_format_table_fits_the_width_by_cutting_the_widest_text_column():
    from dagster_monitoring.cli import format_table

    rows = [("loans_daily", "E" * 120, "team:data-eng", 12.345, True), ("x", "short", None, 3.0, False)]
    text = format_table(["job", "error", "owners", "seconds", "ok"], rows, max_width=None, width=60, cut={"error": 10, "owners": 8})
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 60
    assert lines[2].startswith("loans_daily  EEE") and "…" in lines[2]  # the error is cut ...
    assert "team:data-eng" in lines[2] and "12.3  true" in lines[2]  # ... the others fit whole, numbers to 1 decimal
    assert lines[3].split() == ["x", "short", "3.0", "false"]
    assert lines[0].index("seconds") < lines[2].index("12.3")  # numbers are right-aligned under their header


def test_version_is_the_installed_distribution_version():
    from importlib.metadata import version

    expected = f"dagster-monitoring {version('dagster-monitoring')}"
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == expected
    exe = shutil.which("dagster-monitoring") or ".venv/bin/dagster-monitoring"
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == expected


def test_a_production_config_checks_and_dry_runs_without_its_secrets(monkeypatch):
    """The shipped production-shaped example, on a laptop where none of its variables are set."""
    from click.testing import CliRunner

    from dagster_monitoring.cli import main

    example = str(Path(__file__).resolve().parents[1] / "examples" / "monitoring.example.yaml")
    for name in ("TEAMS_WEBHOOK_URL", "SMTP_PASSWORD", "MONITORING_STATE_URL"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    plain = runner.invoke(main, ["validate-config", example])
    assert plain.exit_code == 2 and "TEAMS_WEBHOOK_URL is not set" in plain.output
    allowed = runner.invoke(main, ["validate-config", "--allow-missing-env", example])
    assert allowed.exit_code == 0, allowed.output
    assert "OK: " in allowed.output and "placeholders used: " in allowed.output and "TEAMS_WEBHOOK_URL" in allowed.output
    receiver = next(line.split("name:")[1].strip() for line in Path(example).read_text().splitlines() if "name:" in line)
    dry = runner.invoke(main, ["send-test", "--config", example, "--receiver", receiver, "--dry-run", "--allow-missing-env"])
    assert dry.exit_code == 0, dry.output
    assert "unset-TEAMS_WEBHOOK_URL" not in dry.output  # the payload, not the placeholder URL
    refused = runner.invoke(main, ["send-test", "--config", example, "--receiver", receiver, "--allow-missing-env"])
    assert refused.exit_code == 2 and "only with --dry-run" in refused.output
