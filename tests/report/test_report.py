"""The on-call report from a real DuckDB audit trail (rows written through AuditTrail), its
filters, the CLI, the page rendered in Chromium, and the same queries on the BigQuery emulator."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from dagster_monitoring.audit.sinks.bigquery import BigQuerySink
from dagster_monitoring.audit.spool import Spool
from dagster_monitoring.audit.trail import AuditTrail
from dagster_monitoring.card_preview import chromium, find_chromium, screenshot
from dagster_monitoring.report import ReportFilters, fetch_report, render_html, render_text

from ..helpers.bigquery import bq_emulator  # noqa: F401
from . import story
from .conftest import write_story

REPO = Path(__file__).resolve().parents[2]


def summary(data):
    return {
        "failing": [(r["severity"], r["entity_type"], r["entity"], r["owners"]) for r in data.failing],
        "owners": [(o.owner, dict(o.counts)) for o in data.owners],
        "heatmap": [(h.entity, h.total, h.cells[-1]) for h in data.heatmap],
        "flaky": [(r["entity"], int(r["flips"])) for r in data.flaky],
        "slowest": [t.job for t in data.slowest],
        "regressing": [(t.job, round(t.ratio or 0, 2)) for t in data.regressing],
        "alerts": [(a["entity"], a["ticket_key"]) for a in data.open_alerts],
    }


EXPECTED = {
    "failing": [
        ("CRITICAL", "dbt_test", "unique_fct_loans_loan_id", "team:data-eng"),
        ("ERROR", "job", "ingest_loans", "team:data-eng"),
        ("WARN", "asset_check", "loans/fct_loans:row_count_ok", "team:credit"),
    ],
    "owners": [
        ("team:data-eng", {"CRITICAL": 1, "ERROR": 1, "WARN": 0}),
        ("team:credit", {"CRITICAL": 0, "ERROR": 0, "WARN": 1}),
    ],
    "heatmap": [("loans/fct_loans:row_count_ok", 5, 1), ("ingest_loans", 2, 2), ("unique_fct_loans_loan_id", 1, 1)],
    "flaky": [("loans/fct_loans:row_count_ok", 9)],
    "slowest": ["nightly_export", "ingest_loans", "healthy_job"],
    "regressing": [("ingest_loans", 2.45)],
    "alerts": [("ingest_loans", "DM-42")],
}


def test_report_reads_every_section_from_the_views(story_trail):
    data = fetch_report(story_trail.sink, now=story.NOW)
    assert summary(data) == EXPECTED
    assert len(data.heatmap_days) == 9 and data.heatmap_days[-1] == story.NOW.date()
    assert data.tickets == ["DM-42"] and not data.nothing_failing
    assert data.external.available and data.external.rows == []  # the story has no external jobs


def test_filters_narrow_every_section(story_trail):
    credit = fetch_report(story_trail.sink, filters=ReportFilters(owners=("team:credit",)))
    assert [r["entity"] for r in credit.failing] == ["loans/fct_loans:row_count_ok"]
    assert [h.entity for h in credit.heatmap] == ["loans/fct_loans:row_count_ok"]
    assert credit.slowest == [] and credit.open_alerts == []
    severe = fetch_report(story_trail.sink, filters=ReportFilters(min_severity="ERROR"))
    assert [r["severity"] for r in severe.failing] == ["CRITICAL", "ERROR"]
    jobs = fetch_report(story_trail.sink, filters=ReportFilters(sources=("job",)))
    assert [r["entity"] for r in jobs.failing] == ["ingest_loans"] and [t.job for t in jobs.regressing] == ["ingest_loans"]
    assert [h.entity for h in jobs.heatmap] == ["ingest_loans"]


def test_html_is_self_contained_and_escapes_trail_text(story_trail):
    page = render_html(fetch_report(story_trail.sink))
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # nothing fetched: no stylesheet, script or image from anywhere; links are only the run pages
    assert not re.search(r"<(link|script|img)\b", page)
    assert set(re.findall(r'(?:src|href)="([^"]+)"', page)) <= {story.URL + "il-0-2", story.URL + "ck-0"}
    assert page.count('class="hm"') == 27 and page.count("<svg") == 4  # 3 entities x 9 days; 3 slowest + 1 regressing


def test_text_version_names_what_fails(story_trail):
    text = render_text(fetch_report(story_trail.sink))
    assert "[CRITICAL] dbt_test unique_fct_loans_loan_id — owners: team:data-eng" in text
    assert "- ingest_loans: 62 s -> 152 s (×2.45)" in text
    assert "ticket DM-42" in text and "EXTERNAL JOBS\nNo external job runs." in text


def test_external_jobs_are_listed_failing_first_with_their_failures(tmp_path):
    from dagster_monitoring.audit.records import ExternalJobRunRecord

    def ext(job: str, status: str, hours: float, severity: str | None = None) -> ExternalJobRunRecord:
        return ExternalJobRunRecord.build(
            event_ts=story.NOW - timedelta(hours=hours),
            source="fivetran",
            job_id=job,
            job_name=job,
            run_id=f"{job}-{hours}",
            status=status,
            failed=status == "failed",
            severity=severity,
            fingerprint=f"fivetran:sync:{job}",
            owners="team:data-eng",
            message="permission denied for table loans" if status == "failed" else None,
        )

    trail = write_story(tmp_path)
    trail.write([ext("warehouse_pg", "failed", 3, "ERROR"), ext("warehouse_pg", "failed", 1, "ERROR"), ext("crm", "succeeded", 2)])
    data = fetch_report(trail.sink, now=story.NOW)
    assert [(r["job_name"], r["last_status"], r["failures_9d"]) for r in data.external.rows] == [
        ("warehouse_pg", "failed", 2),
        ("crm", "succeeded", 0),
    ]
    assert "- fivetran warehouse_pg: failed, 2 failure(s) in 9 days — owners: team:data-eng" in render_text(data)
    assert ">warehouse_pg</td>" in render_html(data)
    severe = fetch_report(trail.sink, now=story.NOW, filters=ReportFilters(min_severity="ERROR"))
    assert [r["job_name"] for r in severe.external.rows] == ["warehouse_pg"]


def test_cli_writes_the_report(story_trail, tmp_path):
    config = tmp_path / "monitoring.yaml"
    config.write_text(f"audit: {{duckdb_path: {story_trail.sink.path}, spool_dir: {tmp_path / 'spool'}}}\n")
    out = tmp_path / "out" / "report.html"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(
        ["dagster-monitoring", "report", "--out", str(out), "--config", str(config), "--text", "--owner", "team:data-eng"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "report written to" in proc.stderr and "2 failing (1 critical)" in proc.stderr
    assert "unique_fct_loans_loan_id" in out.read_text() and "row_count_ok" not in proc.stdout


def test_cli_without_a_trail_creates_nothing(tmp_path):
    from click.testing import CliRunner

    from dagster_monitoring.cli import main

    config = tmp_path / "m.yaml"
    config.write_text(f"audit: {{duckdb_path: {tmp_path / 'none.duckdb'}}}\n")
    result = CliRunner().invoke(main, ["report", "--out", str(tmp_path / "r.html"), "--config", str(config)])
    assert result.exit_code == 1 and "no audit trail at" in result.output
    assert not (tmp_path / "none.duckdb").exists() and not (tmp_path / "r.html").exists()


PROBE = """
<script>
window.addEventListener('load', () => {
  const rows = [...document.querySelectorAll('tr.failing-row')].map(tr => ({
    entity: tr.dataset.entity, owners: tr.querySelector('.owners').textContent,
    severity: tr.querySelector('.sev').textContent}));
  const cells = [...document.querySelectorAll('td.hm')];
  const filled = cells.filter(c => c.dataset.failures && c.dataset.failures !== '0');
  const out = {rows, cells: cells.length, filled: filled.map(c => [c.closest('tr').dataset.entity, c.dataset.failures,
    getComputedStyle(c).backgroundColor]), width: document.documentElement.scrollWidth, svgs: document.querySelectorAll('svg polyline').length,
    hook: (document.getElementById('external-hook') || {}).textContent || ''};
  const pre = document.createElement('pre'); pre.id = 'dm-result'; pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});
