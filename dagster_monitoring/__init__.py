"""dagster-monitoring: stateful alerts, an audit trail and data-quality checks for Dagster."""

__version__ = "0.1.0"
