"""Folders kept at the top of the repository and shipped inside the wheel.

``audit_sql/`` (the single copy of the SQL) and ``dbt_project/`` (the example dbt project) live at
the repo root so they read as first-class parts of the project; the wheel maps them into the
package (``dagster_monitoring.audit_sql``, ``dagster_monitoring.dbt_project``). An editable install
does not map them, so a checkout falls back to the repo folder.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shipped_dir(name: str) -> Path:
    """``dagster_monitoring/<name>`` when installed from a wheel, else ``<repo>/<name>``."""
    packaged = resources.files("dagster_monitoring") / name
    if packaged.is_dir():
        return Path(str(packaged))
    fallback = REPO_ROOT / name
    if not fallback.is_dir():
        raise FileNotFoundError(f"dagster_monitoring: {name}/ is neither packaged nor next to the package ({fallback})")
    return fallback
