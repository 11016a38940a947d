"""dbt tests as monitored asset checks: real `dbt build` (dbt-duckdb) through dagster-dbt.

The example project is copied once and parsed once per module; every build runs in its own copy
of that (own target/ and DuckDB file), so nothing is written into the repo's dbt_project/.
Four builds in all: clean then bad data (one warehouse, default raise_on_error), and bad data
with blocking critical checks on / off (raise_on_error=False, so only Dagster decides).
"""

import functools
import importlib.metadata
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation
from dagster_dbt import DbtCliResource, dbt_assets
from dagster_dbt.errors import DagsterDbtCliRuntimeError
from packaging import version

from dagster_monitoring.audit.records import DbtTestResultRecord
from dagster_monitoring.audit.resource import AuditResource
from dagster_monitoring.checks.dbt import (
    DBT_FAILING_ROWS_METADATA_KEY,
    DBT_COMPILED_PATH_METADATA_KEY,
    DBT_FAILURES_METADATA_KEY,
    DBT_MESSAGE_METADATA_KEY,
    MonitoringDbtTranslator,
    MonitoringDbtTranslatorSettings,
    dbt_test_records,
    monitor_dbt_events,
)
from dagster_monitoring.translator import (
    KIND_METADATA_KEY,
    NEXT_ACTION_METADATA_KEY,
    SEVERITY_METADATA_KEY,
    SOURCE_METADATA_KEY,
)

ROOT = Path(__file__).resolve().parents[2]
DBT = Path(sys.executable).parent / "dbt"

