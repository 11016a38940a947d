"""``dagster-monitoring``: run the demo, check a config, send a test alert, receive webhooks, query the audit trail, write the on-call report."""

from __future__ import annotations

import csv
import io
import json
import logging
import shlex
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .alerting.config import ConfigError
from .alerting.lifecycle import Transition
from .alerting.outbox import attempt_delivery
from .alerting.sample import sample_notification
from .alerting.text import truncate
from .alerting.transports import build_transports
from .audit.read import LAYOUTS, TABLE_LAYOUT, read_view, utc
from .config import MonitoringConfig, load_config

if TYPE_CHECKING:
    from .alerting.state import SqlStateStore
    from .audit.trail import AuditTrail


def _load(path: str, missing_env: list[str] | None = None) -> MonitoringConfig:
    try:
        return load_config(path, missing_env=missing_env)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


_allow_missing_env = click.option(
    "--allow-missing-env",
    is_flag=True,
    help="check a production config where its secrets' environment variables are not set (placeholders stand in)",
)


def _report_missing(missing: list[str]) -> None:
    if missing:
        click.echo(f"note: not set here, placeholders used: {', '.join(sorted(set(missing)))}", err=True)


@click.group()
@click.version_option(package_name="dagster-monitoring", prog_name="dagster-monitoring", message="%(prog)s %(version)s")
@click.option("-v", "--verbose", is_flag=True, help="log delivery attempts")
def main(verbose: bool) -> None:
    """Stateful alerts, audit trail and data-quality checks for Dagster."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@main.command("demo")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Dagster home to run in: a new or empty folder, or one an earlier demo made (started over); default: a new temporary folder",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="monitoring YAML whose receivers (Teams, e-mail, ...) get the demo's alerts too",
)
def demo_cmd(home: Path | None, config_path: Path | None) -> None:
    """Run the example project green, break it, fix it: alerts, card previews, audit views.

    Needs the dbt and dlt extras: pip install -e '.[demo]' in a checkout (the package is not on PyPI yet)."""
    try:
        from .example.demo import DemoHomeError, run_demo
    except ImportError as exc:
        click.echo(f"error: the demo needs the dbt and dlt extras ({exc}); in the checkout: pip install -e '.[demo]'", err=True)
        sys.exit(2)
    try:
        run_demo(home, config_path, echo=click.echo)  # a bad config or home fails before anything runs
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    except DemoHomeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


@main.command("config-reference")
def config_reference_cmd() -> None:
    """Print the configuration reference (Markdown) generated from the config models."""
    from .config_reference import config_reference

    click.echo(config_reference(), nl=False)


@main.command("validate-config")
@click.argument("file", type=click.Path(dir_okay=False))
@_allow_missing_env
def validate_config_cmd(file: str, allow_missing_env: bool) -> None:
    """Validate FILE; print every problem with the field it is in (exit 2 if any)."""
    missing: list[str] = []
    config = _load(file, missing if allow_missing_env else None)
    _report_missing(missing)
    click.echo(
        f"OK: {file}: {len(config.receivers)} receiver(s) "
        f"({', '.join(f'{r.name}:{r.type}' for r in config.receivers) or 'none'}), "
        f"{len(config.routes)} route(s), {len(config.silences)} silence(s); "
        f"state at {'<url from environment>' if config.state.url else config.state.sqlalchemy_url()}"
    )


@main.command("send-test")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="monitoring YAML")
@click.option("--receiver", required=True, help="receiver name from the config")
@click.option(
    "--transition", type=click.Choice([t.value for t in Transition if t is not Transition.ONGOING]), default="new", show_default=True
)
@click.option("--dry-run", is_flag=True, help="print the exact payload and send nothing")
@_allow_missing_env
def send_test(config_path: str, receiver: str, transition: str, dry_run: bool, allow_missing_env: bool) -> None:
    """Send a sample failure alert through one receiver, to check its webhook or mailbox."""
    if allow_missing_env and not dry_run:
        click.echo("error: --allow-missing-env only with --dry-run (a placeholder secret cannot send)", err=True)
        sys.exit(2)
    missing: list[str] = []
    config = _load(config_path, missing if allow_missing_env else None)
    _report_missing(missing)
    try:
        receiver_config = config.receiver(receiver)
    except KeyError as exc:
        click.echo(f"error: {exc.args[0]}", err=True)
        sys.exit(2)
    transport = build_transports([receiver_config])[receiver]
    notification = sample_notification(receiver, Transition(transition), base_url=config.dagster_base_url or "http://localhost:3000")
    if config.actions is not None and notification.transition is not Transition.RECOVERED:
        from dataclasses import replace

        from .alerting.actions import ActionLinks

        # real signed links on the sample incident: opening one checks the proxy path to serve
        notification = replace(notification, actions=ActionLinks(config.actions).for_notification(notification, notification.created_at))
    if dry_run:
        payload = transport.render(notification)
        click.echo(payload if isinstance(payload, str) else json.dumps(payload, indent=2, ensure_ascii=False))
        return
    result, tries = attempt_delivery(transport, notification, config.delivery)
    if result.ok:
        extra = f" ({result.external_id})" if result.external_id else ""
        click.echo(f"sent sample {transition} alert to {receiver} ({receiver_config.type}) in {tries} attempt(s){extra}")
        return
    hint = "will not help to retry" if not result.retryable else "retryable"
    click.echo(f"error: {receiver} ({receiver_config.type}) failed after {tries} attempt(s), {hint}: {result.error}", err=True)
    sys.exit(1)


@main.command("serve")
@click.option(
    "--config", "config_path", required=True, type=click.Path(dir_okay=False), help="monitoring YAML with a sources: or actions: section"
)
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on (0.0.0.0: every interface)")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="port to listen on")
def serve_cmd(config_path: str, host: str, port: int) -> None:
    """Receive Fivetran and dbt Cloud webhooks (verify, answer, alert) and the cards' signed links.

    POST /webhooks/fivetran and /webhooks/dbt_cloud (each needs its source's webhook_secret);
    GET/POST /actions/{token} (with actions:); GET /healthz. Put it behind your TLS proxy: the
    sources only post to https URLs."""
    config = _load(config_path)
    from .serve import PATHS, serve

    configured = [name for name in PATHS if getattr(config.sources, name) is not None and getattr(config.sources, name).webhook_secret]
    if not configured and config.actions is None:
        click.echo(
            "error: nothing to serve: add sources.fivetran.webhook_secret, sources.dbt_cloud.webhook_secret "
            "or actions: (the cards' Acknowledge / Silence links)",
            err=True,
        )
        sys.exit(2)
    paths = [f"POST {PATHS[n]}" for n in configured] + (["GET/POST /actions/{token}"] if config.actions is not None else [])
    click.echo(f"dagster-monitoring serve on http://{host}:{port}: " + ", ".join(paths), err=True)
    serve(config, host=host, port=port)


@main.command("watch")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="monitoring YAML")
@click.option("--workspace", type=click.Path(dir_okay=False, exists=True), help="workspace.yaml: also code locations and asset health")
@click.option("--once", is_flag=True, help="check once and exit (cron)")
@click.option("--interval", default=60.0, show_default=True, type=click.FloatRange(min=1), help="seconds between checks")
def watch_cmd(config_path: str, workspace: str | None, once: bool, interval: float) -> None:
    """Alert on what no sensor can see: a stopped dagster-daemon, silent monitoring sensors,
    code locations that fail to load, asset health changes. Needs DAGSTER_HOME (the instance)."""
    import os

    config = _load(config_path)
    if not os.environ.get("DAGSTER_HOME"):
        click.echo("error: DAGSTER_HOME is not set: watch reads the instance the daemon writes to", err=True)
        sys.exit(2)
    from .watch import run_watch

    run_watch(config, workspace=workspace, once=once, interval=interval, echo=click.echo)


@main.group("silence")
def silence() -> None:
    """Silences and acknowledgements kept in the alert state DB (the one the config's state: names)."""


_state_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="monitoring YAML whose state: is used (default: SQLite under $DAGSTER_HOME or ./.dagster_monitoring)",
)


def _state_store(config_path: str | None) -> SqlStateStore:
    """The alert state DB of ``config_path`` (its other secrets need not be set here)."""
    from .alerting.config import StateConfig
    from .alerting.state import SqlStateStore

    state = StateConfig()
    if config_path:
        missing: list[str] = []
        state = _load(config_path, missing).state
        if state.url is not None and state.url.get_secret_value().startswith("unset-"):
            click.echo(f"error: state.url: environment variable {state.url.get_secret_value()[6:]} is not set (or empty)", err=True)
            sys.exit(2)
    return SqlStateStore(state.sqlalchemy_url(), lock_timeout=state.lock_timeout.total_seconds())


def _iso_time(value: str, option: str) -> datetime:
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO time, e.g. 2026-12-01T18:00:00Z", param_hint=option) from None
    if at.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no timezone; add Z or +01:00", param_hint=option)
    return at


def _until(duration: str | None, until: str | None, now: datetime) -> datetime:
    """The end: ``now`` (the start) + ``--duration``, or ``--until``."""
    from .alerting.durations import parse_duration

    if (duration is None) == (until is None):
        raise click.UsageError("give exactly one of --duration (e.g. 4h) and --until (e.g. 2026-12-01T18:00:00Z)")
    if duration is not None:
        try:
            delta = parse_duration(duration)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--duration") from None
        if delta.total_seconds() <= 0:
            raise click.BadParameter("must be longer than 0s", param_hint="--duration")
        return now + delta
    assert until is not None
    ends = _iso_time(until, "--until")
    if ends <= now:
        raise click.BadParameter(f"{until!r} is not in the future (nor after --starts)", param_hint="--until")
    return ends


@silence.command("add")
@click.option(
    "--match",
    "matches",
    multiple=True,
    required=True,
    help="key=value, repeatable, all must hold: fingerprint, entity, kind, source, owner, tags.NAME",
)
@click.option("--starts", help="a maintenance window: when it starts, ISO with timezone (default: now); --duration counts from it")
@click.option("--duration", help="how long, e.g. 4h, 30m, 2d")
@click.option("--until", help="when it ends, ISO with timezone, e.g. 2026-12-01T18:00:00Z")
@click.option("--author", required=True, help="who silences it (e-mail or name)")
@click.option("--comment", required=True, help="why (shown in the audit trail's silenced_by)")
@_state_config_option
def silence_add(
    matches: tuple[str, ...],
    starts: str | None,
    duration: str | None,
    until: str | None,
    author: str,
    comment: str,
    config_path: str | None,
) -> None:
    """Silence matching incidents: no new, reminder or escalation messages while it lasts (recorded all the same)."""
    import secrets

    from .alerting.silences import SilenceError, new_silence, parse_matcher

    now = datetime.now(timezone.utc)
    begins = max(_iso_time(starts, "--starts"), now) if starts else now
    ends = _until(duration, until, begins)
    try:
        matchers = [parse_matcher(m) for m in matches]
        made = new_silence(secrets.token_hex(5), matchers, author=author, comment=comment, now=now, ends_at=ends, starts_at=begins)
    except SilenceError as exc:
        raise click.UsageError(str(exc)) from None
    store = _state_store(config_path)
    try:
        store.add_silence(made)
    finally:
        store.dispose()
    window = f"from {_cell(made.starts_at)} UTC " if made.starts_at > now else ""
    click.echo(f"silence {made.id} {window}until {_cell(made.ends_at)} UTC: {made.describe_matchers()}")


@silence.command("list")
@click.option("--all", "show_all", is_flag=True, help="also the expired and ended ones")
@_state_config_option
def silence_list(show_all: bool, config_path: str | None) -> None:
    """The silences and acknowledgements in force (with --all: every one ever made)."""
    now = datetime.now(timezone.utc)
    store = _state_store(config_path)
    try:
        rows = store.list_silences(now, include_ended=show_all)
    finally:
        store.dispose()
    click.echo(
        format_table(
            ["id", "kind", "state", "matchers", "author", "from", "until", "comment"],
            [
                (r.id, r.kind, r.state_at(now), r.describe_matchers(), r.author, r.starts_at, r.ends_at or "its recovery", r.comment)
                for r in rows
            ],
            seconds=False,
        )
    )


@silence.command("expire")
@click.argument("silence_id", metavar="ID")
@_state_config_option
def silence_expire(silence_id: str, config_path: str | None) -> None:
    """End silence (or acknowledgement) ID now."""
    store = _state_store(config_path)
    try:
        ended = store.expire_silences([silence_id], datetime.now(timezone.utc))
    finally:
        store.dispose()
    if not ended:
        click.echo(
            f"error: ID {silence_id!r}: no silence or acknowledgement in force has this id (see `dagster-monitoring silence list --all`)",
            err=True,
        )
        sys.exit(1)
    click.echo(f"expired {silence_id}")


@main.group("audit")
def audit() -> None:
    """Create and read the audit trail (DuckDB by default, BigQuery when configured)."""


def _trail(config_path: str | None) -> AuditTrail:
    from .audit.config import AuditConfig
    from .audit.trail import AuditTrail

    audit_config = _load(config_path).audit if config_path else AuditConfig()
    return AuditTrail.from_config(audit_config)


_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="monitoring YAML (default: DuckDB under $DAGSTER_HOME or ./.dagster_monitoring)",
)


