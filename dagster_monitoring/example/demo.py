"""``dagster-monitoring demo``: the example project goes green, breaks, and is fixed, for real.

Everything runs in one Dagster home (a temporary folder, or ``--home``): real runs of the
example's jobs on a real instance, then one tick of the monitoring sensors (Dagster's own
``build_sensor_context``; the same sensors ``dagster dev`` runs every 30 s). Three things break
at once, as they do on a bad morning: the loan extract arrives with a loan that has no principal
and a new ``currency`` column (a critical dbt test fails, dlt's schema changes), and the
partner's payments file does not arrive (a plain job raises). The fix restores both.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from ..alerting.config import read_yaml, validate_config
from ..alerting.notification import Notification
from ..alerting.text import truncate
from ..alerting.transports.teams_card import build_card
from ..card_preview import Preview, write_preview
from ..config import MonitoringConfig
from .project import build_example_defs, example_monitoring_config
from .settings import PARTNER_FILE, ExampleSettings, seed_landing

DEMO_FILE_RECEIVER = "dagster-monitoring-demo-file"
DEMO_MARKER = "# written by dagster-monitoring demo"
ALERT_SENSOR = "dagster_monitoring_alerts"
AUDIT_SENSOR = "dagster_monitoring_audit"
JOBS = ("lender_daily", "import_partner_payments")
BAD_LOAN = {
    "loan_id": "L-0999",
    "customer_id": "C-999",
    "product": "personal",
    "principal_amount": "",
    "annual_rate_pct": "11.90",
    "term_months": "12",
    "disbursed_on": "2025-06-01",
    "status": "frozen",
}

Echo = Callable[[str], None]


@dataclass
class Phase:
    name: str
    runs: dict[str, bool]  # job -> succeeded
    alerts: list[dict[str, Any]]  # what the file receiver wrote in this phase
    recent_failures: tuple[list[str], list[tuple[Any, ...]]]
    preview: Preview | None = None
    seconds: float = 0.0  # runs + sensor tick + view query (not the preview)


@dataclass
class DemoResult:
    home: Path
    alerts_file: Path
    audit_file: Path
    previews_dir: Path
    log_file: Path
    phases: dict[str, Phase] = field(default_factory=dict)
    seconds: float = 0.0


class DemoHomeError(RuntimeError):
    """The folder given as the demo's home holds a Dagster instance the demo did not make."""


def read_user_config(path: Path | None) -> dict[str, Any] | None:
    """The user's monitoring file, read once and validated as a file (a literal secret is
    refused, every bad field named) before the demo touches anything."""
    if path is None:
        return None
    raw = dict(read_yaml(path))
    validate_config(MonitoringConfig, raw, str(path))
    return raw


