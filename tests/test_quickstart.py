"""The README's two quick-start commands, as a newcomer runs them on a fresh clone.

``make demo`` runs for real in a ``git clone`` of this checkout (its own new .venv, installed by
the Makefile from the package registry). ``make test`` is what ``.ci/run`` runs on a clean clone,
so CI itself is its fresh-clone test; here we check that the README, the Makefile and ``.ci/run``
agree on it (running it from inside pytest would recurse)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def quickstart_commands() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def test_readme_has_two_commands_and_ci_runs_the_test_one():
    assert quickstart_commands() == ["make demo", "make test"]
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert ci[-1] == "make test"
    dry = subprocess.run(["make", "-n", "test"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert re.search(r"^\S*python -m pytest$", dry, flags=re.M), dry


@pytest.fixture
def fresh_clone(tmp_path):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    return clone


def test_make_demo_on_a_fresh_clone(fresh_clone, tmp_path):
    home = tmp_path / "demo-home"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "DAGSTER_HOME", "DAGSTER_MONITORING_CONFIG", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO)))
    proc = subprocess.run(
        ["make", "demo", f"DEMO_ARGS=--home {home}"], cwd=fresh_clone, env=env,
        capture_output=True, text=True, timeout=900, check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert (fresh_clone / ".venv" / "bin" / "dagster-monitoring").exists()  # the clone's own install
    for step in ("[2/5] green", "[3/5] broken", "[4/5] fixed", "[5/5] done"):
        assert step in output, output[-4000:]
    alerts = [json.loads(line) for line in (home / "dagster_monitoring" / "example" / "alerts.jsonl").read_text().splitlines()]
    assert [a["transition"] for a in alerts] == ["new"] * 2 + ["recovered"] * 2  # one card per run and phase
    assert (home / "dagster_monitoring" / "audit.duckdb").exists()
    assert "vw_recent_failures: empty" in output.split("[4/5]", 1)[1]
    assert "RUN_START" not in output and "Running with dbt" not in output  # Dagster's and dbt's output went to demo.log
    # the command the demo prints for querying the trail works as pasted
    query = next(line.split("query the trail", 1)[1].strip() for line in output.splitlines() if "query the trail" in line)
    summary = subprocess.run(query, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert summary.returncode == 0, summary.stderr[-2000:]
    assert "lender_daily" in summary.stdout and "import_partner_payments" in summary.stdout
    # nothing written into the clone but the venv, the npm renderer and the editable install's metadata
    status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=fresh_clone, capture_output=True, text=True).stdout
    allowed = ("!! .venv/", "!! tests/render/node_modules/", "!! dagster_monitoring.egg-info/")
    assert [line for line in status.splitlines() if line not in allowed and "__pycache__" not in line] == []
