"""Bad config fails at load time, naming the field; secrets only from the environment."""

from __future__ import annotations

import textwrap

import pytest

from dagster_monitoring.alerting import ConfigError
from dagster_monitoring.config import MonitoringConfig, config_from_dict, load_config


def write(tmp_path, text):
    path = tmp_path / "monitoring.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path, text):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return info.value.problems


def test_example_configs_load(monkeypatch):
    monkeypatch.setenv("TEAMS_WEBHOOK_URL", "https://prod-00.westeurope.logic.azure.com/workflows/abc?sig=s3cr3tsig")
    monkeypatch.setenv("SMTP_PASSWORD", "hunter2-password")
    monkeypatch.setenv("MONITORING_STATE_URL", "postgresql+psycopg://dagster:pw@db/dagster")
    config = load_config("examples/monitoring.example.yaml")
    assert [r.type for r in config.receivers] == ["teams", "email", "file"]
    assert config.receivers[0].webhook_url.get_secret_value().endswith("sig=s3cr3tsig")
    assert "s3cr3tsig" not in repr(config) and "hunter2" not in repr(config)
    assert config.policy.repeat_interval.total_seconds() == 4 * 3600
    assert config.digest is not None and config.digest.email.receiver == "oncall-email" and config.digest.teams.receiver == "teams-data-eng"
    assert isinstance(load_config("examples/monitoring.local.yaml"), MonitoringConfig)


def test_example_ticket_blocks_are_valid_when_uncommented(tmp_path, monkeypatch):
    for name, value in {"TEAMS_WEBHOOK_URL": "https://x.logic.azure.com/workflows/abc?sig=s3cr3tsig",
                        "SMTP_PASSWORD": "hunter2-password", "MONITORING_STATE_URL": "sqlite:///x.db",
                        "JIRA_API_TOKEN": "jira-token-123", "SERVICENOW_PASSWORD": "sn-password-123"}.items():
        monkeypatch.setenv(name, value)
    lines, inside = [], False
    for line in open("examples/monitoring.example.yaml", encoding="utf-8").read().splitlines():
        marker = line.strip()
        inside = marker.startswith("# >>> tickets") or (inside and not marker.startswith("# <<< tickets"))
        if inside and not marker.startswith("# >>>"):
            line = line.replace("# ", "", 1)
        lines.append(line)
    config = load_config(write(tmp_path, "\n".join(lines)))

    assert [r.type for r in config.receivers] == ["teams", "email", "file", "jira", "servicenow"]
    jira = config.receiver("jira-data")
    assert jira.api_token.get_secret_value() == "jira-token-123" and jira.close_transition == "Done"
    assert [(r.min_severity.value, r.min_failures, r.receivers) for r in config.routes[:2]] == [
        ("critical", 1, ("jira-data",)), ("warn", 3, ("jira-data",))]
    assert config.owners["team:platform"] == ("servicenow-ops",)


def test_unknown_key_is_named(tmp_path):
    assert problems(tmp_path, """
        receivers:
          - {name: f, type: file, path: x.jsonl, colour: red}
        polcy: {}
    """) == ["receivers[0].colour: unknown key", "polcy: unknown key"]


def test_bad_values_are_named(tmp_path):
    found = problems(tmp_path, """
        receivers:
          - {name: "bad name!", type: file}
          - {name: mail, type: email, host: smtp, from: a@b, to: []}
        routes:
          - {receivers: [f], min_severity: urgent}
        policy: {repeat_interval: soon}
    """)
    assert any(p.startswith("receivers[0].name:") for p in found)
    assert any(p.startswith("receivers[1].to:") for p in found)
    assert any(p.startswith("routes[0].min_severity:") and "unknown severity 'urgent'" in p for p in found)
    assert any(p.startswith("policy.repeat_interval:") and "invalid duration 'soon'" in p for p in found)


def test_unknown_receiver_type_is_named(tmp_path):
    found = problems(tmp_path, "receivers: [{name: x, type: pager}]")
    assert len(found) == 1 and found[0].startswith("receivers[0]") and "'teams', 'email', 'webhook', 'file'" in found[0]


def test_cross_references_are_checked_all_at_once(tmp_path):
    found = problems(tmp_path, """
        receivers:
          - {name: f, type: file}
          - {name: f, type: file}
        routes:
          - {receivers: [teams]}
        owners: {"team:x": [mail]}
        default_receivers: [nope]
    """)
    assert "receivers: duplicate receiver name 'f'" in found
    assert any(p.startswith("routes[0].receivers: unknown receiver 'teams'") for p in found)
    assert any(p.startswith("owners['team:x']: unknown receiver 'mail'") for p in found)
    assert any(p.startswith("default_receivers: unknown receiver 'nope'") for p in found)


def test_secret_from_missing_env_var_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("NOT_SET_WEBHOOK", raising=False)
    assert problems(tmp_path, """
        receivers:
          - {name: t, type: teams, webhook_url: {env: NOT_SET_WEBHOOK}}
    """) == ["receivers[0].webhook_url: environment variable NOT_SET_WEBHOOK is not set (or empty)"]


def test_literal_secret_in_a_file_is_refused_without_echoing_it(tmp_path):
    path = write(tmp_path, """
        receivers:
          - {name: t, type: teams, webhook_url: "https://x.logic.azure.com/workflows/1?sig=literal-secret-value"}
    """)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == ["receivers[0].webhook_url: secrets must not be written into the config file; use {env: VARIABLE_NAME}"]
    assert "literal-secret-value" not in str(info.value)


def test_python_callers_may_pass_secrets_directly():
    config = config_from_dict({"receivers": [{"name": "t", "type": "teams", "webhook_url": "https://h/x?sig=abcdefgh"}]})
    assert config.receivers[0].webhook_url.get_secret_value() == "https://h/x?sig=abcdefgh"


def test_wrong_types_and_shapes(tmp_path):
    assert problems(tmp_path, "- just a list") == ["the top level must be a mapping of keys"]
    assert problems(tmp_path, "receivers: [{name: x, type: file}]\n  bad: [") [0].startswith("not valid YAML")
    assert problems(tmp_path, "dagster_base_url: dagster.local") == ["dagster_base_url: must start with http:// or https://"]


def test_email_login_needs_both_fields(tmp_path, monkeypatch):
    monkeypatch.setenv("P", "pw-123456")
    found = problems(tmp_path, """
        receivers:
          - {name: m, type: email, host: smtp, from: a@b.c, to: [x@y.z], password: {env: P}}
    """)
    assert found == ["receivers[0]: give both username and password, or neither"]


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.yaml")
