"""The lender's Dagster project, written the way a user writes theirs, plus one merge.

    raw/loans, raw/repayments   dlt, from the landing folder's CSV extracts (+ row-count and
                                schema-drift checks)
    stg_*, fct_*                dbt models on top (@dbt_assets; tests tagged ``critical`` are
                                blocking ERROR checks, the others WARN)
    freshness                   on raw/loans and fct_loan_balances
    lender_daily                the asset job (dlt, then dbt), scheduled daily
    import_partner_payments     a plain op job: reads the partner's daily file

and ``build_monitoring_defs`` merged in: the alert, audit and watchdog sensors and the ``audit``
resource. The monitoring config comes from ``$DAGSTER_MONITORING_CONFIG`` when set (your Teams /
e-mail receivers), else a local one that appends alerts to ``<home>/alerts.jsonl``.
"""

import csv
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import dlt
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets
from dagster_dbt.dbt_project import using_dagster_dev
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from ..audit.resource import AuditResource
from ..checks.dbt import MonitoringDbtTranslator, monitor_dbt_events
from ..checks.dlt import audit_dlt_load, build_dlt_checks
from ..checks.freshness import build_freshness_checks
from ..definitions import ConfigSource, build_monitoring_defs
from .loader import lender_raw
from .settings import PARTNER_FILE, WAREHOUSE_ENV, ExampleSettings

DATA_ENG = "team:data-eng"
PAYMENTS = "team:payments"
RUNBOOK_TAG = "dagster-monitoring/runbook"
RUNBOOKS = "https://wiki.lender.example/runbooks"  # stand-in: where your team keeps its runbooks


class LenderDltTranslator(DagsterDltTranslator):
    """Raw tables keyed ``raw/<table>``: the keys dagster-dbt gives the dbt sources, so the
    lineage runs dlt -> dbt without any mapping."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        return spec.replace_attributes(
            key=dg.AssetKey(["raw", data.resource.name]),
            deps=[],
            group_name="raw",
            owners=[DATA_ENG],
            tags={**spec.tags, "domain": "lending", "layer": "raw"},
        )


def example_monitoring_config(settings: ExampleSettings) -> dict[str, Any]:
    """No cloud, no secrets: every alert is appended to a JSON-lines file in the example home;
    alert state and the DuckDB audit trail in their defaults under ``$DAGSTER_HOME/dagster_monitoring``."""
    return {
        "dagster_base_url": "http://localhost:3000",
        "receivers": [{"name": "local-file", "type": "file", "path": str(settings.alerts_file)}],
        "routes": [{"receivers": ["local-file"]}],
    }


def dbt_executable() -> str:
    """The ``dbt`` installed next to this Python (the one with dbt-duckdb, even in a venv used
    without activating it), else ``dbt`` on PATH."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else shutil.which("dbt") or "dbt"


def _manifest_is_stale(project: DbtProject) -> bool:
    """No manifest yet, or a project file changed after it was written (an upgrade, an edit)."""
    if not project.manifest_path.exists():
        return True
    written = project.manifest_path.stat().st_mtime
    root = Path(project.project_dir)
    sources = (
        p
        for p in root.rglob("*")
        if p.suffix in {".sql", ".yml", ".yaml", ".csv"} and not {"target", "logs", "dbt_packages"} & set(p.relative_to(root).parts)
    )
    return any(p.stat().st_mtime > written for p in sources)


def dbt_project(settings: ExampleSettings) -> DbtProject:
    """The shipped dbt project, with its target folder (manifest, run results, logs) in the home.
    The manifest is parsed when missing or older than the project's files, and on every code load
    under ``dagster dev`` (what ``DbtProject.prepare_if_dev`` does, with the dbt found by
    :func:`dbt_executable`)."""
    os.environ[WAREHOUSE_ENV] = str(settings.warehouse)  # profiles.yml reads it; dbt runs in a subprocess
    project = DbtProject(project_dir=settings.dbt_project_dir, target_path=settings.dbt_target)
    if using_dagster_dev() or _manifest_is_stale(project):
        cli = DbtCliResource(project_dir=project, dbt_executable=dbt_executable())
        cli.cli(["parse", "--quiet"], target_path=project.target_path).wait()
    return project


