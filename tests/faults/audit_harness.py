"""Audit-sink outages made real, as plain functions the tests and ``benchmarks/audit_ingest.py
--faults`` share.

Each scenario writes ``rows`` mixed records (the six tables) through an :class:`AuditTrail` in
``calls`` calls while the sink is down, the way the audit sensor does (a ``trail.session()`` per
call), ends the outage, flushes, then counts rows per ``event_id`` in the sink and returns::

    {"scenario", "rows_written", "rows_lost", "rows_doubled", "seconds_held", "trail_raised", ...}

``seconds_held``: from the first write of the outage until every row is in the sink.
Outages: (a) the DuckDB file locked by a second process holding a write connection, (b) a folder
the writer has no permission on (the writer runs as ``nobody`` in a subprocess: root ignores
permissions), (c) a regular file where the folder should be, and the folder deleted under a
running trail, (d) the BigQuery emulator stopped and started again. Nothing is mocked.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import select
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dagster_monitoring.audit.config import AuditConfig  # noqa: E402
from dagster_monitoring.audit.records import (  # noqa: E402
    AlertNotificationRecord,
    AssetCheckEvaluationRecord,
    AssetMaterializationRecord,
    AuditRecord,
    DbtTestResultRecord,
    DltLoadRecord,
    RunRecord,
)
from dagster_monitoring.audit.spool import Spool  # noqa: E402
from dagster_monitoring.audit.trail import AuditTrail  # noqa: E402

DATASET = "dagster_audit"
NOBODY = 65534
STEP_TIMEOUT = 60.0  # seconds any one step of a helper process may take

T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=2)  # inside every view's window


def mixed_records(n: int, prefix: str = "", t0: datetime | None = None) -> list[AuditRecord]:
    """``n`` valid records cycling through the six tables; ``prefix`` makes the event_ids unique
    (event_ids derive from the timestamps too, so a helper process is given the same ``t0``)."""
    out: list[AuditRecord] = []
    start = t0 or T0
    for i in range(n):
        ts = start + timedelta(seconds=i)
        kind = i % 6
        if kind == 0:
            out.append(
                RunRecord.build(
                    event_ts=ts,
                    run_id=f"{prefix}run-{i}",
                    job_name=f"job_{i % 40}",
                    status="FAILURE" if i % 12 == 0 else "SUCCESS",
                    duration_s=i % 300,
                    error_class="ValueError" if i % 12 == 0 else None,
                    error_message="negative principal" if i % 12 == 0 else None,
                    tags={"team": "data-eng"},
                    run_url=f"http://localhost:3000/runs/run-{i}",
                    owners="team:data-eng",
                )
            )
        elif kind == 1:
            out.append(
                AssetMaterializationRecord.build(
                    event_ts=ts,
                    run_id=f"{prefix}run-{i}",
                    asset_key=f"loans/asset_{i % 80}",
                    row_count=i,
                    metadata={"rows_loaded": i, "dagster/row_count": i},
                )
            )
        elif kind == 2:
            out.append(
                AssetCheckEvaluationRecord.build(
                    event_ts=ts,
                    run_id=f"{prefix}run-{i}",
                    asset_key=f"loans/asset_{i % 80}",
                    check_name="row_count_ok",
                    passed=i % 7 != 0,
                    severity="ERROR",
                    metadata={"row_count": i},
                )
            )
        elif kind == 3:
            out.append(
                DbtTestResultRecord.build(
                    event_ts=ts,
                    invocation_id=f"{prefix}inv-{i // 60}",
                    unique_id=f"test.lender.t{i}.abc",
                    test_name=f"t{i}",
                    model=f"model_{i % 30}",
                    status="pass" if i % 9 else "fail",
                    failures=0 if i % 9 else 3,
                    is_critical=i % 5 == 0,
                    tags=["critical"] if i % 5 == 0 else [],
                    execution_time_s=0.3,
                )
            )
        elif kind == 4:
            out.append(
                DltLoadRecord.build(
                    event_ts=ts,
                    pipeline_name=f"{prefix}loans_source",
                    load_id=f"{1700000000 + i}",
                    table_name=f"table_{i % 10}",
                    rows_loaded=i,
                    schema_changes={"added": []},
                )
            )
        else:
            out.append(
                AlertNotificationRecord.build(
                    event_ts=ts,
                    record_type="decision",
                    fingerprint=f"{prefix}dagster:run:job_{i % 40}",
                    incident_id=f"inc-{i % 40}",
                    transition="ongoing",
                    observation="continued",
                    receiver="teams",
                    severity="error",
                )
            )
    return out


def chunks(records: Sequence[AuditRecord], calls: int) -> list[Sequence[AuditRecord]]:
    size = -(-len(records) // calls)
    return [records[i : i + size] for i in range(0, len(records), size)]


def tally(expected: Sequence[AuditRecord], counts: collections.Counter[tuple[str, str]]) -> tuple[int, int]:
    """(rows lost, rows doubled): expected keys missing, and copies beyond the first."""
    keys = {(r.TABLE, r.event_id) for r in expected}
    lost = sum(1 for k in keys if counts.get(k, 0) == 0)
    doubled = sum(c - 1 for c in counts.values() if c > 1)
    return lost, doubled


def duckdb_counts(path: Path, dataset: str = DATASET) -> collections.Counter[tuple[str, str]]:
    """Rows per (table, event_id) in a DuckDB audit file, read-only."""
    import duckdb

    from dagster_monitoring.audit import schema

    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    if not path.exists():
        return counts
    con = duckdb.connect(str(path), read_only=True)
    try:
        for table in schema.tables():
            for event_id, n in con.execute(f'SELECT event_id, count(*) FROM "{dataset}"."{table.name}" GROUP BY event_id').fetchall():
                counts[(table.name, event_id)] = n
    finally:
        con.close()
    return counts


def _result(
    scenario: str, written: Sequence[AuditRecord], counts: collections.Counter, held_from: float, raised: int, **extra: Any
) -> dict:
    lost, doubled = tally(written, counts)
    return {
        "scenario": scenario,
        "rows_written": len(written),
        "rows_lost": lost,
        "rows_doubled": doubled,
        "seconds_held": round(time.monotonic() - held_from, 2),
        "trail_raised": raised,
        **extra,
    }


class _LogCapture(logging.Handler):
    """The package's log messages (the trail's errors name the folder), for the result."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.messages.append(record.getMessage())


