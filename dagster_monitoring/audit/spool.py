"""A local spool for batches a sink could not take.

Each failed batch becomes one JSON-lines file (written to a temp name, then renamed, so a crash
never leaves half a batch). The next write replays the spool oldest first and deletes a file only
after the sink took it. Replaying is safe because ``event_id`` is deterministic: DuckDB drops
repeats, BigQuery views keep one row per ``event_id``.

A file that cannot be read now is left for a later call; one that can be read but not parsed
(e.g. written by a version whose records had other fields) is renamed ``*.unreadable`` and
logged, so it neither blocks the files after it nor disappears.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..alerting.redact import describe_error, get_logger
from .records import BY_TABLE, AuditRecord

_log = get_logger(__name__)
UNREADABLE_SUFFIX = ".unreadable"


class Spool:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def put(self, records: Sequence[AuditRecord]) -> Path:
        """Keep ``records`` as one file; raises ``OSError`` when the folder is not writable."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.jsonl"
        tmp = self.directory / f".{name}.tmp"
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                for record in records:
                    fh.write(json.dumps({"table": record.TABLE, "record": record.model_dump(mode="json")}) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            final = self.directory / name
            tmp.rename(final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return final

    def _files(self) -> list[Path]:
        try:
            return sorted(self.directory.glob("*.jsonl"))
        except OSError:
            return []

    def batches(self) -> Iterator[tuple[Path, list[AuditRecord]]]:
        """Spooled batches, oldest first."""
        for path in self._files():
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:  # unreadable now (permissions, I/O): try again on a later call
                _log.error("audit spool file %s could not be read, left for a later call: %s", path, describe_error(exc))
                continue
            try:
                records = []
                for line in text.splitlines():
                    if line.strip():
                        item = json.loads(line)
                        records.append(BY_TABLE[item["table"]].model_validate(item["record"]))
            except Exception as exc:  # JSON, an unknown table, a record that no longer validates
                self._quarantine(path, exc)
                continue
            yield path, records

    def _quarantine(self, path: Path, exc: Exception) -> None:
        target = path.with_name(path.name + UNREADABLE_SUFFIX)
        try:
            path.rename(target)
        except OSError as rename_exc:
            _log.error("audit spool file %s cannot be parsed (%s) nor renamed: %s", path, describe_error(exc), describe_error(rename_exc))
            return
        _log.error("audit spool file %s cannot be parsed, kept as %s and not replayed: %s", path, target, describe_error(exc))

    def remove(self, path: Path) -> None:
        """Delete a replayed file. If that fails it is replayed again later, which adds nothing."""
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            _log.warning("replayed audit spool file %s could not be deleted (a later replay is harmless): %s", path, describe_error(exc))

    def pending_rows(self) -> int:
        total = 0
        for path in self._files():
            try:
                with path.open(encoding="utf-8") as fh:
                    total += sum(1 for line in fh if line.strip())
            except OSError:
                continue
        return total

    def pending_files(self) -> int:
        return len(self._files())
