"""AuditResource inside a real Dagster materialization, and the audit CLI."""


from datetime import datetime, timezone

import dagster as dg
from click.testing import CliRunner

from dagster_monitoring.audit.records import AssetMaterializationRecord
from dagster_monitoring.audit.resource import AuditResource
from dagster_monitoring.cli import main

from . import timeline as tl


def test_resource_writes_from_a_real_asset_and_env_var_secrets_resolve(tmp_path, monkeypatch):
    monkeypatch.setenv("DM_AUDIT_PATH", str(tmp_path / "audit.duckdb"))

    @dg.asset
    def loans(context: dg.AssetExecutionContext, audit: AuditResource) -> None:
        record = AssetMaterializationRecord.build(
            event_ts=datetime.now(timezone.utc), run_id=context.run.run_id, asset_key="loans", row_count=42, metadata={"source": "test"}
        )
        result = audit.get_trail().write([record])
        assert result.inserted == 1

    resource = AuditResource(duckdb_path=dg.EnvVar("DM_AUDIT_PATH"), spool_dir=str(tmp_path / "spool"))
    assert dg.materialize([loans], resources={"audit": resource}, instance=dg.DagsterInstance.ephemeral()).success
    trail = AuditResource(duckdb_path=str(tmp_path / "audit.duckdb")).get_trail()
    assert trail.sink.query("SELECT asset_key, row_count FROM dagster_audit.asset_materializations")[1] == [("loans", 42)]


def test_cli_init_and_query(tmp_path):
    config = tmp_path / "m.yaml"
    config.write_text(f"audit:\n  duckdb_path: {tmp_path / 'a.duckdb'}\n  spool_dir: {tmp_path / 'spool'}\n")
    runner = CliRunner()
    result = runner.invoke(main, ["audit", "init", "--config", str(config)])
    assert result.exit_code == 0 and "6 tables, 7 views" in result.output

    trail = AuditResource(duckdb_path=str(tmp_path / "a.duckdb")).get_trail()
    trail.write(tl.before_recovery())
    result = runner.invoke(main, ["audit", "query", "vw_recent_failures", "--config", str(config), "--limit", "10"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["entity_type", "entity", "severity"]
    assert any(line.startswith("job") and "loans_daily" in line and "negative principal on loan 1187" in line for line in lines)
    assert lines[-1] == "(4 rows)"

    bad = runner.invoke(main, ["audit", "query", "vw_nope", "--config", str(config)])
    assert bad.exit_code == 2 and "known:" in bad.output


def test_bad_audit_config_is_named(tmp_path):
    config = tmp_path / "m.yaml"
    config.write_text("audit:\n  backend: duckdb\n  project: my-project\n  dataset: 'bad-name'\n")
    result = CliRunner().invoke(main, ["validate-config", str(config)])
    assert result.exit_code == 2
    assert "audit.dataset: use letters, digits and underscores" in result.output