@contextlib.contextmanager
def captured_logs() -> Iterator[list[str]]:
    handler = _LogCapture()
    logger = logging.getLogger("dagster_monitoring")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def _write_calls(trail: AuditTrail, batches: Sequence[Sequence[AuditRecord]]) -> tuple[int, list[dict]]:
    """Write each batch as a sensor tick does; count exceptions that escaped the trail."""
    raised, results = 0, []
    for batch in batches:
        try:
            with trail.session():
                r = trail.write(batch)
            results.append({"spooled": r.spooled, "held": r.held, "replayed": r.replayed, "dropped": r.dropped})
        except Exception as exc:  # the trail must never raise for an outage; count it if it does
            raised += 1
            results.append({"error": f"{type(exc).__name__}: {exc}"})
    return raised, results


def _write_behind_calls(trail: AuditTrail, batches: Sequence[Sequence[AuditRecord]], rows: int) -> tuple[int, list[dict], dict]:
    """Write the batches in one ``trail.session(write_behind_rows=rows)``, as a caller that moves
    its cursor only after the session has ended; the last dict is the session's totals."""
    raised, results = 0, []
    try:
        with trail.session(write_behind_rows=rows) as session:
            for batch in batches:
                r = session.write(batch)
                results.append({"buffered": r.buffered, "spooled": r.spooled, "held": r.held})
        total = {"spooled": session.result.spooled, "held": session.result.held, "requests": session.result.requests}
    except Exception as exc:  # the trail must never raise for an outage; count it if it does
        raised += 1
        total = {"error": f"{type(exc).__name__}: {exc}"}
    return raised, results, total


