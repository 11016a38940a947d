"""A lost alert state DB (deleted at rest, corrupt) with an audit trail attached: the open
incidents come back from the trail before any event is applied, so an ongoing failure is not
announced again and a recovery reaches every receiver that heard of the incident."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from dagster_monitoring.alerting import AlertRouter
from dagster_monitoring.alerting.lifecycle import IncidentState, Phase
from dagster_monitoring.audit.alert_records import attach_audit
from dagster_monitoring.audit.restore import RESTORED_TAG, open_incidents
from dagster_monitoring.audit.sinks.duckdb import DuckDBSink
from dagster_monitoring.audit.spool import Spool
from dagster_monitoring.audit.trail import AuditTrail

from ..helpers.factories import SimClock, config_from_dict, make_event, make_router


def _config(tmp: Path) -> Any:
    return config_from_dict(
        {
            "receivers": [
                {"type": "file", "name": "teams", "path": str(tmp / "teams.jsonl")},
                {"type": "file", "name": "mail", "path": str(tmp / "mail.jsonl")},
            ],
            "routes": [{"receivers": ["teams", "mail"]}],
            "policy": {"repeat_interval": "4h", "flap_window": "0s"},
            "state": {"path": str(tmp / "state" / "alert_state.db")},
        }
    )


def _router(tmp: Path, clock: SimClock, trail: AuditTrail | None) -> AlertRouter:
    router = make_router(_config(tmp), clock)
    if trail is not None:
        attach_audit(router, trail)
    return router


def _sent(tmp: Path, receiver: str) -> tuple[list[str], list[dict[str, Any]]]:
    """(entity:transition of the pipeline's messages, the fallback messages about the state DB)."""
    path = tmp / f"{receiver}.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    normal = [f"{m['event']['entity']}:{m['transition']}" for m in lines if m["event"]["kind"] != "state_store"]
    return normal, [m for m in lines if m["event"]["kind"] == "state_store"]


def _break(tmp: Path, how: str) -> None:
    db = tmp / "state" / "alert_state.db"
    if how == "deleted":
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            path.unlink(missing_ok=True)
    else:
        db.write_bytes(b"this is not a database" * 100)
        for suffix in ("-wal", "-shm"):
            db.with_name(db.name + suffix).unlink(missing_ok=True)


def _open_two_incidents(tmp: Path, clock: SimClock, trail: AuditTrail) -> None:
    router = _router(tmp, clock, trail)
    router.process([make_event("loans_daily", at=clock()), make_event("partner_file", at=clock())])
    router.process([make_event("loans_daily", at=clock.advance(minutes=5))])  # ongoing: nothing sent
    router.wait_idle(10)
    router.store.dispose()


@pytest.mark.parametrize("how", ["deleted", "corrupt"])
def test_a_lost_state_db_is_rebuilt_from_the_audit_trail(tmp_path: Path, how: str) -> None:
    trail = AuditTrail(DuckDBSink(tmp_path / "audit.duckdb"), Spool(tmp_path / "spool"))
    clock = SimClock(datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2))  # inside the views' 30 days
    _open_two_incidents(tmp_path, clock, trail)
    before = {r["entity"]: r for r in _rows(trail, "vw_open_alerts")}
    assert before["loans_daily"]["failures_seen"] == 2  # two events, not two per receiver

    _break(tmp_path, how)
    router = _router(tmp_path, clock, trail)
    router.process(
        [
            make_event("loans_daily", at=clock.advance(minutes=5)),  # still failing: not news
            make_event("partner_file", "passing", at=clock(), owners=("team:partners",)),  # fixed: announce it
        ]
    )
    router.wait_idle(10)

    for receiver in ("teams", "mail"):
        normal, fallback = _sent(tmp_path, receiver)
        assert sorted(normal) == ["loans_daily:new", "partner_file:new", "partner_file:recovered"], (receiver, normal)
        [report] = fallback
        summary = report["event"]["summary"]
        assert "2 open incident(s) were restored from the audit trail" in summary and "forgotten:" not in summary
        assert str(tmp_path / "state" / "alert_state.db") in summary  # names the file
    recovered = next(
        m for m in map(json.loads, (tmp_path / "teams.jsonl").read_text().splitlines()) if m["transition"] == "recovered"
    )
    assert recovered["incident"]["incident_id"] == before["partner_file"]["incident_id"]  # the same incident, closed
    assert recovered["event"]["owners"] == ["team:partners"]  # the trail keeps none: the passing event's
    state = router.incident("dagster:run:loans_daily")
    assert state is not None and state.phase is Phase.FAILING
    assert state.incident_id == before["loans_daily"]["incident_id"] and state.consecutive_failures == 3
    assert set(state.receivers) == {"teams", "mail"}
    router.store.dispose()