CRITICAL = {
    "not_null_stg_loans_loan_id",
    "unique_stg_loans_loan_id",
    "not_null_stg_loans_principal_amount",
    "not_null_stg_repayments_repayment_id",
    "unique_stg_repayments_repayment_id",
    "unique_fct_repayments_repayment_id",
    "not_null_fct_loan_balances_loan_id",
    "unique_fct_loan_balances_loan_id",
}
WARN_ONLY = {
    "accepted_values_stg_loans_status__active__repaid__defaulted__written_off",
    "relationships_stg_repayments_loan_id__loan_id__ref_stg_loans_",
    "not_negative_stg_repayments_amount",
    "not_negative_fct_loan_balances_outstanding_balance",
    "assert_repayment_after_disbursement",
}
CRITICAL_FAILING = "not_null_stg_loans_principal_amount"
WARN_FAILING = "accepted_values_stg_loans_status__active__repaid__defaulted__written_off"
DOWNSTREAM_SKIPPED = {
    "unique_fct_repayments_repayment_id",
    "assert_repayment_after_disbursement",
    "not_null_fct_loan_balances_loan_id",
    "unique_fct_loan_balances_loan_id",
    "not_negative_fct_loan_balances_outstanding_balance",
}
BAD_LOAN = "('L-0999', 'C-999', 'personal', NULL, 11.90, 12, DATE '2025-06-01', 'frozen')"


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _dbt_version_once() -> Any:
    """dagster-dbt runs `dbt --version` (seconds here) in every run to tell dbt Core from Fusion;
    the venv's dbt is this dbt-core, so answer from its metadata. Only the tests' speed changes."""
    if not hasattr(DbtCliResource, "_cli_version"):  # another dagster-dbt: leave it alone
        yield
        return
    known = version.parse(importlib.metadata.version("dbt-core"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DbtCliResource, "_cli_version", property(lambda self: known))
        yield


@pytest.fixture(scope="module")
def parsed_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dbt_project copied and parsed once (manifest.json + partial_parse.msgpack for every copy)."""
    project = tmp_path_factory.mktemp("dbt") / "lender"
    shutil.copytree(ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs", "*.duckdb", ".user.yml"))
    done = subprocess.run([str(DBT), "parse", "--quiet"], cwd=project, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return project


@pytest.fixture(scope="module")
def manifest(parsed_project: Path) -> dict[str, Any]:
    return json.loads((parsed_project / "target" / "manifest.json").read_text())


def copy_project(parsed_project: Path, destination: Path) -> Path:
    shutil.copytree(parsed_project, destination)
    return destination


def lender_assets(
    manifest: dict[str, Any],
    translator: MonitoringDbtTranslator,
    *,
    raise_on_error: bool = True,
    dbt_vars: dict | None = None,
    **monitor: Any,
) -> dg.AssetsDefinition:
    """What a user writes: @dbt_assets with the translator, the body wrapped in monitor_dbt_events."""

    @dbt_assets(manifest=manifest, dagster_dbt_translator=translator, required_resource_keys={"dbt", "audit"})
    def lender(context: dg.AssetExecutionContext):
        dbt: DbtCliResource = context.resources.dbt
        args = ["build", *(["--vars", json.dumps(dbt_vars)] if dbt_vars else [])]
        invocation = dbt.cli(args, context=context, raise_on_error=raise_on_error)
        yield from monitor_dbt_events(invocation.stream(), context=context, audit=context.resources.audit, **monitor)

    return lender


@dataclass
class Build:
    result: dg.ExecuteInProcessResult
    instance: dg.DagsterInstance
    project: Path

    @property
    def evaluations(self) -> dict[str, Any]:
        return {e.check_name: e for e in self.result.get_asset_check_evaluations()}

    def artifact(self, name: str) -> dict[str, Any]:
        (path,) = self.project.glob(f"target/*-{self.result.run_id[:7]}-*/{name}")
        return json.loads(path.read_text())

    def logs(self) -> list[str]:
        return [r.user_message for r in self.instance.all_logs(self.result.run_id)]


def build(assets: dg.AssetsDefinition, project: Path, audit: Any) -> Build:
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [assets],
        resources={"dbt": DbtCliResource(project_dir=str(project), dbt_executable=str(DBT)), "audit": audit},
        instance=instance,
        raise_on_error=False,
    )
    return Build(result, instance, project)


def audit_resource(tmp: Path) -> AuditResource:
    return AuditResource(duckdb_path=str(tmp / "audit.duckdb"), spool_dir=str(tmp / "spool"))


class StaticFiles:
    """A folder published over HTTP, as object storage or a docs site publishes dbt's target folder."""

    def __init__(self, folder: Path) -> None:
        handler = functools.partial(QuietFiles, directory=str(folder))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the stdlib's name)
        pass


@pytest.fixture(scope="module")
def clean_then_bad(
    parsed_project: Path, manifest: dict, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Build, Build, AuditResource]]:
    """The demo's story on one warehouse: a green build, then a bad loan lands in raw.loans.
    The target folder is published over HTTP, and the builds link their artefacts there."""
    tmp = tmp_path_factory.mktemp("clean_then_bad")
    project = copy_project(parsed_project, tmp / "lender")
    audit = audit_resource(tmp)
    published = StaticFiles(project / "target")
    assets = lender_assets(manifest, MonitoringDbtTranslator(), artifacts_url=published.url + "/{target}/")
    clean = build(assets, project, audit)
    with duckdb.connect(str(project / "target" / "lender.duckdb")) as con:
        con.execute(f"INSERT INTO raw.loans VALUES {BAD_LOAN}")
    bad = build(assets, project, audit)
    yield clean, bad, audit
    published.server.shutdown()


class BrokenAudit:
    """An audit trail that cannot be reached at all (not even its spool)."""

    def get_trail(self) -> Any:
        raise OSError("audit volume is read-only")


@pytest.fixture(scope="module")
def bad_data_blocking(parsed_project: Path, manifest: dict, tmp_path_factory: pytest.TempPathFactory) -> Build:
    tmp = tmp_path_factory.mktemp("blocking")
    assets = lender_assets(manifest, MonitoringDbtTranslator(), raise_on_error=False, dbt_vars={"inject_bad_data": True}, failing_rows=0)
    return build(assets, copy_project(parsed_project, tmp / "lender"), audit_resource(tmp))


