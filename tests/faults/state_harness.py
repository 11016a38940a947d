"""State-DB fault scenarios: the alert memory deleted, corrupt, locked, or its server restarted.

Each scenario opens an incident, breaks the state DB, goes on the way a sensor would (a failed
tick is retried with the same events), and counts from what the receivers saw:

* ``lost``: transitions that should have reached the receiver and did not (must be 0);
* ``duplicates``: transitions received more than once (bounded by what was in flight);
* ``fallback``: messages about the DB itself sent through the fallback path (must be >= 1:
  a human hears that the monitoring broke);
* ``max_tick_s``: the longest router call while the DB was broken.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from dagster_monitoring.alerting import AlertRouter
from dagster_monitoring.alerting.state_health import StateStoreError
from dagster_monitoring.audit.alert_records import attach_audit
from dagster_monitoring.audit.sinks.duckdb import DuckDBSink
from dagster_monitoring.audit.spool import Spool
from dagster_monitoring.audit.trail import AuditTrail

from ..helpers.factories import SimClock, make_event, make_router
from ..helpers.http_server import Request
from .delivery_harness import CountingHook, FaultResult, delivery_config, webhook_receiver


def _router(tmp: Path, hook: CountingHook, clock: SimClock, *, trail: AuditTrail | None = None, **state: Any) -> AlertRouter:
    config = delivery_config(tmp, [webhook_receiver(hook.url("/hook"))])
    config["state"] = {"path": str(tmp / "state" / "alert_state.db"), **state}
    router = make_router(config, clock)
    if trail is not None:
        attach_audit(router, trail)
    return router


def _seen(hook: CountingHook) -> tuple[Counter[str], list[dict[str, Any]]]:
    """Pipeline transitions (fingerprint|transition) and the fallback messages, apart."""
    normal: Counter[str] = Counter()
    fallback = []
    for request in hook.accepted:
        payload = request.json
        if payload["event"]["kind"] == "state_store":
            fallback.append(payload)
        else:
            normal[f"{payload['incident']['fingerprint']}|{payload['transition']}"] += 1
    return normal, fallback


def _result(scenario: str, expected: list[str], hook: CountingHook, ticks: list[float], bound: int = 0) -> FaultResult:
    normal, fallback = _seen(hook)
    result = FaultResult(
        scenario=scenario,
        alerts=len(expected),
        delivered=sum(1 for key in expected if normal[key]),
        lost=sum(1 for key in expected if not normal[key]),
        duplicates=sum(count - 1 for count in normal.values() if count > 1),
        duplicate_bound=bound,
        max_tick_s=round(max(ticks, default=0.0), 3),
    )
    result.notes["fallback"] = len(fallback)
    result.notes["fallback_messages"] = [f"{p['transition']}: {p['event']['summary']}" for p in fallback]
    return result


def _timed_process(router: AlertRouter, events: list[Any], ticks: list[float]) -> StateStoreError | None:
    start = time.perf_counter()
    try:
        router.process(events)
    except StateStoreError as exc:
        return exc
    finally:
        ticks.append(time.perf_counter() - start)
        router.deliverer.wait_idle(10)
    return None


FP = "dagster:run:loans_daily"


def deleted_at_rest(tmp: Path, *, audit_trail: bool = False) -> FaultResult:
    """Stopped, the DB file is deleted, started again: the loss is announced, naming the file.
    Without an audit trail the incident is gone with the file, so its recovery cannot be
    announced (the report says so); with one (``audit_trail``) it is rebuilt from the trail and
    the recovery is announced."""
    trail = AuditTrail(DuckDBSink(tmp / "audit.duckdb"), Spool(tmp / "spool")) if audit_trail else None
    with CountingHook() as hook:
        clock = SimClock(datetime.now(timezone.utc) - timedelta(hours=1)) if trail else SimClock()  # the trail's views look 30 days back
        router = _router(tmp, hook, clock, trail=trail)
        router.process([make_event("loans_daily", at=clock())])
        router.deliverer.wait_idle(10)
        router.store.dispose()
        db = tmp / "state" / "alert_state.db"
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            path.unlink(missing_ok=True)
        router = _router(tmp, hook, clock, trail=trail)
        ticks: list[float] = []
        _timed_process(router, [make_event("loans_daily", "passing", at=clock.advance(minutes=5))], ticks)
        router.store.dispose()
        expected = [f"{FP}|new", f"{FP}|recovered"] if trail else [f"{FP}|new"]
        result = _result("state DB deleted (at rest)" + (", audit trail" if trail else ""), expected, hook, ticks)
    result.notes["recovery_announced"] = bool(_seen(hook)[0][f"{FP}|recovered"])
    return result


def deleted_while_running(tmp: Path) -> FaultResult:
    """The DB file (and its WAL) deleted under a running router: noticed before the next
    transaction and copied back from the open connection, so the recovery is still announced."""
    with CountingHook() as hook:
        clock = SimClock()
        router = _router(tmp, hook, clock)
        router.process([make_event("loans_daily", at=clock())])
        router.deliverer.wait_idle(10)
        db = tmp / "state" / "alert_state.db"
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            path.unlink(missing_ok=True)
        ticks: list[float] = []
        _timed_process(router, [make_event("loans_daily", "passing", at=clock.advance(minutes=5))], ticks)
        router.store.dispose()
        restarted = _router(tmp, hook, clock)  # and it survives a restart: the file is back
        still_known = restarted.incident(FP) is not None
        restarted.store.dispose()
        result = _result("state DB deleted (while running)", [f"{FP}|new", f"{FP}|recovered"], hook, ticks)
    result.notes["file_back"] = db.exists()
    result.notes["incident_kept_after_restart"] = still_known
    return result


def corrupt(tmp: Path) -> FaultResult:
    """Stopped, the DB file is overwritten with garbage: moved aside (named), a new one started,
    alerting goes on."""
    with CountingHook() as hook:
        clock = SimClock()
        router = _router(tmp, hook, clock)
        router.process([make_event("loans_daily", at=clock())])
        router.deliverer.wait_idle(10)
        router.store.dispose()
        db = tmp / "state" / "alert_state.db"
        for extra in ("-wal", "-shm"):
            db.with_name(db.name + extra).unlink(missing_ok=True)
        db.write_bytes(b"this is not a database\n" * 200)
        router = _router(tmp, hook, clock)
        ticks: list[float] = []
        _timed_process(router, [make_event("repayments_daily", at=clock.advance(minutes=5))], ticks)
        router.store.dispose()
        result = _result("state DB corrupt", [f"{FP}|new", "dagster:run:repayments_daily|new"], hook, ticks)
    result.notes["moved_aside"] = sorted(p.name for p in db.parent.glob("alert_state.db.corrupt-*"))
    return result


HOLD_LOCK = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("ROLLBACK")
"""