@audit.command("init")
@_config_option
def audit_init(config_path: str | None) -> None:
    """Create the dataset/schema, tables and views (idempotent)."""
    from .audit import schema
    from .audit.sinks.base import AuditSinkError

    trail = _trail(config_path)
    try:
        trail.sink.init()
    except AuditSinkError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"audit trail ready at {_where(trail.sink)}: {len(schema.tables())} tables, {len(schema.views())} views")


TABLE_WIDTH = 100  # a view's table fits a 100-column terminal
TABLE_CELL_WIDTH = 40  # a base table has too many columns to fit: each cell is cut instead


def _where(sink: object) -> str:
    path = getattr(sink, "path", None)
    return str(path) if path else f"{getattr(sink, 'project_id', '')}.{getattr(sink, 'dataset', '')}"


def _init_command(config_path: str | None) -> str:
    return "dagster-monitoring audit init" + (f" --config {shlex.quote(config_path)}" if config_path else "")


@audit.command("query")
@click.argument("view")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="table: chosen columns fitted to 100 characters; json (an array of objects) and csv: every column, full values, ISO timestamps in UTC",
)
@click.option("--wide", is_flag=True, help="table: every column, nothing cut")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True, help="rows at most; 0: all")
@_config_option
def audit_query(view: str, fmt: str, wide: bool, limit: int, config_path: str | None) -> None:
    """Print VIEW (e.g. vw_recent_failures), worst and oldest first.

    Order: failures by severity (CRITICAL, ERROR, WARN) then failing since, oldest first;
    vw_run_summary newest day first; vw_failures_9d and vw_flaky_checks most failures/flips first;
    vw_dbt_test_results failing first; vw_entity_events and tables newest first."""
    from .alerting.redact import redact
    from .audit import schema
    from .audit.sinks.duckdb import DuckDBSink

    try:
        schema.require_object(view)
    except KeyError as exc:
        click.echo(f"error: {exc.args[0]}", err=True)
        sys.exit(2)
    sink = _trail(config_path).sink
    if isinstance(sink, DuckDBSink) and not sink.path.is_file():  # reading never creates a trail (only init does)
        click.echo(f"error: no audit trail at {sink.path}: run the demo or `{_init_command(config_path)}`", err=True)
        sys.exit(1)
    try:
        columns, rows = read_view(sink, view, limit + 1 if limit else None)  # one more: are there more?
    except Exception as exc:  # DuckDB / BigQuery errors: say where, and how to create what is missing
        missing = type(exc).__name__ in {"CatalogException", "NotFound"}  # duckdb's, google.api_core's
        hint = f"; `{_init_command(config_path)}` creates what is missing" if missing else ""
        reason = (redact(exc).strip().splitlines() or [type(exc).__name__])[0]  # duckdb adds the query, marked up
        click.echo(f"error: cannot read {view} from the audit trail at {_where(sink)}: {reason}{hint}", err=True)
        sys.exit(1)
    more = bool(limit) and len(rows) > limit
    rows = rows[:limit] if limit else rows
    if fmt == "json":
        click.echo(format_json(columns, rows))
    elif fmt == "csv":
        click.echo(format_csv(columns, rows), nl=False)
    else:
        click.echo(format_view(view, columns, rows, wide=wide, more=more))
    if more and fmt != "table":
        click.echo(f"note: the first {limit} rows; more: raise --limit (0: all)", err=True)