@pytest.fixture(scope="module")
def bad_data_non_blocking(parsed_project: Path, manifest: dict, tmp_path_factory: pytest.TempPathFactory) -> Build:
    tmp = tmp_path_factory.mktemp("non_blocking")
    translator = MonitoringDbtTranslator(MonitoringDbtTranslatorSettings(block_on_critical=False))
    assets = lender_assets(manifest, translator, raise_on_error=False, dbt_vars={"inject_bad_data": True})
    return build(assets, copy_project(parsed_project, tmp / "lender"), BrokenAudit())


def text(evaluation: Any, key: str) -> Any:
    return evaluation.metadata[key].value


# -- definitions -------------------------------------------------------------------------------


def test_specs_say_critical_tests_block_as_error_and_others_warn(manifest):
    specs = {s.name: s for s in lender_assets(manifest, MonitoringDbtTranslator()).check_specs}
    assert set(specs) == CRITICAL | WARN_ONLY
    for name in CRITICAL:
        assert specs[name].blocking, name
        assert specs[name].metadata[SEVERITY_METADATA_KEY] == "critical"
    for name in WARN_ONLY:
        assert not specs[name].blocking, name
        assert specs[name].metadata[SEVERITY_METADATA_KEY] == "warn"
    assert {s.metadata[SOURCE_METADATA_KEY] for s in specs.values()} == {"dbt"}
    assert {s.metadata[KIND_METADATA_KEY] for s in specs.values()} == {"asset_check"}
    assert specs[WARN_FAILING].description == "An unknown loan status; lending ops decide how to report it."

    relaxed = MonitoringDbtTranslator(MonitoringDbtTranslatorSettings(block_on_critical=False))
    relaxed_specs = {s.name: s for s in lender_assets(manifest, relaxed).check_specs}
    assert not any(s.blocking for s in relaxed_specs.values())
    assert relaxed_specs[CRITICAL_FAILING].metadata[SEVERITY_METADATA_KEY] == "critical"


def test_asset_owners_come_from_meta_owner_and_the_dbt_group(manifest):
    specs = {s.key.path[-1]: s for s in lender_assets(manifest, MonitoringDbtTranslator()).specs}
    assert set(specs) == {"stg_loans", "stg_repayments", "fct_repayments", "fct_loan_balances"}
    assert {tuple(s.owners) for s in specs.values()} == {("team:data-eng", "data-eng@lender.example")}


def test_keeping_dagster_dbt_severity_for_non_critical_tests(manifest):
    translator = MonitoringDbtTranslator(MonitoringDbtTranslatorSettings(warn_non_critical=False))
    test = manifest["nodes"]["test.lender.assert_repayment_after_disbursement"]
    assert translator.get_check_severity(test, "fail") == dg.AssetCheckSeverity.ERROR
    assert translator.get_check_severity(test, "warn") == dg.AssetCheckSeverity.WARN
    assert translator.get_alert_severity(test) == "warn"  # its dbt severity
    assert not translator.get_check_blocking(test)


# -- run time ----------------------------------------------------------------------------------


def test_clean_data_every_check_passes_with_its_severity(clean_then_bad):
    clean, _, _ = clean_then_bad
    assert clean.result.success
    evaluations = clean.evaluations
    assert set(evaluations) == CRITICAL | WARN_ONLY
    assert all(e.passed for e in evaluations.values())
    assert {n for n, e in evaluations.items() if e.severity == dg.AssetCheckSeverity.ERROR} == CRITICAL
    assert {n for n, e in evaluations.items() if e.severity == dg.AssetCheckSeverity.WARN} == WARN_ONLY
    passed = evaluations[CRITICAL_FAILING]
    assert text(passed, SOURCE_METADATA_KEY) == "dbt" and text(passed, SEVERITY_METADATA_KEY) == "critical"
    assert text(passed, DBT_FAILURES_METADATA_KEY) == 0
    assert Path(text(passed, DBT_COMPILED_PATH_METADATA_KEY)).is_file()
    assert NEXT_ACTION_METADATA_KEY not in passed.metadata


