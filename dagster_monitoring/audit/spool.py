"""A local spool for batches a sink could not take.

Each failed batch becomes one JSON-lines file (written to a temp name, then renamed, so a crash
never leaves half a batch). The next write replays the spool oldest first and deletes a file only
after the sink took it. Replaying is safe because ``event_id`` is deterministic: DuckDB drops
repeats, BigQuery views keep one row per ``event_id``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from .records import BY_TABLE, AuditRecord


class Spool:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def put(self, records: Sequence[AuditRecord]) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.jsonl"
        tmp = self.directory / f".{name}.tmp"
        with tmp.open("w", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps({"table": record.TABLE, "record": record.model_dump(mode="json")}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        final = self.directory / name
        tmp.rename(final)
        return final

    def batches(self) -> Iterator[tuple[Path, list[AuditRecord]]]:
        """Spooled batches, oldest first."""
        if not self.directory.exists():
            return
        for path in sorted(self.directory.glob("*.jsonl")):
            records = []
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    item = json.loads(line)
                    records.append(BY_TABLE[item["table"]].model_validate(item["record"]))
            yield path, records

    def pending_rows(self) -> int:
        if not self.directory.exists():
            return 0
        return sum(sum(1 for line in p.open(encoding="utf-8") if line.strip()) for p in self.directory.glob("*.jsonl"))

    def pending_files(self) -> int:
        return len(list(self.directory.glob("*.jsonl"))) if self.directory.exists() else 0
