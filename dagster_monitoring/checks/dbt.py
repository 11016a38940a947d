"""dbt tests as monitored Dagster asset checks.

Three parts, used together in a ``@dbt_assets`` body::

    @dbt_assets(manifest=MANIFEST, dagster_dbt_translator=MonitoringDbtTranslator())
    def lender_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource, audit: AuditResource):
        yield from monitor_dbt_events(dbt.cli(["build"], context=context).stream(), context=context, audit=audit)

- :class:`MonitoringDbtTranslator` (definition time): tests tagged ``critical`` become blocking
  checks (``block_on_critical``), the others non-blocking; every spec says its alert severity.
- :func:`monitor_dbt_events` (run time): dagster-dbt picks the check severity from the dbt
  status alone (WARN if dbt says ``warn``, else ERROR) and has no hook for it, so the helper
  rewrites the check results it streams: critical tests ERROR, the others WARN, plus the
  ``dagster_monitoring/*`` keys alerts read and the dbt message, failures and compiled SQL path.
  Passed results are yielded at once; failed ones are held until dbt has written
  ``run_results.json`` (the only place with dbt's message), which is also before Dagster
  evaluates blocking checks (at the end of the step), so blocking is unchanged.
- :func:`dbt_test_records` (pure): ``run_results.json`` + manifest -> audit rows, which the
  helper writes through an optional :class:`~dagster_monitoring.audit.resource.AuditResource`;
  an audit problem is logged and never fails the dbt run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings
from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation
from dagster_dbt.errors import DagsterDbtCliRuntimeError
from dagster_shared.record import copy as copy_record

from ..alerting.failing_rows import FailingRows
from ..alerting.presentation import DBT_COLUMN, DBT_FAILING_ROWS, DBT_MODEL, DBT_TEST_TYPE
from ..alerting.redact import redact
from ..audit.records import DbtTestResultRecord
from ..translator import (
    KIND_METADATA_KEY,
    LINK_METADATA_PREFIX,
    NEXT_ACTION_METADATA_KEY,
    OWNERS_METADATA_KEY,
    SEVERITY_METADATA_KEY,
    SOURCE_METADATA_KEY,
)
from .dbt_failing_rows import fetch_failing_rows, release_adapter

if TYPE_CHECKING:
    from dagster_dbt import DbtProject

    from ..audit.resource import AuditResource
    from ..audit.trail import AuditTrail

__all__ = [
    "DBT_COMPILED_PATH_METADATA_KEY",
    "DBT_FAILING_ROWS_METADATA_KEY",
    "DBT_FAILURES_METADATA_KEY",
    "DBT_MESSAGE_METADATA_KEY",
    "MonitoringDbtTranslator",
    "MonitoringDbtTranslatorSettings",
    "compiled_sql_path",
    "dbt_owners",
    "dbt_test_records",
    "monitor_dbt_events",
]

# Check-result metadata added from run_results.json; alert cards show them as details.
DBT_MESSAGE_METADATA_KEY = "dbt/message"
DBT_FAILURES_METADATA_KEY = "dbt/failures"
DBT_COMPILED_PATH_METADATA_KEY = "dbt/compiled_path"
DBT_FAILING_ROWS_METADATA_KEY = DBT_FAILING_ROWS  # a bounded, redacted sample (alerting.failing_rows.FailingRows)
DBT_UNIQUE_ID_METADATA_KEY = "unique_id"  # set by dagster-dbt on every test event


CheckEvent = Union[dg.AssetCheckResult, AssetCheckEvaluation]


@dataclass(frozen=True)
class MonitoringDbtTranslatorSettings(DagsterDbtTranslatorSettings):
    """dagster-dbt's settings plus how dbt tests map to check severity.

    ``critical_tag``: the dbt tag that makes a test critical (an ERROR check, a CRITICAL alert).
    ``block_on_critical``: critical checks are blocking, so a failure fails the step and stops
    downstream assets even when dbt is run with ``raise_on_error=False``.
    ``warn_non_critical``: other tests become WARN checks; False keeps dagster-dbt's choice
    (WARN when dbt says ``warn``, else ERROR) and its blocking for ``severity: error`` tests.
    """

    critical_tag: str = "critical"
    block_on_critical: bool = True
    warn_non_critical: bool = True


def _tags(node: Mapping[str, Any]) -> list[str]:
    tags = [*node.get("tags", []), *node.get("config", {}).get("tags", [])]
    return sorted(dict.fromkeys(str(t) for t in tags))


def _meta(node: Mapping[str, Any]) -> Mapping[str, Any]:
    return {**node.get("meta", {}), **node.get("config", {}).get("meta", {})}


def _as_list(value: Any) -> list[str]:
    if not value:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _is_valid_owner(owner: str) -> bool:
    # Dagster accepts an e-mail address or "team:<name>" as an asset owner.
    return (owner.startswith("team:") and len(owner) > 5) or ("@" in owner and " " not in owner)


def _node(manifest: Mapping[str, Any], unique_id: str | None) -> Mapping[str, Any] | None:
    if not unique_id:
        return None
    return manifest.get("nodes", {}).get(unique_id) or manifest.get("sources", {}).get(unique_id)


def _tested_node_id(test: Mapping[str, Any]) -> str | None:
    if test.get("attached_node"):
        return test["attached_node"]
    parents = test.get("depends_on", {}).get("nodes", [])
    return parents[0] if parents else None


def _owners_of(node: Mapping[str, Any], group: Mapping[str, Any] | None) -> list[str]:
    meta = _meta(node)
    owners = [*_as_list(meta.get("owner")), *_as_list((meta.get("dagster") or {}).get("owners"))]
    if group:
        owner = group.get("owner") or {}
        owners += _as_list(owner.get("email") or owner.get("name"))
    return list(dict.fromkeys(owners))


def dbt_owners(node: Mapping[str, Any], manifest: Mapping[str, Any]) -> list[str]:
    """Who owns a dbt node: ``meta.owner``, ``meta.dagster.owners``, then the owner of its dbt
    group (e-mail, else name). A test's own ``meta.owner`` or its own group wins; a test without
    either inherits its model's.

    Why: dbt projects put ownership in ``meta.owner`` or in group owners; alerts, asset specs and
    audit rows must name the same people whichever style a project uses.
    """
    group = _group_of(node, manifest)
    if node.get("resource_type") != "test":
        return _owners_of(node, group)
    own = _owners_of(node, None)  # the test's own meta.owner wins
    if own:
        return own
    tested = _node(manifest, _tested_node_id(node))
    model_group = _group_of(tested, manifest) if tested is not None else None
    if group is not None and (model_group is None or group.get("name") != model_group.get("name")):
        return _owners_of(node, group)  # a group set on the test itself (dbt copies the model's otherwise)
    return dbt_owners(tested, manifest) if tested is not None else []


def _group_of(node: Mapping[str, Any], manifest: Mapping[str, Any]) -> Mapping[str, Any] | None:
    name = node.get("group") or node.get("config", {}).get("group")
    return next((g for g in manifest.get("groups", {}).values() if name and g.get("name") == name), None)


def compiled_sql_path(test: Mapping[str, Any], target_path: str | os.PathLike[str] | None = None) -> str | None:
    """Where dbt writes a node's compiled SQL: ``<target>/compiled/<package>/<file>[/<node>.sql]``
    (dbt's own rule), absolute when ``target_path`` is; without it, the manifest's ``compiled_path``.

    Why derive it: the manifest dagster-dbt holds is the parse-time one, where ``compiled_path``
    is still empty, and the one dbt writes at the end can be large to load on every run.
    """
    if target_path is None and test.get("compiled_path"):
        return str(test["compiled_path"])
    path, original = test.get("path"), test.get("original_file_path")
    if not path or not original or not test.get("package_name"):
        return None
    relative = original if os.path.basename(path) == os.path.basename(original) else os.path.join(original, path)
    return os.path.join(os.fspath(target_path or "target"), "compiled", test["package_name"], relative)


class MonitoringDbtTranslator(DagsterDbtTranslator):
    """dagster-dbt's translator with the monitoring decisions about dbt tests.

    Each decision is one method (``is_critical_test``, ``get_check_severity``,
    ``get_check_blocking``, ``get_alert_severity``, ``get_check_next_action``); subclass and call
    ``super()`` to change one. ``get_asset_check_spec`` applies them at definition time and
    :func:`monitor_dbt_events` at run time, so the spec and the result never disagree.
    """

    def __init__(self, settings: DagsterDbtTranslatorSettings | None = None) -> None:
        if settings is not None and not isinstance(settings, MonitoringDbtTranslatorSettings):
            settings = MonitoringDbtTranslatorSettings(**asdict(settings))
        super().__init__(settings or MonitoringDbtTranslatorSettings())

    @property
    def settings(self) -> MonitoringDbtTranslatorSettings:
        if not isinstance(getattr(self, "_settings", None), MonitoringDbtTranslatorSettings):
            self._settings = MonitoringDbtTranslatorSettings()
        return self._settings  # type: ignore[return-value]

    # -- decisions -----------------------------------------------------------------------------

    def is_critical_test(self, test: Mapping[str, Any]) -> bool:
        """A test carrying ``settings.critical_tag``: the one dbt signal teams already use for "page me"."""
        return self.settings.critical_tag in _tags(test)

    def get_check_severity(self, test: Mapping[str, Any], dbt_status: str | None = None) -> dg.AssetCheckSeverity:
        """Critical -> ERROR; others WARN (or, with ``warn_non_critical=False``, dagster-dbt's rule)."""
        if self.is_critical_test(test) or (not self.settings.warn_non_critical and (dbt_status or "").lower() != "warn"):
            return dg.AssetCheckSeverity.ERROR
        return dg.AssetCheckSeverity.WARN

    def get_check_blocking(self, test: Mapping[str, Any]) -> bool:
        """Whether a failure stops downstream assets: critical ones per ``block_on_critical``."""
        if self.is_critical_test(test):
            return self.settings.block_on_critical
        if self.settings.warn_non_critical:
            return False  # a WARN check never blocks; saying so keeps the UI honest
        return (test.get("config", {}).get("severity") or "error").lower() == "error"

    def get_alert_severity(self, test: Mapping[str, Any]) -> str:
        """The alert severity (``critical`` | ``error`` | ``warn``) a failure of this test maps to."""
        if self.is_critical_test(test):
            return "critical"
        if self.settings.warn_non_critical:
            return "warn"
        return (test.get("config", {}).get("severity") or "error").lower()

    def get_check_next_action(
        self, test: Mapping[str, Any], *, model: str | None, failures: int | None, compiled_path: str | None, sampled: bool = False
    ) -> str:
        """What the on-call engineer does next (a test's ``meta.next_action`` wins): alerts lead with it.
        ``sampled``: the alert shows some of the failing rows, so they are not the first step."""
        custom = _meta(test).get("next_action")
        if custom:
            return str(custom)
        rows = f" ({failures} row{'s' if failures != 1 else ''})" if failures is not None else ""
        where = f" on {model}" if model else ""
        sql = f"the compiled SQL at {compiled_path}" if compiled_path else "the test's compiled SQL"
        if self.is_critical_test(test):
            rerun = f"`dbt build --select {model}+`" if model else "dbt build"
            if sampled:
                return (
                    f"Critical dbt test {test.get('name')}{where} failed{rows}; the failing rows are shown. Fix the data at its "
                    f"source (or the model), then re-run {rerun}. All failing rows: {sql}."
                )
            return (
                f"Critical dbt test {test.get('name')}{where} failed{rows}. Run {sql} to see the offending rows, "
                f"fix the data at its source (or the model), then re-run {rerun}."
            )
        if sampled:
            return f"dbt test {test.get('name')}{where} flagged{rows}; the rows are shown. Fix them or accept them. All of them: {sql}."
        return f"dbt test {test.get('name')}{where} flagged{rows}. Review the rows from {sql}; fix them or accept them."

    # -- dagster-dbt hooks ---------------------------------------------------------------------

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> Sequence[str] | None:
        """The owners :func:`dbt_owners` names (``meta.owner`` too, which dagster-dbt ignores), less
        those Dagster rejects (neither an e-mail nor ``team:…``)."""
        group = dbt_resource_props.get("group")  # dagster-dbt passes the group's properties here
        owners = _owners_of(dbt_resource_props, group if isinstance(group, Mapping) else None)
        return [o for o in owners if _is_valid_owner(o)] or None

    def get_asset_check_spec(
        self,
        asset_spec: dg.AssetSpec,
        manifest: Mapping[str, Any],
        unique_id: str,
        project: DbtProject | None,
    ) -> dg.AssetCheckSpec | None:
        """dagster-dbt's spec with our blocking and the ``dagster_monitoring/*`` metadata, so the UI
        and sensors know a check's severity before it ever runs."""
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None:
            return None
        test = self.get_resource_props(manifest, unique_id)
        metadata = {
            **spec.metadata,
            SOURCE_METADATA_KEY: "dbt",
            KIND_METADATA_KEY: "asset_check",
            SEVERITY_METADATA_KEY: self.get_alert_severity(test),
        }
        description = spec.description or (test.get("description") or None)
        return spec._replace(blocking=self.get_check_blocking(test), metadata=metadata, description=description)


# -- run time ----------------------------------------------------------------------------------


def _resolve_invocation(events: Any, invocation: DbtCliInvocation | None) -> tuple[Iterable[Any], DbtCliInvocation]:
    if isinstance(events, DbtCliInvocation):
        return events.stream(), events
    found = invocation or getattr(events, "_dbt_cli_invocation", None)
    if not all(hasattr(found, attr) for attr in ("manifest", "target_path", "get_artifact")):
        raise TypeError(
            "monitor_dbt_events needs the dbt invocation: pass dbt.cli([...], context=context), its .stream(), "
            f"or invocation=...; got {type(events).__name__} without one"
        )
    return events, found  # type: ignore[return-value]


def _translator_for(invocation: DbtCliInvocation, translator: MonitoringDbtTranslator | None) -> MonitoringDbtTranslator:
    if translator is not None:
        return translator
    used = getattr(invocation, "dagster_dbt_translator", None)
    if isinstance(used, MonitoringDbtTranslator):
        return used
    return MonitoringDbtTranslator()


def _unique_id(event: CheckEvent) -> str | None:
    value: Any = event.metadata.get(DBT_UNIQUE_ID_METADATA_KEY)
    return getattr(value, "value", value) if value is not None else None


def _annotate(
    event: CheckEvent,
    test: Mapping[str, Any],
    result: Mapping[str, Any] | None,
    *,
    manifest: Mapping[str, Any],
    translator: MonitoringDbtTranslator,
    target_path: Path,
    failing_rows: FailingRows | None = None,
    links: Mapping[str, str] | None = None,
) -> CheckEvent:
    status = (result or {}).get("status")
    if status is None:
        raw = event.metadata.get("status")
        status = getattr(raw, "value", raw)
    failures = (result or {}).get("failures")
    if failures is None:
        raw = event.metadata.get("dagster_dbt/failed_row_count")
        failures = getattr(raw, "value", raw)
    message = (result or {}).get("message")
    tested = _node(manifest, _tested_node_id(test))
    model = tested.get("name") if tested else None
    compiled = compiled_sql_path(test, target_path)

    extra: dict[str, dg.MetadataValue] = {
        SOURCE_METADATA_KEY: dg.MetadataValue.text("dbt"),
        KIND_METADATA_KEY: dg.MetadataValue.text("asset_check"),
        SEVERITY_METADATA_KEY: dg.MetadataValue.text(translator.get_alert_severity(test)),
    }
    owners = dbt_owners(test, manifest)
    if owners:
        extra[OWNERS_METADATA_KEY] = dg.MetadataValue.text(",".join(owners))
    # what the card's headline names: "accepted_values on stg_loans.status"
    test_type = (test.get("test_metadata") or {}).get("name")
    if test_type:
        extra[DBT_TEST_TYPE] = dg.MetadataValue.text(str(test_type))
    if test.get("column_name"):
        extra[DBT_COLUMN] = dg.MetadataValue.text(str(test["column_name"]))
    if model:
        extra[DBT_MODEL] = dg.MetadataValue.text(str(model))
    if failures is not None:
        extra[DBT_FAILURES_METADATA_KEY] = dg.MetadataValue.int(int(failures))
    if message:
        extra[DBT_MESSAGE_METADATA_KEY] = dg.MetadataValue.text(str(message))
    if compiled:
        extra[DBT_COMPILED_PATH_METADATA_KEY] = dg.MetadataValue.path(compiled)
    if failing_rows is not None:
        extra[DBT_FAILING_ROWS_METADATA_KEY] = dg.MetadataValue.json(failing_rows.to_json())
    for name, url in (links or {}).items():
        extra[LINK_METADATA_PREFIX + name] = dg.MetadataValue.url(url)
    if not event.passed:
        extra[NEXT_ACTION_METADATA_KEY] = dg.MetadataValue.text(
            translator.get_check_next_action(test, model=model, failures=failures, compiled_path=compiled, sampled=failing_rows is not None)
        )
    changes: dict[str, Any] = {
        "severity": translator.get_check_severity(test, str(status) if status else None),
        "metadata": {**event.metadata, **extra},
        "description": str(message) if message and not event.passed else event.description,
    }
    # AssetCheckResult (in @dbt_assets) is a NamedTuple; AssetCheckEvaluation (in an @op) a record.
    return event._replace(**changes) if isinstance(event, dg.AssetCheckResult) else copy_record(event, **changes)


def _read_run_results(invocation: DbtCliInvocation, log: Any) -> dict[str, Any] | None:
    try:
        return invocation.get_artifact("run_results.json")
    except FileNotFoundError:
        log.warning(f"dbt wrote no run_results.json in {invocation.target_path}: check results keep dagster-dbt's metadata only")
    except Exception as exc:  # a truncated file must not hide the check results
        log.warning(f"could not read {invocation.target_path / 'run_results.json'}: {exc!r}")
    return None


def _write_audit(
    audit: AuditResource | AuditTrail,
    run_results: Mapping[str, Any],
    manifest: Mapping[str, Any],
    *,
    run_id: str | None,
    run_url: str | None,
    target_path: Path,
    critical_tag: str,
    log: Any,
) -> None:
    try:
        records = dbt_test_records(
            run_results, manifest, run_id=run_id, run_url=run_url, target_path=target_path, critical_tag=critical_tag
        )
        trail = audit.get_trail() if hasattr(audit, "get_trail") else audit
        result = trail.write(records)  # a sink outage spools inside the trail
        if result.spooled:
            log.warning(f"audit: {result.spooled} dbt test result(s) spooled; the next write retries them")
        else:
            log.info(f"audit: {len(records)} dbt test result(s) written")
    except Exception as exc:  # never let the audit trail fail the dbt run
        log.warning(f"audit: could not write dbt test results: {exc!r}")


def artifact_links(
    artifacts_url: str | None, test: Mapping[str, Any], *, target_path: Path, run_id: str | None, invocation_id: str | None
) -> dict[str, str]:
    """Links to this invocation's artefacts where the user publishes them: ``artifacts_url`` is the
    URL of the invocation's target folder, with ``{run_id}``, ``{invocation_id}`` and ``{target}``
    (the folder's name) filled in, e.g. ``https://storage.example.com/dbt/{target}/``. The links:
    ``dbt_artifacts`` (its ``run_results.json``) and ``compiled_sql`` (the test's compiled SQL)."""
    if not artifacts_url:
        return {}
    base = render_artifacts_url(artifacts_url, target=target_path.name, run_id=run_id or "", invocation_id=invocation_id or "")
    links = {"dbt_artifacts": f"{base}/run_results.json"}
    compiled = compiled_sql_path(test, target_path)
    if compiled:
        try:
            relative = Path(compiled).relative_to(target_path)
        except ValueError:
            relative = None
        if relative is not None:
            links["compiled_sql"] = f"{base}/{relative.as_posix()}"
    return links


def render_artifacts_url(template: str, **values: str) -> str:
    """``template`` with its placeholders filled, without a trailing slash; an unknown placeholder
    is a ValueError naming ``artifacts_url`` (raised before dbt runs)."""
    try:
        return template.format(**{"target": "", "run_id": "", "invocation_id": "", **values}).rstrip("/")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"artifacts_url {template!r}: {exc!r}; it may use {{run_id}}, {{invocation_id}} and {{target}} (the target folder's name)"
        ) from None


def _sample_failing_rows(
    invocation: DbtCliInvocation, results: Iterable[Mapping[str, Any] | None], limit: int, log: Any
) -> dict[str, FailingRows]:
    """unique_id -> sample of each failing test's rows; a problem is logged, never raised."""
    adapter = getattr(invocation, "adapter", None)
    wanted = [r for r in results if r is not None]
    if limit <= 0 or adapter is None or not wanted:
        return {}
    samples: dict[str, FailingRows] = {}
    try:
        for result in wanted:
            try:
                sample = fetch_failing_rows(adapter, result, limit=limit)
            except Exception as exc:  # a sample is a courtesy: never fail the run, never hold the alert
                log.warning(f"could not read the failing rows of {result.get('unique_id')}: {type(exc).__name__}: {redact(str(exc))[:300]}")
                continue
            if sample is not None:
                samples[str(result.get("unique_id"))] = sample
    finally:
        try:
            release_adapter(adapter)
        except Exception as exc:
            log.warning(f"could not close the dbt adapter after reading failing rows: {type(exc).__name__}: {redact(str(exc))[:300]}")
    return samples


def monitor_dbt_events(
    events: DbtCliInvocation | Iterable[Any],
    *,
    context: dg.AssetExecutionContext | dg.OpExecutionContext | None = None,
    audit: AuditResource | AuditTrail | None = None,
    invocation: DbtCliInvocation | None = None,
    translator: MonitoringDbtTranslator | None = None,
    base_url: str | None = None,
    failing_rows: int = 5,
    artifacts_url: str | None = None,
) -> Iterator[Any]:
    """Yield dagster-dbt's events with dbt test results turned into monitored check results.

    ``events``: ``dbt.cli([...], context=context)`` or its ``.stream()`` (also after
    ``.fetch_row_counts()`` and friends); any other iterable needs ``invocation=``.
    ``audit``: an AuditResource (or AuditTrail) receiving one ``dbt_test_results`` row per test.
    ``translator``: default the ``@dbt_assets`` translator when it is a MonitoringDbtTranslator.
    ``base_url``: the Dagster webserver URL, for the run link in audit rows.
    ``failing_rows``: how many of a failing test's rows to read back for its card (0: none); see
    :mod:`.dbt_failing_rows` for where they come from and how they are bounded and redacted.
    ``artifacts_url``: where the invocation's target folder is published (object storage, a
    docs site), so cards link its ``run_results.json`` and the test's compiled SQL; see
    :func:`artifact_links`.

    Why a wrapper: dagster-dbt decides run-time severity from the dbt status only and never
    reads dbt's failure message; this is the one place both can be fixed without patching it.
    A failing dbt command still raises ``DagsterDbtCliRuntimeError``, after the held results
    and the audit rows are out.
    """
    stream, inv = _resolve_invocation(events, invocation)
    if artifacts_url:
        render_artifacts_url(artifacts_url)  # a bad template fails now, not after the dbt run
    chosen = _translator_for(inv, translator)
    manifest = inv.manifest
    log = context.log if context is not None else dg.get_dagster_logger()
    held: list[tuple[CheckEvent, Mapping[str, Any]]] = []
    failure: DagsterDbtCliRuntimeError | None = None
    try:
        for event in stream:
            if isinstance(event, (dg.AssetCheckResult, AssetCheckEvaluation)):
                test = _node(manifest, _unique_id(event))
                if test is not None and test.get("resource_type") == "test":
                    if event.passed:
                        yield _annotate(event, test, None, manifest=manifest, translator=chosen, target_path=inv.target_path)
                    else:
                        held.append((event, test))  # dbt's message exists only in run_results.json
                    continue
            yield event
    except DagsterDbtCliRuntimeError as exc:  # dbt exited non-zero; run_results.json is written
        failure = exc

    run_results = _read_run_results(inv, log) if held or audit is not None else None
    by_id = {r.get("unique_id"): r for r in (run_results or {}).get("results", [])}
    run_id = context.run.run_id if context is not None else None
    invocation_id = ((run_results or {}).get("metadata") or {}).get("invocation_id")
    # the dbt process has ended: its warehouse file is free to read
    samples = _sample_failing_rows(inv, (by_id.get(test["unique_id"]) for _, test in held), failing_rows, log)
    for event, test in held:
        result = by_id.get(test["unique_id"])
        yield _annotate(
            event,
            test,
            result,
            manifest=manifest,
            translator=chosen,
            target_path=inv.target_path,
            failing_rows=samples.get(test["unique_id"]),
            links=artifact_links(artifacts_url, test, target_path=inv.target_path, run_id=run_id, invocation_id=invocation_id),
        )

    if audit is not None and run_results is not None:
        run_url = f"{base_url.rstrip('/')}/runs/{run_id}" if base_url and run_id else None
        _write_audit(
            audit,
            run_results,
            manifest,
            run_id=run_id,
            run_url=run_url,
            target_path=inv.target_path,
            critical_tag=chosen.settings.critical_tag,
            log=log,
        )
    if failure is not None:
        raise failure


# -- audit records -----------------------------------------------------------------------------


def _parse_ts(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _finished_at(result: Mapping[str, Any], generated_at: datetime) -> datetime:
    timing = {t.get("name"): t for t in result.get("timing") or []}
    done = _parse_ts((timing.get("execute") or {}).get("completed_at"))
    if done is None:
        stamps = [ts for t in timing.values() if (ts := _parse_ts(t.get("completed_at"))) is not None]
        done = max(stamps, default=None)
    return done or generated_at


def dbt_test_records(
    run_results: Mapping[str, Any],
    manifest: Mapping[str, Any],
    *,
    run_id: str | None,
    run_url: str | None = None,
    target_path: str | os.PathLike[str] | None = None,
    critical_tag: str = "critical",
) -> list[DbtTestResultRecord]:
    """One :class:`DbtTestResultRecord` per dbt test in ``run_results.json`` (models, seeds and
    hooks are left out), with the test's model, tags, owners and compiled SQL path from the
    manifest. Pure: no clock, no I/O, so it is tested on its own and reused by scripts.

    ``target_path``: the invocation's target folder, for absolute compiled paths (default:
    the manifest's relative ``compiled_path``, or ``target/compiled/...``).
    """
    metadata = run_results.get("metadata") or {}
    invocation_id = metadata.get("invocation_id")
    if not invocation_id:
        raise ValueError("run_results.json has no metadata.invocation_id; is it a dbt run_results artifact?")
    generated_at = _parse_ts(metadata.get("generated_at")) or datetime(1970, 1, 1, tzinfo=timezone.utc)

    records: list[DbtTestResultRecord] = []
    for result in run_results.get("results", []):
        unique_id = str(result.get("unique_id") or "")
        node = _node(manifest, unique_id)
        if not unique_id.startswith("test.") or (node is not None and node.get("resource_type") != "test"):
            continue
        node = node or {}
        tested = _node(manifest, _tested_node_id(node))
        tags = _tags(node)
        status = str(result.get("status") or "").lower()
        owners = dbt_owners(node, manifest)
        records.append(
            DbtTestResultRecord.build(
                event_ts=_finished_at(result, generated_at),
                invocation_id=invocation_id,
                run_id=run_id,
                unique_id=unique_id,
                test_name=node.get("name") or unique_id.split(".")[2],
                model=tested.get("name") if tested else None,
                status=status,
                failures=result.get("failures"),
                message=result.get("message"),
                is_critical=critical_tag in tags,
                tags=tags,
                execution_time_s=result.get("execution_time"),
                compiled_path=compiled_sql_path(node, target_path) if node and status != "skipped" else None,
                owners=",".join(owners) or None,
                run_url=run_url,
            )
        )
    return records