def test_bad_data_fails_the_critical_test_as_error_and_the_warn_test_as_warn(clean_then_bad):
    _, bad, _ = clean_then_bad
    assert not bad.result.success  # dbt exits 1 on the failed error-severity test
    failure = bad.result.get_step_failure_events()[0]
    assert "DagsterDbtCliRuntimeError" in failure.event_specific_data.error.cls_name

    evaluations = bad.evaluations
    assert {n for n, e in evaluations.items() if not e.passed} == {CRITICAL_FAILING, WARN_FAILING}
    assert not set(evaluations) & DOWNSTREAM_SKIPPED  # dbt skipped the marts: no result, no guess

    critical = evaluations[CRITICAL_FAILING]
    assert critical.severity == dg.AssetCheckSeverity.ERROR and critical.blocking
    assert text(critical, SEVERITY_METADATA_KEY) == "critical"
    assert text(critical, KIND_METADATA_KEY) == "asset_check"
    assert text(critical, DBT_MESSAGE_METADATA_KEY) == "Got 1 result, configured to fail if != 0"
    assert critical.description == "Got 1 result, configured to fail if != 0"
    assert text(critical, DBT_FAILURES_METADATA_KEY) == 1
    compiled = Path(text(critical, DBT_COMPILED_PATH_METADATA_KEY))
    assert compiled.is_file() and "principal_amount is null" in compiled.read_text()
    action = text(critical, NEXT_ACTION_METADATA_KEY)
    assert action.startswith(
        "Critical dbt test not_null_stg_loans_principal_amount on stg_loans failed (1 row); the failing rows are shown."
    )
    assert str(compiled) in action and "dbt build --select stg_loans+" in action

    warn = evaluations[WARN_FAILING]
    assert warn.severity == dg.AssetCheckSeverity.WARN and not warn.blocking
    assert text(warn, DBT_MESSAGE_METADATA_KEY) == "Got 1 result, configured to warn if != 0"
    assert text(warn, SEVERITY_METADATA_KEY) == "warn"


def test_blocking_critical_check_fails_the_run_on_its_own(bad_data_blocking):
    # raise_on_error=False: dbt's exit code is ignored, so only the blocking check fails the step.
    assert not bad_data_blocking.result.success
    (failure,) = bad_data_blocking.result.get_step_failure_events()
    error = failure.event_specific_data.error
    assert error.cls_name == "DagsterAssetCheckFailedError"
    assert "1 blocking asset check failed with ERROR severity" in error.message and CRITICAL_FAILING in error.message
    warn = bad_data_blocking.evaluations[WARN_FAILING]
    assert not warn.passed and warn.severity == dg.AssetCheckSeverity.WARN


def test_non_blocking_critical_check_leaves_the_run_green_and_a_broken_audit_is_only_logged(bad_data_non_blocking):
    # The case OSS alerting misses (dagster#29896): green run, failed ERROR check.
    assert bad_data_non_blocking.result.success
    critical = bad_data_non_blocking.evaluations[CRITICAL_FAILING]
    assert not critical.passed and critical.severity == dg.AssetCheckSeverity.ERROR and not critical.blocking
    assert text(critical, SEVERITY_METADATA_KEY) == "critical"
    assert any("audit: could not write dbt test results: OSError('audit volume is read-only')" in m for m in bad_data_non_blocking.logs())


class FakeInvocation:
    """The parts of DbtCliInvocation the helper reads, over a hand-written run_results.json."""

    def __init__(self, manifest: dict[str, Any], target_path: Path) -> None:
        self.manifest = manifest
        self.target_path = target_path

    def get_artifact(self, name: str) -> dict[str, Any]:
        return json.loads((self.target_path / name).read_text())


