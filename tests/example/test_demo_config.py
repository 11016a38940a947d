"""What the demo takes from a user's config, and where it refuses to run (no Dagster runs here)."""

import pytest

from dagster_monitoring.alerting.config import ConfigError
from dagster_monitoring.alerting.policy import receivers_for
from dagster_monitoring.config import config_from_dict
from dagster_monitoring.example.demo import DEMO_FILE_RECEIVER, DemoHomeError, demo_config, prepare_home, read_user_config
from dagster_monitoring.example.settings import ExampleSettings

from ..helpers.factories import make_event


def user_file(tmp_path, text):
    path = tmp_path / "monitoring.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_user_receivers_defaults_kept_state_audit_checks_and_url_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("DM_T_HOOK", "https://example.invalid/workflows/x?sig=abc")
    path = user_file(tmp_path, (
        "dagster_base_url: https://dagster.prod.example.com\n"
        "receivers:\n  - {name: teams, type: teams, webhook_url: {env: DM_T_HOOK}}\n"
        "default_receivers: [teams]\n"
        "audit: {backend: bigquery, project: prod}\n"
        "state: {path: /var/lib/prod_state.db}\n"
        "checks: {freshness: [{assets: [my/asset], warn_after: 1h, fail_after: 2h}]}\n"
    ))
    config = config_from_dict(demo_config(ExampleSettings(tmp_path / "example"), read_user_config(path)))
    assert config.dagster_base_url == "http://localhost:3000"  # demo run ids exist only locally
    assert config.audit.backend == "duckdb" and config.state.path is None and config.checks.freshness == ()
    assert config.policy.flap_window.total_seconds() == 0
    receivers = receivers_for(make_event(), 1, config.routes, config.owners, config.default_receivers)
    assert receivers == [DEMO_FILE_RECEIVER, "teams"]  # the fallback still reaches the user's channel


def test_a_literal_secret_in_the_user_file_is_refused(tmp_path):
    path = user_file(tmp_path, "receivers:\n  - {name: teams, type: teams, webhook_url: 'https://x.invalid/w?sig=literal'}\n")
    with pytest.raises(ConfigError, match=r"receivers\[0\]\.webhook_url"):
        read_user_config(path)


def test_a_folder_the_demo_did_not_make_is_refused_and_its_own_is_started_over(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "dagster.yaml").write_text("run_storage: {}\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    for folder in (real, other):
        with pytest.raises(DemoHomeError, match="not made by the demo"):
            prepare_home(folder)
    assert (real / "dagster.yaml").read_text() == "run_storage: {}\n" and (other / "notes.txt").exists()

    own = prepare_home(tmp_path / "own")
    (own / "history").mkdir()
    assert prepare_home(own) == own and not (own / "history").exists() and (own / "dagster.yaml").exists()