def demo_config(settings: ExampleSettings, user_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The example's local config, or the user's (their Teams / e-mail receivers, as read by
    :func:`read_user_config`) with the demo's file receiver in front of it.

    Only its receivers, routes, owners, default receivers, policy, silences and delivery
    are used: alert state and the audit trail stay in the demo's home (DuckDB, even when the file
    says BigQuery), its ``checks`` are for its own assets, and links point at the local
    webserver, since the demo's run ids exist only there. The flap window is 0 s so recoveries
    are announced on the next tick (production default: 15 min)."""
    local = example_monitoring_config(settings)
    config = dict(local)
    if user_config is not None:
        config = {k: v for k, v in user_config.items() if k not in ("state", "audit", "checks")}
        routes = [{"receivers": [DEMO_FILE_RECEIVER], "continue": True}, *config.get("routes", [])]
        if config.get("default_receivers"):  # the demo's route matches everything; keep the fallback reachable
            routes.append({"receivers": list(config["default_receivers"])})
        config["receivers"] = [{**local["receivers"][0], "name": DEMO_FILE_RECEIVER}, *config.get("receivers", [])]
        config["routes"] = routes
        config["dagster_base_url"] = local["dagster_base_url"]
    config["policy"] = {**config.get("policy", {}), "flap_window": "0s"}
    return config


def break_extracts(settings: ExampleSettings) -> None:
    """A bad loan (no principal, an unknown status) and a new column in the loan extract; no partner file."""
    clean = settings.dbt_project_dir / "data" / "loans.csv"
    with clean.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rows.append(dict(BAD_LOAN))
    with (settings.landing_dir / "loans.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*rows[0].keys(), "currency"])
        writer.writeheader()
        writer.writerows({**row, "currency": "EUR"} for row in rows)
    (settings.landing_dir / PARTNER_FILE).unlink(missing_ok=True)


class Demo:
    """The example's definitions on one instance, with the alert and audit sensors ticked by hand."""

    def __init__(self, settings: ExampleSettings, user_config: Mapping[str, Any] | None) -> None:
        self.settings = settings
        self.log_file = settings.home / "demo.log"
        with captured_output(self.log_file):  # a dbt parse when the manifest is missing or stale
            self.defs = build_example_defs(settings, monitoring=demo_config(settings, user_config))
        self.repo = self.defs.get_repository_def()
        self.trail = (self.defs.resources or {})["audit"].get_trail()
        self.instance = dg.DagsterInstance.get()
        self.sensors = {s.name: s for s in self.defs.sensors or ()}
        self.cursors: dict[str, str | None] = {}
        self.alerts_seen = 0  # the home is new (prepare_home), so is its alerts file

    def _alert_lines(self) -> list[str]:
        path = self.settings.alerts_file
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    def close(self) -> None:
        self.instance.dispose()

    def audit_file(self) -> Path:
        return Path(self.trail.sink.path)

    def tick(self) -> None:
        with captured_output(self.log_file):  # what delivery logs goes to the log file too
            self._tick()

    def _tick(self) -> None:
        for name in (ALERT_SENSOR, AUDIT_SENSOR):
            context = dg.build_sensor_context(instance=self.instance, cursor=self.cursors.get(name), repository_def=self.repo)
            self.sensors[name](context)
            self.cursors[name] = context.cursor

    def run_jobs(self) -> dict[str, bool]:
        outcome = {}
        with captured_output(self.log_file):
            for job in JOBS:
                result = self.defs.resolve_job_def(job).execute_in_process(instance=self.instance, raise_on_error=False)
                outcome[job] = result.success
        return outcome

    def new_alerts(self) -> list[dict[str, Any]]:
        lines = self._alert_lines()
        fresh = [json.loads(line) for line in lines[self.alerts_seen :]]
        self.alerts_seen = len(lines)
        return fresh

    def recent_failures(self) -> tuple[list[str], list[tuple[Any, ...]]]:
        return self.trail.sink.query_view("vw_recent_failures")

    def phase(self, name: str, prepare: Callable[[ExampleSettings], None]) -> Phase:
        started = time.monotonic()
        prepare(self.settings)
        runs = self.run_jobs()
        self.tick()
        phase = Phase(name, runs, self.new_alerts(), self.recent_failures())
        phase.seconds = time.monotonic() - started
        return phase


@contextlib.contextmanager
def captured_output(log_file: Path) -> Iterator[None]:
    """Dagster's run logs and dbt's output go to ``log_file``, so the terminal shows the story.

    dagster-dbt writes dbt's lines to ``sys.stdout``, Dagster's console logger to ``sys.stderr``
    (its handler is made when a run starts), and library loggers propagate to the root logger."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    with log_file.open("a", encoding="utf-8") as handle:
        file_handler = logging.StreamHandler(handle)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        saved = root.handlers[:]
        root.handlers = [file_handler]
        try:
            with contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
                yield
        finally:
            root.handlers = saved


def alert_line(alert: Mapping[str, Any], indent: str = "  ") -> str:
    """One alert as the terminal shows it: badge, source/kind, entity, owners; a grouped message
    is its lead, then its members and the alerts folded into it, one line each under it."""
    event = alert["event"]
    badge = "RECOVERED" if alert["transition"] == "recovered" else f"{alert['severity'].upper()} {alert['transition']}"
    owners = ", ".join(event.get("owners") or ()) or "no owner"
    line = f"{indent}{badge:<13} {event['source'] + '/' + event['kind']:<18} {truncate(event['entity'], 60):<60}  {owners}"
    members = [alert_line(m, "    + ") for m in alert.get("members") or ()]
    affected = [alert_line(m, "    also affected: ") for m in alert.get("also_affected") or ()]
    return "\n".join([line, *members, *affected])


def print_failures(echo: Echo, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    from ..cli import format_table

    keep = [c for c in ("entity_type", "entity", "severity", "failures_in_streak", "last_error") if c in columns]
    index = [columns.index(c) for c in keep]
    echo(format_table(keep, [tuple(r[i] for i in index) for r in rows], max_width=70))


def previews(phase: Phase, out_dir: Path) -> Preview | None:
    cards = [build_card(Notification.from_dict(a)) for a in phase.alerts]
    return write_preview(cards, out_dir / f"{phase.name}.html") if cards else None


def prepare_home(home: Path | None) -> Path:
    """A new temporary home, or ``home`` if it is new, empty, or the demo's own from an earlier
    run, which is started over (the checks compare with history, so a second story on top of the
    first would differ). Anything else is refused: the demo never writes runs, alert state and
    audit rows into a real Dagster home, and only ever deletes a folder it made."""
    home = (home or Path(tempfile.mkdtemp(prefix="dagster-monitoring-demo-"))).resolve()
    instance_yaml = home / "dagster.yaml"
    if home.is_dir() and any(home.iterdir()):
        if not (instance_yaml.is_file() and DEMO_MARKER in instance_yaml.read_text(encoding="utf-8")):
            raise DemoHomeError(f"{home} is not empty and was not made by the demo; give --home a new or empty folder")
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    if not instance_yaml.exists():  # SQLite storage in the home (Dagster's default); no telemetry, no UI welcome dialog
        instance_yaml.write_text(f"{DEMO_MARKER}\ntelemetry:\n  enabled: false\nnux:\n  enabled: false\n", encoding="utf-8")
    return home


def shell_command(env: Mapping[str, Path], executable: str, *args: str) -> str:
    """A command to paste: this Python's own scripts (the venv need not be active), quoted."""
    assignments = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items())
    return " ".join([assignments, shlex.quote(str(Path(sys.executable).parent / executable)), *args])