</script>
"""


@pytest.mark.chromium
def test_report_renders_in_chromium(story_trail, tmp_path):
    exe = find_chromium()
    if exe is None:
        pytest.skip("needs chromium")
    page = render_html(fetch_report(story_trail.sink, where="audit.duckdb"))
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = chromium(exe, "--window-size=1100,1500", "--dump-dom", probe.as_uri()).stdout
    result = json.loads(re.search(r'<pre id="dm-result">(.*?)</pre>', dom, re.S).group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert [(r["severity"], r["entity"], r["owners"]) for r in result["rows"]] == [(s, e, o) for s, _t, e, o in EXPECTED["failing"]]
    assert result["cells"] == 27 and result["svgs"] == 4
    filled = {(e, n) for e, n, _bg in result["filled"]}
    assert ("ingest_loans", "2") in filled and ("unique_fct_loans_loan_id", "1") in filled
    assert all(bg != "rgba(0, 0, 0, 0)" for _e, _n, bg in result["filled"])  # coloured by the inline style
    assert result["width"] <= 1100  # nothing wider than the window
    assert result["hook"] == ""  # the view exists: no "not available" box
    out = tmp_path / "report.html"
    out.write_text(page, encoding="utf-8")
    png = screenshot(exe, out, Path(os.environ.get("DM_REPORT_PNG", tmp_path / "report.png")), 1450, width=1100)
    assert png.stat().st_size > 20_000


def test_the_report_queries_run_on_the_bigquery_emulator(bq_emulator, story_trail):  # noqa: F811
    sink = BigQuerySink(
        f"report_{uuid.uuid4().hex[:10]}", project=bq_emulator.project, api_endpoint=bq_emulator.endpoint, retry_deadline=3, timeout=30
    )
    sink.init()
    try:
        trail = AuditTrail(sink, Spool(Path(story_trail.spool.directory).parent / f"bq-spool-{uuid.uuid4().hex[:6]}"))
        assert trail.write(story.records()).spooled == 0
        bq = fetch_report(sink, now=story.NOW)
        assert summary(bq) == EXPECTED
        assert render_html(bq).count('class="hm"') == 27
    finally:
        sink.close()