def test_failed_results_wait_for_run_results_and_op_evaluations_are_rewritten_too(manifest, tmp_path):
    ids = {n["name"]: uid for uid, n in manifest["nodes"].items() if n["resource_type"] == "test"}
    (tmp_path / "run_results.json").write_text(
        json.dumps(
            {
                "metadata": {"invocation_id": "inv-1", "generated_at": "2025-06-30T03:00:00Z"},
                "results": [
                    {
                        "unique_id": ids[CRITICAL_FAILING],
                        "status": "fail",
                        "failures": 2,
                        "timing": [],
                        "execution_time": 0.1,
                        "message": "Got 2 results, configured to fail if != 0",
                    },
                    # `dbt build --warn-error` turns a warning into a failure; dagster-dbt would then say ERROR
                    {
                        "unique_id": ids[WARN_FAILING],
                        "status": "fail",
                        "failures": 1,
                        "timing": [],
                        "execution_time": 0.1,
                        "message": "Got 1 result, configured to fail if != 0",
                    },
                ],
            }
        )
    )

    def evaluation(name: str, passed: bool) -> AssetCheckEvaluation:  # what dagster-dbt yields in an @op
        status = "pass" if passed else "fail"
        return AssetCheckEvaluation(
            asset_key=dg.AssetKey(["stg_loans"]),
            check_name=name,
            passed=passed,
            metadata={"unique_id": ids[name], "status": status},
            severity=dg.AssetCheckSeverity.ERROR,
        )

    def dagster_dbt_stream() -> Any:
        yield evaluation(CRITICAL_FAILING, passed=False)
        yield evaluation("not_null_stg_loans_loan_id", passed=True)
        yield dg.AssetMaterialization("stg_loans")
        yield evaluation(WARN_FAILING, passed=False)
        raise DagsterDbtCliRuntimeError("dbt exited with code 1")

    audit = audit_resource(tmp_path)
    seen: list[Any] = []
    with pytest.raises(DagsterDbtCliRuntimeError, match="exited with code 1"):
        for event in monitor_dbt_events(dagster_dbt_stream(), invocation=FakeInvocation(manifest, tmp_path), audit=audit):
            seen.append(event)

    # Passed results go straight through, failed ones wait for run_results.json; the dbt error comes last.
    assert [getattr(e, "check_name", "materialization") for e in seen] == [
        "not_null_stg_loans_loan_id",
        "materialization",
        CRITICAL_FAILING,
        WARN_FAILING,
    ]
    passed, _, critical, warn = seen
    assert isinstance(critical, AssetCheckEvaluation) and passed.severity == dg.AssetCheckSeverity.ERROR
    assert critical.severity == dg.AssetCheckSeverity.ERROR and critical.description == "Got 2 results, configured to fail if != 0"
    assert text(critical, DBT_FAILURES_METADATA_KEY) == 2
    assert text(critical, DBT_COMPILED_PATH_METADATA_KEY) == str(
        tmp_path / "compiled/lender/models/staging/_staging.yml/not_null_stg_loans_principal_amount.sql"
    )
    assert warn.severity == dg.AssetCheckSeverity.WARN and text(warn, SEVERITY_METADATA_KEY) == "warn"
    assert text(warn, NEXT_ACTION_METADATA_KEY).startswith("dbt test accepted_values_stg_loans_status")
    _, rows = audit.get_trail().sink.query("SELECT test_name, status FROM dagster_audit.dbt_test_results ORDER BY 1")
    assert rows == [(WARN_FAILING, "fail"), (CRITICAL_FAILING, "fail")]  # written before the error is re-raised


def test_monitor_needs_the_invocation_for_a_plain_iterable():
    with pytest.raises(TypeError, match="needs the dbt invocation"):
        list(monitor_dbt_events(iter([])))


# -- audit records -----------------------------------------------------------------------------