def _flush(trail: AuditTrail) -> tuple[int, Any]:
    try:
        with trail.session():
            return 0, trail.flush()
    except Exception:
        return 1, None


def _duckdb_trail(folder: Path, spool: Path | None = None) -> AuditTrail:
    config = AuditConfig(duckdb_path=str(folder / "audit.duckdb"), spool_dir=str(spool or folder / "spool"), dataset=DATASET)
    return AuditTrail.from_config(config)


# ------------------------------------------------------------------------------------------------
# (a) the DuckDB file locked by another process
# ------------------------------------------------------------------------------------------------


def _readline(proc: subprocess.Popen, timeout: float = STEP_TIMEOUT) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        raise TimeoutError(f"helper process gave no answer within {timeout} s")
    line = proc.stdout.readline()
    if not line:
        err = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"helper process ended: {err[-2000:]}")
    return line.strip()


class FileLockedByAnotherProcess:
    """A second process holding a write connection on the DuckDB file (one writer per file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> FileLockedByAnotherProcess:
        code = textwrap.dedent(f"""
            import duckdb, sys
            con = duckdb.connect({str(self.path)!r})
            print("locked", flush=True)
            sys.stdin.read()
            con.close()
        """)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        if _readline(self.proc) != "locked":
            raise RuntimeError("the lock holder did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def duckdb_locked(workdir: Path, rows: int = 1200, calls: int = 6, write_behind: int = 0) -> dict:
    """``write_behind``: the calls in one ``trail.session(write_behind_rows=...)`` instead of a
    session each, so each flush fails on the lock and is spooled whole."""
    scenario = "duckdb_locked_write_behind" if write_behind else "duckdb_locked"
    folder = workdir / ("locked-wb" if write_behind else "locked")
    trail = _duckdb_trail(folder)
    trail.sink.init()
    records = mixed_records(rows, f"{folder.name}-")
    session: dict | None = None
    with captured_logs() as logs:
        started = time.monotonic()
        with FileLockedByAnotherProcess(folder / "audit.duckdb"):
            if write_behind:
                raised, during, session = _write_behind_calls(trail, chunks(records, calls), write_behind)
            else:
                raised, during = _write_calls(trail, chunks(records, calls))
            spooled_files = trail.spool.pending_files()
        flush_raised, _ = _flush(trail)
        result = _result(scenario, records, duckdb_counts(folder / "audit.duckdb"), started, raised + flush_raised)
    return {
        **result,
        "during": during,
        "session": session,
        "spooled_files": spooled_files,
        "left_in_spool": trail.spool.pending_rows(),
        "logs": logs,
    }


def duckdb_locked_write_behind(workdir: Path, rows: int = 1200, calls: int = 6) -> dict:
    """(a) for a write-behind session writing a table per twelfth of the rows (about every third
    call, for the six tables) and the rest at its end."""
    return duckdb_locked(workdir, rows, calls, write_behind=-(-rows // 12))


# ------------------------------------------------------------------------------------------------
# (b) no permission on the folder: the writer runs as an unprivileged user
# ------------------------------------------------------------------------------------------------

_CHILD = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from tests.faults import audit_harness as h
    cfg = json.loads(sys.argv[2])
    trail = h._duckdb_trail(h.Path(cfg["folder"]))
    records = h.mixed_records(cfg["rows"], cfg["prefix"], h.datetime.fromisoformat(cfg["t0"]))
    batches = h.chunks(records, cfg["calls"])
    print(json.dumps({"ready": True}), flush=True)
    with h.captured_logs() as logs:
        for line in sys.stdin:
            op = json.loads(line)
            if op["op"] == "write":
                raised, results = h._write_calls(trail, [batches[op["index"]]])
                answer = {"raised": raised, **results[0]}
            elif op["op"] == "flush":
                raised, r = h._flush(trail)
                answer = {"raised": raised, "replayed": r.replayed if r else None, "held": trail.held_rows}
            else:
                answer = {"logs": list(logs)}
            print(json.dumps(answer), flush=True)
            if op["op"] == "exit":
                break
""")