@main.command("report")
@click.option(
    "--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="HTML file to write (one self-contained page)"
)
@click.option("--min-severity", type=click.Choice(["WARN", "ERROR", "CRITICAL"], case_sensitive=False), default="WARN", show_default=True)
@click.option("--owner", "owners", multiple=True, help="only entities with this owner (repeatable), e.g. team:data-eng")
@click.option(
    "--source",
    "sources",
    multiple=True,
    help="only these entity types / alert sources (repeatable): job, asset_check, dbt_test, fivetran, ...",
)
@click.option("--text", "as_text", is_flag=True, help="also print the plain-text version (the digest's) to stdout")
@_config_option
def report_cmd(
    out: Path, min_severity: str, owners: tuple[str, ...], sources: tuple[str, ...], as_text: bool, config_path: str | None
) -> None:
    """Write the on-call report: failing now (by severity, owner), a 9-day heatmap, flaky checks,
    slowest and regressing jobs, open alerts and tickets, read from the audit views."""
    from .alerting.redact import redact
    from .audit.sinks.duckdb import DuckDBSink
    from .report import ReportFilters, fetch_report, render_text, write_report

    sink = _trail(config_path).sink
    if isinstance(sink, DuckDBSink) and not sink.path.is_file():
        click.echo(f"error: no audit trail at {sink.path}: run the demo or `{_init_command(config_path)}`", err=True)
        sys.exit(1)
    filters = ReportFilters(min_severity=min_severity.upper(), owners=owners, sources=sources)
    try:
        data = fetch_report(sink, filters=filters, where=_where(sink))
    except Exception as exc:  # DuckDB / BigQuery errors: say where
        reason = (redact(exc).strip().splitlines() or [type(exc).__name__])[0]
        click.echo(f"error: cannot read the audit trail at {_where(sink)}: {reason}", err=True)
        sys.exit(1)
    write_report(data, out)
    counts = data.severity_counts
    click.echo(
        f"report written to {out}: {len(data.failing)} failing ({counts['CRITICAL']} critical), "
        f"{len(data.open_alerts)} open alerts, {len(data.flaky)} flaky",
        err=True,
    )
    if as_text:
        click.echo(render_text(data), nl=False)