def locked(tmp: Path, hold_s: float = 4.0, lock_timeout: str = "1s") -> FaultResult:
    """Another process holds the SQLite file's write lock: the tick fails after ``lock_timeout``
    with an error naming the file, a human is told through the fallback path, and the same events
    go through once the lock is gone (the sensor retries them); then the fallback says it is over."""
    with CountingHook() as hook:
        clock = SimClock()
        router = _router(tmp, hook, clock, lock_timeout=lock_timeout)
        router.process([make_event("loans_daily", at=clock())])
        router.deliverer.wait_idle(10)
        db = tmp / "state" / "alert_state.db"
        holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(db), str(hold_s)], stdout=subprocess.PIPE, text=True)
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        events = [make_event("repayments_daily", at=clock.advance(minutes=1))]
        ticks: list[float] = []
        errors = []
        deadline = time.monotonic() + hold_s + 20
        while time.monotonic() < deadline:
            error = _timed_process(router, events, ticks)
            if error is None:
                break
            errors.append(str(error))
        holder.wait(30)
        router.store.dispose()
        result = _result("state DB locked", [f"{FP}|new", "dagster:run:repayments_daily|new"], hook, ticks[:-1])
    result.notes["failed_ticks"] = len(errors)
    result.notes["error"] = errors[0] if errors else None
    return result


def postgres_restarted_mid_delivery(tmp: Path, cluster: Any) -> FaultResult:
    """The PostgreSQL server restarts while a delivery is in flight (its outcome cannot be
    written): nothing is lost, the in-flight one may be sent again after its lease."""
    restarted = []

    def restart_once(request: Request) -> None:
        if not restarted:
            restarted.append(datetime.now())
            cluster.restart()

    with CountingHook() as hook:
        clock = SimClock()
        config = delivery_config(tmp, [webhook_receiver(hook.url("/hook"), timeout="30s")], lease="2s")
        config["state"] = {"url": cluster.url(cluster.create_database())}
        router = make_router(config, clock)
        hook.on_request = restart_once
        events = [make_event(f"job_{i:02d}", at=clock()) for i in range(5)]
        ticks: list[float] = []
        _timed_process(router, events, ticks)
        hook.on_request = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.5)  # past the lease of the row whose outcome was lost
            clock.advance(minutes=2)
            error = _timed_process(router, [], ticks)
            if error is None and not router.store.outbox_counts().get("pending"):
                break
        router.store.dispose()
        expected = [f"dagster:run:job_{i:02d}|new" for i in range(5)]
        result = _result("PostgreSQL restarted mid-delivery", expected, hook, ticks, bound=1)
    result.notes["restarts"] = len(restarted)
    return result


def summary(results: list[FaultResult]) -> str:
    return json.dumps([r.row() for r in results], indent=2, default=str)
