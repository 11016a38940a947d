"""run_duration (runs in progress past their limit): invalid values fail at load, naming the field."""

from datetime import timedelta

import pytest

from dagster_monitoring.alerting.config import ConfigError
from dagster_monitoring.config import load_config


def load(tmp_path, section):
    path = tmp_path / "monitoring.yaml"
    path.write_text(f"run_duration: {section}\n")
    return load_config(path)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("{limits: {loans_daily: 30x}}", r"run_duration.limits.loans_daily: invalid duration '30x'"),
        ("{limits: {loans_daily: 0s}}", r"run_duration.limits: every limit must be longer than 0s, not that of 'loans_daily'"),
        ("{default_limit: 0}", r"run_duration.default_limit: must be longer than 0s"),
        ("{p95_multiplier: 0.5}", r"run_duration.p95_multiplier: Input should be greater than 1"),
        ("{min_history_runs: 10, history_runs: 5}", r"run_duration: history_runs \(5\) must be at least min_history_runs \(10\)"),
        ("{severity: loud}", r"run_duration.severity: "),
        ("{max_runtime: 1h}", r"run_duration.max_runtime: "),
    ],
)
def test_invalid_values_fail_at_load_naming_the_field(tmp_path, section, message):
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, section)


def test_limits_per_job_and_glob_load_as_durations(tmp_path):
    config = load(tmp_path, "{limits: {loans_daily: 30m, 'nightly_*': 2h}, default_limit: 4h, p95_multiplier: null}").run_duration
    assert config.limits == {"loans_daily": timedelta(minutes=30), "nightly_*": timedelta(hours=2)}
    assert config.default_limit == timedelta(hours=4) and config.p95_multiplier is None