@main.command("export")
@click.option("--out", "url", help="folder or fsspec URL (./exports, gs://bucket/path, s3://bucket/path); default: the config's export.url")
@click.option("--days", type=click.IntRange(1, 400), help="days of history, ending now (default: the config's export.days, else 7)")
@click.option("--format", "formats", multiple=True, type=click.Choice(["parquet", "csv"]), help="repeatable; default: both")
@_config_option
def export_cmd(url: str | None, days: int | None, formats: tuple[str, ...], config_path: str | None) -> None:
    """Write the last N days of runs, asset-check evaluations, dbt tests and external jobs as
    Parquet and CSV: <out>/<table>/export_date=YYYY-MM-DD/part.parquet (docs/bi_export.md)."""
    from .alerting.redact import redact
    from .audit.sinks.duckdb import DuckDBSink
    from .report.export import EXPORT_TABLES, FORMATS, export_audit

    configured = _load(config_path).export if config_path else None
    url = url or (configured.url if configured else None)
    if not url:
        click.echo("error: give --out URL (or an export: section in --config)", err=True)
        sys.exit(2)
    sink = _trail(config_path).sink
    if isinstance(sink, DuckDBSink) and not sink.path.is_file():
        click.echo(f"error: no audit trail at {sink.path}: run the demo or `{_init_command(config_path)}`", err=True)
        sys.exit(1)
    try:
        result = export_audit(
            sink,
            url,
            days=days or (configured.days if configured else 7),
            formats=formats or (configured.formats if configured else FORMATS),
            tables=configured.tables if configured else EXPORT_TABLES,
        )
    except ImportError as exc:  # gs:// without gcsfs, s3:// without s3fs
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # DuckDB / BigQuery / storage errors: say where
        reason = (redact(exc).strip().splitlines() or [type(exc).__name__])[0]
        click.echo(f"error: export from {_where(sink)} to {url} failed: {reason}", err=True)
        sys.exit(1)
    click.echo(result.summary(), err=True)
    for path in result.files:
        click.echo(path)