def run_demo(home: Path | None = None, config: Path | None = None, echo: Echo = print) -> DemoResult:
    """Run the whole story; returns what happened (the tests assert on it). The process
    environment (``DAGSTER_HOME`` and the variables the example sets) is restored afterwards."""
    user_config = read_user_config(config)  # a bad file fails here, before the home is touched
    saved = dict(os.environ)
    try:
        return _run_demo(prepare_home(home), config, user_config, echo)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _run_demo(home: Path, config: Path | None, user_config: Mapping[str, Any] | None, echo: Echo) -> DemoResult:
    started = time.monotonic()
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.pop("DAGSTER_MONITORING_CONFIG", None)  # the demo's config is explicit
    echo(f"dagster-monitoring demo in {home}")
    if config is not None:
        echo(f"alerts go to the file receiver and to the receivers in {config}")
    echo("[1/5] loading the example project (dlt -> dbt -> checks, monitoring merged in) ...")
    settings = ExampleSettings(home / "dagster_monitoring" / "example").prepare()
    demo = Demo(settings, user_config)
    try:
        demo.tick()  # on a new instance: the alert sensor's first tick only sets its cursor
        result = DemoResult(home, settings.alerts_file, demo.audit_file(), settings.home / "previews", demo.log_file)
        steps = [
            ("green", "[2/5] green: the extracts are clean, the partner file is there", seed_landing),
            (
                "broken",
                "[3/5] broken: a loan without a principal and a new 'currency' column in the loan extract; no partner file",
                break_extracts,
            ),
            ("recovered", "[4/5] fixed: clean extracts, the partner file arrives", seed_landing),
        ]
        for name, title, prepare in steps:
            echo(title)
            phase = demo.phase(name, prepare)
            result.phases[name] = phase
            echo("  runs: " + ", ".join(f"{job} {'succeeded' if ok else 'FAILED'}" for job, ok in phase.runs.items()))
            incidents = sum(1 + len(a.get("members") or ()) + len(a.get("also_affected") or ()) for a in phase.alerts)
            echo(f"  sensors ticked; {len(phase.alerts)} message(s) sent for {incidents} alert(s)" + (":" if phase.alerts else ""))
            for alert in phase.alerts:
                echo(alert_line(alert))
            phase.preview = previews(phase, result.previews_dir)
            echo("  vw_recent_failures:" if phase.recent_failures[1] else "  vw_recent_failures: empty, nothing is failing")
            if phase.recent_failures[1]:
                print_failures(lambda text: echo("    " + text.replace("\n", "\n    ")), *phase.recent_failures)
    finally:
        demo.close()

    result.seconds = time.monotonic() - started
    echo(f"[5/5] done in {result.seconds:.0f} s")
    where = [("alerts (JSON lines)", str(result.alerts_file))]
    for phase in result.phases.values():
        if phase.preview:
            where.append((f"cards, {phase.name}", str(phase.preview.html)))
            where.append(("", str(phase.preview.png) if phase.preview.png else f"({phase.preview.note})"))
    homes = {"DAGSTER_HOME": home, "DM_EXAMPLE_HOME": settings.home}
    where += [
        ("audit trail (DuckDB)", str(result.audit_file)),
        ("Dagster and dbt logs", str(result.log_file)),
        ("what is failing", shell_command({"DAGSTER_HOME": home}, "dagster-monitoring", "audit", "query", "vw_recent_failures")),
        ("query the trail", shell_command({"DAGSTER_HOME": home}, "dagster-monitoring", "audit", "query", "vw_run_summary")),
        ("browse it", shell_command(homes, "dagster", "dev", "-m", "dagster_monitoring.example.definitions")),
    ]
    for label, value in where:
        echo(f"  {label:<21} {value}")
    return result
