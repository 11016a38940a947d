"""docs/configuration.md is what the config models say: generated, never hand-edited."""

from pathlib import Path

from click.testing import CliRunner

from dagster_monitoring.cli import main
from dagster_monitoring.config import MonitoringConfig
from dagster_monitoring.config_reference import config_reference

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_committed_reference_matches_the_models():
    assert DOC.read_text(encoding="utf-8") == config_reference(), (
        "docs/configuration.md is stale: dagster-monitoring config-reference > docs/configuration.md"
    )


def test_every_top_level_key_and_receiver_type_is_documented():
    text = config_reference()
    for key in MonitoringConfig.model_fields:
        assert f"| `{key}` |" in text, key
    for kind in ("teams", "email", "webhook", "file", "jira", "servicenow"):
        assert f"## `receivers[]` with `type: {kind}`" in text
    assert "| `flap_window` | duration | `15m` |" in text
    assert "| `webhook_url` | secret `{env: NAME}` | *required* |" in text


def test_cli_prints_it():
    result = CliRunner().invoke(main, ["config-reference"])
    assert result.exit_code == 0 and result.output == config_reference()
