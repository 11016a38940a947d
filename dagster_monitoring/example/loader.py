"""The loader: a dlt source over the loan book's CSV extracts in the landing folder.

Known columns are typed (amounts as decimals, dates, timestamps); an empty field is NULL; a
column the extract grows is passed through as text, so dlt adds it to the table and the
schema-drift check sees it.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import dlt

TYPES: dict[str, dict[str, Callable[[str], Any]]] = {
    "loans": {
        "principal_amount": Decimal,
        "annual_rate_pct": Decimal,
        "term_months": int,
        "disbursed_on": date.fromisoformat,
    },
    "repayments": {"paid_at": lambda v: datetime.fromisoformat(v.replace("Z", "+00:00")), "amount": Decimal},
}
PRIMARY_KEYS = {"loans": "loan_id", "repayments": "repayment_id"}


def read_extract(path: Path, types: dict[str, Callable[[str], Any]]) -> Iterator[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                yield {k: (None if v in ("", None) else types.get(k, str)(v)) for k, v in row.items()}
            except (ValueError, ArithmeticError) as exc:
                raise ValueError(f"{path.name} line {line}: {exc}") from exc


@dlt.source(name="lender_raw")
def lender_raw(landing_dir: str) -> Any:
    """One resource per extract, replaced on every load (the extracts are full snapshots)."""
    return [
        dlt.resource(
            read_extract(Path(landing_dir) / f"{table}.csv", TYPES[table]),
            name=table,
            write_disposition="replace",
            primary_key=PRIMARY_KEYS[table],
        )
        for table in ("loans", "repayments")
    ]
