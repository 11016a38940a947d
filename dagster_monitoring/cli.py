"""``dagster-monitoring``: run the demo, check a config, send a test alert, query the audit trail."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .alerting.config import ConfigError
from .alerting.lifecycle import Transition
from .alerting.outbox import attempt_delivery
from .alerting.sample import sample_notification
from .alerting.text import truncate
from .alerting.transports import build_transports
from .config import MonitoringConfig, load_config

if TYPE_CHECKING:
    from .audit.trail import AuditTrail


def _load(path: str) -> MonitoringConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


@click.group()
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

    Needs the dbt and dlt extras: pip install 'dagster-monitoring[demo]'."""
    try:
        from .example.demo import DemoHomeError, run_demo
    except ImportError as exc:
        click.echo(f"error: the demo needs the dbt and dlt extras ({exc}); pip install 'dagster-monitoring[demo]'", err=True)
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
def validate_config_cmd(file: str) -> None:
    """Validate FILE; print every problem with the field it is in (exit 2 if any)."""
    config = _load(file)
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
def send_test(config_path: str, receiver: str, transition: str, dry_run: bool) -> None:
    """Send a sample failure alert through one receiver, to check its webhook or mailbox."""
    config = _load(config_path)
    try:
        receiver_config = config.receiver(receiver)
    except KeyError as exc:
        click.echo(f"error: {exc.args[0]}", err=True)
        sys.exit(2)
    transport = build_transports([receiver_config])[receiver]
    notification = sample_notification(receiver, Transition(transition), base_url=config.dagster_base_url or "http://localhost:3000")
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
    where = getattr(trail.sink, "path", None) or f"{getattr(trail.sink, 'project_id', '')}.{getattr(trail.sink, 'dataset', '')}"
    click.echo(f"audit trail ready at {where}: {len(schema.tables())} tables, {len(schema.views())} views")


@audit.command("query")
@click.argument("view")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@_config_option
def audit_query(view: str, limit: int, config_path: str | None) -> None:
    """Print VIEW (e.g. vw_recent_failures) as a table."""
    trail = _trail(config_path)
    try:
        columns, rows = trail.sink.query_view(view, limit)
    except KeyError as exc:
        click.echo(f"error: {exc.args[0]}", err=True)
        sys.exit(2)
    click.echo(format_table(columns, rows))


def format_table(columns: Sequence[str], rows: Sequence[tuple], max_width: int = 60) -> str:
    """A plain-text table; long values are cut with an ellipsis."""

    def cell(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, datetime):
            text = value.isoformat(sep=" ", timespec="seconds")
        elif isinstance(value, date):  # vw_run_summary.run_date; date.isoformat takes no arguments
            text = value.isoformat()
        else:
            text = str(value)
        return truncate(text.replace("\n", " "), max_width)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=False)).rstrip()  # noqa: E731
    out = [line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    main()
