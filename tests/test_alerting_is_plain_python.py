"""The alert core, the external sources and `serve` must work where Dagster is not installed (e.g. next to Elementary's CLI)."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster_monitoring.alerting as alerting
import dagster_monitoring.serve as serve
import dagster_monitoring.sources as sources

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoDagster(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            root = name.split(".")[0]
            if root == "dagster" or (root.startswith("dagster_") and root != "dagster_monitoring"):
                raise ImportError(f"blocked for this test: {name}")
            return None

    sys.meta_path.insert(0, NoDagster())
    for mod in [m for m in sys.modules if m == "dagster" or m.startswith("dagster.")]:
        del sys.modules[mod]
    """
)


def test_alert_core_imports_and_routes_with_dagster_unavailable(tmp_path):
    script = BLOCKER + textwrap.dedent(
        f"""
        try:
            import dagster
        except ImportError:
            pass
        else:
            raise SystemExit("blocker did not work")

        from datetime import datetime, timezone
        import dagster_monitoring.alerting as a
        from dagster_monitoring.alerting.transports import teams, email, webhook, file  # every transport
        from dagster_monitoring.sources import fivetran, dbt_cloud, settle, webhooks, ingest, aws  # external sources
        from dagster_monitoring.sources import aws_lambda  # the Lambda handler: router, audit trail, no Dagster
        import dagster_monitoring.serve  # the webhook receiver

        cfg = a.AlertingConfig.model_validate({{
            "receivers": [{{"type": "file", "name": "f", "path": r"{tmp_path / "out.jsonl"}"}}],
            "routes": [{{"receivers": ["f"]}}],
            "state": {{"path": r"{tmp_path / "state.db"}"}},
        }})
        router = a.AlertRouter(cfg)
        event = a.AlertEvent(source="x", kind="run", entity="j", status="failing", severity="error",
                             occurred_at=datetime.now(timezone.utc))
        result = router.process([event])
        assert [d.status for d in result.deliveries] == ["delivered"], result
        loaded = sorted(m for m in sys.modules if m == "dagster" or m.startswith(("dagster.", "dagster_")))
        assert all(m.startswith("dagster_monitoring") for m in loaded), loaded
        print("OK")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OK"


def test_no_module_of_the_core_imports_dagster():
    roots = [Path(alerting.__file__).parent, Path(sources.__file__).parent]
    offenders = []
    for path in [p for root in roots for p in root.rglob("*.py")] + [Path(serve.__file__), Path(serve.__file__).with_name("pipeline.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "dagster" or n.startswith("dagster_")]
    assert offenders == []
