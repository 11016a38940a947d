"""Where the example project keeps its files: one folder, nothing written into the repo.

Everything lives under ``DM_EXAMPLE_HOME`` (default ``$DAGSTER_HOME/dagster_monitoring/example``,
else ``./.dagster_monitoring/example``): the landing folder the loader reads, the DuckDB warehouse
dlt and dbt share, dbt's target folder, dlt's pipeline state and the alerts file. The monitoring's
alert state and audit file stay where the package keeps them by default
(``$DAGSTER_HOME/dagster_monitoring``), so ``dagster-monitoring audit query`` finds them.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..alerting.config import default_home
from ..shipped import shipped_dir

HOME_ENV = "DM_EXAMPLE_HOME"
WAREHOUSE_ENV = "DM_DBT_DUCKDB_PATH"  # read by dbt_project/profiles.yml
EXTRACTS = ("loans.csv", "repayments.csv")
PARTNER_FILE = "partner_payments.csv"


@dataclass(frozen=True)
class ExampleSettings:
    home: Path

    @classmethod
    def from_env(cls) -> ExampleSettings:
        configured = os.environ.get(HOME_ENV)
        return cls(Path(configured).expanduser().resolve() if configured else (default_home() / "example").resolve())

    @property
    def dbt_project_dir(self) -> Path:
        return shipped_dir("dbt_project")

    @property
    def landing_dir(self) -> Path:
        return self.home / "landing"

    @property
    def warehouse(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def dlt_dir(self) -> Path:
        return self.home / "dlt"

    @property
    def dbt_target(self) -> Path:
        return self.home / "dbt_target"

    @property
    def alerts_file(self) -> Path:
        return self.home / "alerts.jsonl"

    def prepare(self) -> ExampleSettings:
        """Create the landing folder and seed it from the shipped extracts, once: a file missing
        later (the partner's, on a bad morning) stays missing, however often the code reloads."""
        if not self.landing_dir.exists():
            seed_landing(self)
        return self


def seed_landing(settings: ExampleSettings) -> None:
    """A good morning's landing folder: the shipped extracts and the partner's daily file (the
    repayments they collected on the lender's behalf)."""
    settings.landing_dir.mkdir(parents=True, exist_ok=True)
    for name in EXTRACTS:
        shutil.copyfile(settings.dbt_project_dir / "data" / name, settings.landing_dir / name)
    (settings.landing_dir / PARTNER_FILE).write_text("partner_ref,loan_id,amount\nP-1,L-0001,135.78\nP-2,L-0002,366.21\n", encoding="utf-8")