def test_restoring_is_asked_once_per_loss_and_a_failure_is_reported(tmp_path: Path) -> None:
    clock = SimClock(datetime.now(timezone.utc) - timedelta(hours=1))
    router = _router(tmp_path, clock, None)
    router.process([make_event("loans_daily", at=clock())])
    router.wait_idle(10)
    router.store.dispose()
    _break(tmp_path, "deleted")
    calls = []

    def trail_down() -> list[IncidentState]:
        calls.append(1)
        raise OSError("audit trail unreachable")

    router = _router(tmp_path, clock, None)
    router.restore_incidents = trail_down
    router.process([make_event("loans_daily", at=clock.advance(minutes=5))])
    router.process([make_event("loans_daily", at=clock.advance(minutes=5))])
    router.wait_idle(10)
    assert calls == [1]  # once per loss, not on every call
    normal, [report] = _sent(tmp_path, "teams")
    assert "Restoring them from the audit trail failed (OSError: audit trail unreachable)" in report["event"]["summary"]
    assert normal == ["loans_daily:new", "loans_daily:new"]  # alerting went on (the incident was forgotten)
    router.store.dispose()


def test_a_restored_incident_never_replaces_a_state_written_since(tmp_path: Path) -> None:
    clock = SimClock(datetime.now(timezone.utc))
    router = _router(tmp_path, clock, None)
    router.process([make_event("loans_daily", at=clock())])
    kept = router.incident("dagster:run:loans_daily")
    assert kept is not None
    stale = IncidentState("dagster:run:loans_daily", Phase.FAILING, "other-incident", clock(), clock(), consecutive_failures=9)
    new = IncidentState("dagster:run:partner_file", Phase.FAILING, "p-1", clock(), clock(), consecutive_failures=1)
    with router.store.transaction() as conn:
        assert router.store.restore(conn, [stale, new], clock()) == 1
    after = router.incident("dagster:run:loans_daily")
    assert after is not None and after.incident_id == kept.incident_id and after.consecutive_failures == 1
    assert router.incident("dagster:run:partner_file") is not None
    router.wait_idle(10)
    router.store.dispose()


def test_the_trail_rebuilds_who_was_told_and_marks_the_event_restored(tmp_path: Path) -> None:
    trail = AuditTrail(DuckDBSink(tmp_path / "audit.duckdb"), Spool(tmp_path / "spool"))
    clock = SimClock(datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2))
    _open_two_incidents(tmp_path, clock, trail)
    states = {s.fingerprint: s for s in open_incidents(trail.sink)}
    assert set(states) == {"dagster:run:loans_daily", "dagster:run:partner_file"}
    loans = states["dagster:run:loans_daily"]
    assert loans.first_failed_at == clock() - timedelta(minutes=5) and loans.last_seen_at == clock()
    assert {name: mark.transition.value for name, mark in loans.receivers.items()} == {"teams": "new", "mail": "new"}
    assert loans.last_event is not None and loans.last_event.tags[RESTORED_TAG] == "audit trail"
    assert _rows(trail, "vw_open_alert_receivers")[0].keys() >= {"receiver", "last_notice", "notified_at", "ticket_key"}


def _rows(trail: AuditTrail, view: str) -> list[dict[str, Any]]:
    from dagster_monitoring.audit.read import read_view, rows_as_dicts

    return rows_as_dicts(read_view(trail.sink, view))