def build_example_defs(settings: ExampleSettings | None = None, monitoring: ConfigSource | None = None) -> dg.Definitions:
    """The project's definitions merged with the monitoring's. ``monitoring`` is a config (path,
    mapping or model); by default ``$DAGSTER_MONITORING_CONFIG``, else :func:`example_monitoring_config`."""
    settings = (settings or ExampleSettings.from_env()).prepare()
    landing = str(settings.landing_dir)
    pipeline = dlt.pipeline(
        pipeline_name="lender_raw",
        destination=dlt.destinations.duckdb(str(settings.warehouse)),
        dataset_name="raw",
        pipelines_dir=str(settings.dlt_dir),
    )

    @dlt_assets(dlt_source=lender_raw(landing), dlt_pipeline=pipeline, name="lender_raw", dagster_dlt_translator=LenderDltTranslator())
    def lender_raw_assets(context: dg.AssetExecutionContext, dlt: DagsterDltResource, audit: AuditResource) -> Iterator[Any]:
        yield from dlt.run(context=context, dlt_source=lender_raw(landing))  # a fresh source per run
        audit_dlt_load(audit, pipeline, run_id=context.run.run_id, log=context.log)

    project = dbt_project(settings)

    @dbt_assets(manifest=project.manifest_path, project=project, dagster_dbt_translator=MonitoringDbtTranslator())
    def lender_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource, audit: AuditResource) -> Iterator[Any]:
        # bootstrap_raw off: the raw layer is dlt's, never dbt's
        # target_path: run artefacts in the example home, never in the (maybe installed) dbt project
        invocation = dbt.cli(
            ["build", "--vars", json.dumps({"bootstrap_raw": False})],
            context=context,
            target_path=settings.dbt_target / context.run.run_id,
        )
        yield from monitor_dbt_events(invocation.stream(), context=context, audit=audit)

    @dg.op(description="Read the partner's daily payments file from the landing folder.")
    def read_partner_file(context: dg.OpExecutionContext) -> int:
        path = settings.landing_dir / PARTNER_FILE
        if not path.exists():
            raise FileNotFoundError(
                f"partner payments file {PARTNER_FILE} has not arrived in the landing folder; "
                "ask the partner to resend it, then re-run import_partner_payments"
            )
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        context.log.info("read %d partner payment(s)", len(rows))
        return len(rows)

    @dg.job(
        description="Imports the payments a partner collected on the lender's behalf (a plain op job).",
        tags={"team": PAYMENTS, RUNBOOK_TAG: f"{RUNBOOKS}/partner-payments"},
    )
    def import_partner_payments() -> None:
        read_partner_file()

    lender_daily = dg.define_asset_job(
        "lender_daily",
        selection=dg.AssetSelection.assets(lender_raw_assets, lender_dbt),
        description="Load the loan book (dlt), then build staging and marts (dbt) with their tests.",
        tags={"team": DATA_ENG, RUNBOOK_TAG: f"{RUNBOOKS}/lender-daily"},
    )
    project_defs = dg.Definitions(
        assets=[lender_raw_assets, lender_dbt],
        asset_checks=build_dlt_checks(lender_raw_assets, min_rows={"raw/loans": 10, "raw/repayments": 100}, max_drop=0.5),
        jobs=[lender_daily, import_partner_payments],
        schedules=[
            dg.ScheduleDefinition(job=lender_daily, cron_schedule="0 6 * * *"),
            dg.ScheduleDefinition(job=import_partner_payments, cron_schedule="30 6 * * *"),
        ],
        resources={"dbt": DbtCliResource(project_dir=project, dbt_executable=dbt_executable()), "dlt": DagsterDltResource()},
    )
    freshness = build_freshness_checks(
        [dg.AssetKey(["raw", "loans"]), dg.AssetKey("fct_loan_balances")],
        warn_after="26h",
        fail_after="30h",
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
    config = (
        monitoring
        if monitoring is not None
        else (None if os.environ.get("DAGSTER_MONITORING_CONFIG") else example_monitoring_config(settings))
    )
    return dg.Definitions.merge(project_defs, freshness, build_monitoring_defs(config))