def test_dbt_test_records_from_run_results_and_manifest(clean_then_bad, manifest):
    _, bad, _ = clean_then_bad
    run_results = bad.artifact("run_results.json")
    target = bad.project / "target" / "x"
    records = {
        r.test_name: r
        for r in dbt_test_records(run_results, manifest, run_id="run-1", run_url="http://dagster/runs/run-1", target_path=target)
    }

    assert set(records) == CRITICAL | WARN_ONLY  # models and hooks are not test results
    assert {n for n, r in records.items() if r.status == "skipped"} == DOWNSTREAM_SKIPPED
    assert {n for n, r in records.items() if r.status == "pass"} == (CRITICAL | WARN_ONLY) - DOWNSTREAM_SKIPPED - {
        CRITICAL_FAILING,
        WARN_FAILING,
    }
    assert {n for n, r in records.items() if r.is_critical} == CRITICAL

    failed = records[CRITICAL_FAILING]
    assert (failed.status, failed.failures, failed.message) == ("fail", 1, "Got 1 result, configured to fail if != 0")
    assert failed.invocation_id == run_results["metadata"]["invocation_id"]
    assert failed.unique_id.startswith("test.lender.not_null_stg_loans_principal_amount.")
    assert (failed.model, failed.run_id, failed.run_url) == ("stg_loans", "run-1", "http://dagster/runs/run-1")
    assert failed.tags == ["critical"] and failed.execution_time_s > 0
    assert failed.compiled_path == str(target / "compiled/lender/models/staging/_staging.yml/not_null_stg_loans_principal_amount.sql")
    assert failed.owners == "team:data-eng,data-eng@lender.example"  # the model's meta.owner, then its group

    warned = records[WARN_FAILING]
    assert (warned.status, warned.failures, warned.is_critical) == ("warn", 1, False)
    assert warned.owners == "team:lending-ops"  # the test's own meta.owner wins
    assert records["assert_repayment_after_disbursement"].model == "fct_repayments"  # singular test
    assert records["assert_repayment_after_disbursement"].compiled_path is None  # skipped: never compiled
    assert records["assert_repayment_after_disbursement"].tags == ["timeliness"]


def test_dbt_test_records_edge_cases(manifest):
    run_results = {
        "metadata": {"invocation_id": "inv-1", "generated_at": "2025-06-30T03:00:00Z"},
        "results": [
            {"unique_id": "model.lender.stg_loans", "status": "success", "timing": []},
            {
                "unique_id": "test.other.not_null_x_id.abc",
                "status": "error",
                "message": "Database Error",
                "timing": [],
                "failures": None,
                "execution_time": 0.1,
            },
        ],
    }
    (record,) = dbt_test_records(run_results, manifest, run_id=None)
    assert isinstance(record, DbtTestResultRecord)
    assert (record.test_name, record.status, record.message, record.model) == ("not_null_x_id", "error", "Database Error", None)
    assert record.event_ts.isoformat() == "2025-06-30T03:00:00+00:00"  # no timing: when dbt wrote the file
    with pytest.raises(ValueError, match="invocation_id"):
        dbt_test_records({"results": []}, manifest, run_id=None)


def test_results_land_in_the_duckdb_audit_trail(clean_then_bad):
    clean, bad, audit = clean_then_bad
    sink = audit.get_trail().sink
    _, rows = sink.query(
        "SELECT run_id, count(*), count(*) FILTER (WHERE status = 'fail'), count(*) FILTER (WHERE is_critical) "
        "FROM dagster_audit.dbt_test_results GROUP BY run_id ORDER BY count(*) FILTER (WHERE status = 'fail')"
    )
    assert rows == [(clean.result.run_id, 13, 0, 8), (bad.result.run_id, 13, 1, 8)]

    columns, rows = sink.query(
        "SELECT test_name, status, previous_status, is_critical, failures, message, model, owners "
        "FROM dagster_audit.vw_dbt_test_results WHERE status <> 'pass' ORDER BY test_name"
    )
    latest = {row[0]: dict(zip(columns, row)) for row in rows}
    assert set(latest) == DOWNSTREAM_SKIPPED | {CRITICAL_FAILING, WARN_FAILING}
    assert latest[CRITICAL_FAILING] == {
        "test_name": CRITICAL_FAILING,
        "status": "fail",
        "previous_status": "pass",
        "is_critical": True,
        "failures": 1,
        "message": "Got 1 result, configured to fail if != 0",
        "model": "stg_loans",
        "owners": "team:data-eng,data-eng@lender.example",
    }
    assert latest[WARN_FAILING]["status"] == "warn" and latest[WARN_FAILING]["previous_status"] == "pass"