def _unprivileged() -> list[str]:
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def duckdb_permission_denied(workdir: Path | None = None, rows: int = 1200, calls: int = 6) -> dict:
    """The audit folder (DuckDB file and spool) belongs to root, mode 0755; the writer is nobody.
    The outage ends when the folder is given to nobody. It runs in a new folder of the system
    temp dir (``workdir`` is not used: nobody could not reach into pytest's 0700 folders)."""
    if os.geteuid() != 0:
        raise RuntimeError("this scenario switches to an unprivileged user: run it as root")
    base = Path(tempfile.mkdtemp(prefix="dm-audit-perm-"))
    try:
        return _permission_denied(base, rows, calls)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _permission_denied(base: Path, rows: int, calls: int) -> dict:
    folder = base / "audit"
    folder.mkdir()
    for path in (base, folder):
        path.chmod(0o755)
    home = base / "home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    records = mixed_records(rows, "perm-")
    cfg = {"folder": str(folder), "rows": rows, "calls": calls, "prefix": "perm-", "t0": T0.isoformat()}
    env = {**os.environ, "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen(
        [*_unprivileged(), sys.executable, "-c", _CHILD, str(ROOT), json.dumps(cfg)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(home),
    )

    def ask(op: dict) -> dict:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(op) + "\n")
        proc.stdin.flush()
        return json.loads(_readline(proc))

    try:
        if not json.loads(_readline(proc)).get("ready"):
            raise RuntimeError("the unprivileged writer did not start")
        started = time.monotonic()
        during = [ask({"op": "write", "index": i}) for i in range(len(chunks(records, calls)))]
        os.chown(folder, NOBODY, NOBODY)  # the outage ends: the writer may create files now
        flushed = ask({"op": "flush"})
        logs = ask({"op": "exit"})["logs"]
        proc.wait(timeout=STEP_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    raised = sum(d.get("raised", 0) for d in during) + flushed["raised"]
    result = _result("duckdb_permission_denied", records, duckdb_counts(folder / "audit.duckdb"), started, raised)
    file_uid = (folder / "audit.duckdb").stat().st_uid if (folder / "audit.duckdb").exists() else None
    return {**result, "during": during, "flushed": flushed, "logs": logs, "folder": str(folder), "file_uid": file_uid}


# ------------------------------------------------------------------------------------------------
# (c) a file where the folder should be; the folder deleted under a running trail
# ------------------------------------------------------------------------------------------------


def duckdb_folder_is_a_file(workdir: Path, rows: int = 1200, calls: int = 6) -> dict:
    """DuckDB file and spool live in one folder, and a regular file sits at its path: neither can
    be written, so the rows wait in memory. The outage ends when the file is removed."""
    folder = workdir / "blocked" / "audit"
    folder.parent.mkdir(parents=True)
    folder.write_text("not a folder\n")
    trail = _duckdb_trail(folder)
    records = mixed_records(rows, "blocked-")
    with captured_logs() as logs:
        started = time.monotonic()
        raised, during = _write_calls(trail, chunks(records, calls))
        held = trail.held_rows
        folder.unlink()
        flush_raised, _ = _flush(trail)
        result = _result("duckdb_folder_is_a_file", records, duckdb_counts(folder / "audit.duckdb"), started, raised + flush_raised)
    return {**result, "during": during, "held_during": held, "held_after": trail.held_rows, "logs": logs}


def duckdb_folder_removed(workdir: Path, rows: int = 1200, calls: int = 6) -> dict:
    """The folder (file, schema and spool) is deleted after the trail created it, as a clean-up
    job might: the next writes must create file and schema again, not fail on missing tables."""
    folder = workdir / "removed" / "audit"
    trail = _duckdb_trail(folder)
    trail.sink.init()
    shutil.rmtree(folder)
    records = mixed_records(rows, "removed-")
    with captured_logs() as logs:
        started = time.monotonic()
        raised, during = _write_calls(trail, chunks(records, calls))
        flush_raised, _ = _flush(trail)
        result = _result("duckdb_folder_removed", records, duckdb_counts(folder / "audit.duckdb"), started, raised + flush_raised)
    return {**result, "during": during, "logs": logs}


# ------------------------------------------------------------------------------------------------
# (d) the BigQuery emulator stopped mid-way and started again
# ------------------------------------------------------------------------------------------------


def bigquery_counts(sink: Any) -> tuple[collections.Counter[tuple[str, str]], int, int]:
    """(copies per (table, event_id) as the views count them, raw rows, vw_entity_events rows).
    The views keep the first row per event_id (insertId dedup is not emulated), so the count per
    event_id after that rule is what a dashboard sees."""
    from dagster_monitoring.audit import schema

    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    raw = 0
    for table in schema.tables():
        tid = sink.table_id(table.name)
        rows = sink.query(
            f"SELECT event_id, COUNT(*) AS copies FROM (SELECT * FROM `{tid}` "
            "QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ingested_at) = 1) GROUP BY event_id"
        )[1]
        for event_id, n in rows:
            counts[(table.name, event_id)] = n
        raw += sink.query(f"SELECT COUNT(*) FROM `{tid}`")[1][0][0]
    entity_rows = sink.query(f"SELECT COUNT(*) FROM `{sink.table_id('vw_entity_events')}`")[1][0][0]
    return counts, raw, entity_rows


def expected_entity_events(records: Sequence[AuditRecord]) -> int:
    """Rows vw_entity_events should show for ``records`` (finished runs, checks, non-skipped dbt tests)."""
    n = 0
    for r in records:
        if isinstance(r, RunRecord):
            n += r.status in ("SUCCESS", "FAILURE")
        elif isinstance(r, AssetCheckEvaluationRecord):
            n += 1
        elif isinstance(r, DbtTestResultRecord):
            n += r.status != "skipped"
    return n


def bigquery_emulator_stopped(emulator: Any, workdir: Path, rows: int = 600, calls: int = 6, retry_deadline: float = 1.0) -> dict:
    """``emulator`` (scripts/bq_emulator.py, persistent) is stopped after the first call and
    started again before the flush; every call in between spools."""
    import uuid

    from dagster_monitoring.audit.sinks.bigquery import BigQuerySink

    sink = BigQuerySink(
        f"faults_{uuid.uuid4().hex[:8]}",
        project=emulator.project,
        api_endpoint=emulator.endpoint,
        retry_deadline=retry_deadline,
        timeout=10,
    )
    sink.init()
    trail = AuditTrail(sink, Spool(workdir / "bq-spool"))
    records = mixed_records(rows, "bq-")
    batches = chunks(records, calls)
    with captured_logs() as logs:
        raised, during = _write_calls(trail, batches[:1])
        emulator.stop()  # the sink goes down mid-way
        started = time.monotonic()
        more_raised, more = _write_calls(trail, batches[1:])
        spooled_files = trail.spool.pending_files()
        emulator.start()
        flush_raised, _ = _flush(trail)
        counts, raw, entity_rows = bigquery_counts(sink)
        expected_entities = expected_entity_events(records)
        result = _result("bigquery_emulator_stopped", records, counts, started, raised + more_raised + flush_raised)
    sink.close()
    return {
        **result,
        "during": during + more,
        "spooled_files": spooled_files,
        "left_in_spool": trail.spool.pending_rows(),
        "raw_rows": raw,
        "view_entity_rows": entity_rows,
        "expected_entity_rows": expected_entities,
        "view_rows_doubled": max(entity_rows - expected_entities, 0),
        "logs": logs,
    }


DUCKDB_SCENARIOS: dict[str, Callable[..., dict]] = {
    "duckdb_locked": duckdb_locked,
    "duckdb_locked_write_behind": duckdb_locked_write_behind,
    "duckdb_permission_denied": duckdb_permission_denied,
    "duckdb_folder_is_a_file": duckdb_folder_is_a_file,
    "duckdb_folder_removed": duckdb_folder_removed,
}