def _plain(value: object) -> object:
    """A value for JSON and CSV: full, timestamps as ISO 8601 in UTC."""
    if isinstance(value, datetime):
        return utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return str(value)


def format_json(columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> str:
    """A JSON array of one object per row, every column, full values."""
    return json.dumps([{c: _plain(v) for c, v in zip(columns, row, strict=True)} for row in rows], indent=2, ensure_ascii=False)


def format_csv(columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> str:
    """CSV with a header row, every column, full values; booleans as true/false, NULL as empty."""

    def cell(value: object) -> object:
        value = _plain(value)
        if isinstance(value, bool):
            return "true" if value else "false"
        return json.dumps(value, ensure_ascii=False) if isinstance(value, (list, dict)) else value

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([cell(v) for v in row] for row in rows)
    return out.getvalue()


def format_view(view: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]], *, wide: bool = False, more: bool = False) -> str:
    """The table ``audit query`` prints: the view's chosen columns under short headers, fitted to
    100 characters (``wide``: every column under its name, nothing cut)."""
    layout = LAYOUTS.get(view, TABLE_LAYOUT)
    chosen = [(c, c) for c in columns] if wide or not layout.columns else [(c, h) for c, h in layout.columns if c in columns]
    index = [columns.index(c) for c, _ in chosen]
    cells = [tuple(_rate(r[i]) if columns[i].endswith("_rate") else r[i] for i in index) for r in rows]
    note = "more rows: raise --limit (0: all)" if more else ""
    headers = [h for _, h in chosen]
    if wide:
        return format_table(headers, cells, max_width=None, note=note)
    if not layout.columns:
        return format_table(headers, cells, max_width=TABLE_CELL_WIDTH, seconds=False, note=note)
    cut = {h: layout.cut[c] for c, h in chosen if c in layout.cut}
    return format_table(headers, cells, max_width=None, width=TABLE_WIDTH, cut=cut, seconds=False, note=note)


