"""``defs`` for ``dagster dev -w workspace.yaml``: the example project in ``$DM_EXAMPLE_HOME``
(default ``$DAGSTER_HOME/dagster_monitoring/example``)."""

from .project import build_example_defs

defs = build_example_defs()