# -- what the card shows of a failing test -------------------------------------------------------


def card_of_evaluation(evaluation: Any, asset_owners: tuple[str, ...] = ()) -> dict[str, Any]:
    """The Teams card the alert sensor's path makes of a check evaluation: translator, notification, card."""
    from datetime import datetime, timezone

    from dagster_monitoring.alerting import Transition
    from dagster_monitoring.alerting.notification import IncidentSnapshot, Notification
    from dagster_monitoring.alerting.transports.teams_card import build_message, payload_size
    from dagster_monitoring.sensors._status_changes import metadata_values
    from dagster_monitoring.translator import DagsterAlertTranslator, DagsterAlertTranslatorSettings

    now = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)
    event = DagsterAlertTranslator(DagsterAlertTranslatorSettings(base_url="http://dagster.local")).to_check_event(
        asset_key=evaluation.asset_key,
        check_name=evaluation.check_name,
        passed=evaluation.passed,
        severity=evaluation.severity,
        occurred_at=now,
        metadata=metadata_values(evaluation.metadata),
        description=evaluation.description,
        owners=asset_owners,
        run_id="r1",
    )
    incident = IncidentSnapshot("i-1", event.fingerprint, now, now, 1)
    notification = Notification("k", "teams", Transition.NEW, event.severity, event, incident, now)
    message = build_message(notification)
    assert payload_size(message) <= 28_000
    return message["attachments"][0]["content"]


def table_cells(card: dict[str, Any]) -> list[list[str]]:
    def walk(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            yield node
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    (table,) = [n for n in walk(card["body"]) if n.get("type") == "Table"]
    return [[cell["items"][0]["text"] for cell in row["cells"]] for row in table["rows"]]


def test_a_failing_critical_test_card_shows_the_offending_rows_and_links_artefacts_that_resolve(clean_then_bad):
    import requests

    _, bad, _ = clean_then_bad
    critical = bad.evaluations[CRITICAL_FAILING]
    sample = text(critical, DBT_FAILING_ROWS_METADATA_KEY)
    assert sample["source"] == "stored failures" and sample["total"] == 1  # store_failures: the whole row
    card = card_of_evaluation(critical)
    header, *rows = table_cells(card)
    # the offending loan itself, its first six columns (a card at 390 px holds no more)
    assert header == ["loan_id", "customer_id", "product", "principal_amount", "annual_rate_pct", "term_months"]
    assert rows == [["L-0999", "C-999", "personal", "NULL", "11.90", "12"]]
    assert "Failing rows (1, 2 more columns)" in json.dumps(card)

    actions = {a["title"]: a["url"] for a in card["actions"]}
    assert actions["Open run"] == "http://dagster.local/runs/r1"
    artefacts = requests.get(actions["dbt artifacts"], timeout=5)
    assert artefacts.status_code == 200
    assert any(CRITICAL_FAILING in r["unique_id"] for r in artefacts.json()["results"])
    compiled = requests.get(actions["Test SQL"], timeout=5)
    assert compiled.status_code == 200 and "principal_amount is null" in compiled.text


def test_a_failing_test_without_stored_failures_shows_what_its_query_finds(clean_then_bad):
    _, bad, _ = clean_then_bad
    warn = bad.evaluations[WARN_FAILING]
    sample = text(warn, DBT_FAILING_ROWS_METADATA_KEY)
    assert sample["source"] == "test query"
    header, *rows = table_cells(card_of_evaluation(warn))
    assert header == ["value_field", "n_records"] and rows == [["frozen", "1"]]  # the unknown status, once


def test_passing_tests_carry_no_sample_and_sampling_can_be_turned_off(clean_then_bad, bad_data_blocking):
    clean, _, _ = clean_then_bad
    assert all(DBT_FAILING_ROWS_METADATA_KEY not in e.metadata for e in clean.evaluations.values())
    failed = [e for e in bad_data_blocking.evaluations.values() if not e.passed]
    assert failed and all(DBT_FAILING_ROWS_METADATA_KEY not in e.metadata for e in failed)  # built with failing_rows=0