class _Percent(float):
    """A ``*_rate`` value (0..1) the table shows as a percentage."""


def _rate(value: object) -> object:
    return _Percent(value) if isinstance(value, (float, Decimal, int)) and not isinstance(value, bool) else value


def _cell(value: object, seconds: bool = True) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return utc(value).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    if isinstance(value, date):  # vw_run_summary.run_date; date.isoformat takes no arguments
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _Percent):
        return f"{value * 100:.1f}%"
    if isinstance(value, (float, Decimal)):
        return f"{float(value):.1f}"
    return " ".join(str(value).split())  # newlines and runs of blanks would break the rows


def format_table(
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    max_width: int | None = 60,
    *,
    width: int | None = None,
    cut: Mapping[str, int] | None = None,
    seconds: bool = True,
    note: str = "",
) -> str:
    """A plain-text table. Cells longer than ``max_width`` are cut with an ellipsis; with
    ``width``, the widest of the ``cut`` columns (default: any) loses a character until the
    table fits, first down to the width ``cut`` keeps for it, then down to its header. Timestamps print in UTC, without microseconds (``seconds=False``: to the
    minute), numbers with one decimal, numeric columns right-aligned."""
    cells = [[_cell(v, seconds) for v in row] for row in rows]
    if max_width is not None:
        cells = [[truncate(c, max_width) for c in row] for row in cells]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    if width is not None:
        budget = width - 2 * (len(columns) - 1)
        cuttable = [i for i, c in enumerate(columns) if cut is None or c in cut]
        least = {i: max(len(columns[i]), 3) for i in cuttable}  # the header stays whole
        for floor in ({i: max(least[i], (cut or {}).get(columns[i], 8)) for i in cuttable}, least):
            while sum(widths) > budget:  # the widest loses a character; on a tie the rightmost
                shrinking = [i for i in cuttable if widths[i] > floor[i]]
                if not shrinking:
                    break
                widths[max(shrinking, key=lambda i: (widths[i], i))] -= 1
    numeric = [
        bool(rows) and all(isinstance(r[i], (int, float, Decimal)) and not isinstance(r[i], bool) for r in rows if r[i] is not None)
        for i in range(len(columns))
    ]

    def line(values: Sequence[str]) -> str:
        fitted = [truncate(v, w) for v, w in zip(values, widths, strict=True)]
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(fitted, widths, numeric, strict=True)).rstrip()

    timed = any(isinstance(v, datetime) for row in rows for v in row)
    footer = f"{len(rows)} row{'s' if len(rows) != 1 else ''}" + (", times in UTC" if timed else "") + (f"; {note}" if note else "")
    out = [line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells]
    out.append(f"({footer})")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    main()
