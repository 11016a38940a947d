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


def _config(tmp: Path, **policy: Any) -> Any:
    return config_from_dict(
        {
            "receivers": [
                {"type": "file", "name": "teams", "path": str(tmp / "teams.jsonl")},
                {"type": "file", "name": "mail", "path": str(tmp / "mail.jsonl")},
            ],
            "routes": [{"receivers": ["teams", "mail"]}],
            "policy": {"repeat_interval": "4h", "flap_window": "0s", **policy},
            "state": {"path": str(tmp / "state" / "alert_state.db")},
        }
    )


def _trail(tmp: Path) -> AuditTrail:
    return AuditTrail(DuckDBSink(tmp / "audit.duckdb"), Spool(tmp / "spool"))


def _clock() -> SimClock:
    return SimClock(datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=3))  # inside the views' 30 days


def _router(tmp: Path, clock: SimClock, trail: AuditTrail | None, **policy: Any) -> AlertRouter:
    router = make_router(_config(tmp, **policy), clock)
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
        assert "2 open incident(s) it held were restored from the audit trail" in summary and "forgotten:" not in summary
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


def test_a_failed_restore_is_reported_at_once_and_tried_again_later(tmp_path: Path) -> None:
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
    assert calls == [1]  # not on every call: every RESTORE_RETRY seconds
    normal, [report] = _sent(tmp_path, "teams")
    summary = report["event"]["summary"]
    assert "could not be restored from the audit trail (OSError: audit trail unreachable)" in summary
    assert "tried again every 5 minutes" in summary
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


def _lose(tmp: Path, router: AlertRouter, how: str = "deleted") -> None:
    router.wait_idle(10)
    router.store.dispose()
    _break(tmp, how)


def test_a_notice_that_never_went_out_is_not_counted_as_heard(tmp_path: Path) -> None:
    """A "new" held by group_wait (in the lost DB) was decided but never delivered: after the
    loss the next failure is announced as new, not skipped, and the recovery follows it."""
    trail, clock = _trail(tmp_path), _clock()
    router = _router(tmp_path, clock, trail, group_wait="5m", group_by=["run_id"])
    router.process([make_event("loans_daily", at=clock(), run_id="run-1")])  # decided, held 5 min
    _lose(tmp_path, router)
    router = _router(tmp_path, clock, trail)
    router.process([make_event("loans_daily", at=clock.advance(minutes=10), run_id="run-2")])
    router.process([make_event("loans_daily", "passing", at=clock.advance(minutes=10), run_id="run-3")])
    router.wait_idle(10)
    assert _sent(tmp_path, "teams")[0] == ["loans_daily:new", "loans_daily:recovered"]
    router.store.dispose()


def test_the_spool_is_written_out_before_the_trail_is_read(tmp_path: Path) -> None:
    """The recovery's decision waited in the trail's spool (its sink was down) when the DB was
    lost: it is written out first, so the closed incident does not come back as open."""
    trail, clock = _trail(tmp_path), _clock()
    router = _router(tmp_path, clock, trail)
    router.process([make_event("loans_daily", at=clock())])
    router.wait_idle(10)
    sink_write = trail.sink.write

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OSError("sink down")

    trail.sink.write = down  # type: ignore[method-assign]
    router.process([make_event("loans_daily", "passing", at=clock.advance(minutes=5))])  # recovered: spooled
    _lose(tmp_path, router)
    assert trail.has_backlog()
    trail.sink.write = sink_write  # type: ignore[method-assign]
    router = _router(tmp_path, clock, trail)
    router.process([make_event("loans_daily", at=clock.advance(hours=1))])  # a new failure an hour later
    router.process([make_event("loans_daily", "passing", at=clock.advance(minutes=5))])
    router.wait_idle(10)
    assert _sent(tmp_path, "teams")[0] == ["loans_daily:new", "loans_daily:recovered", "loans_daily:new", "loans_daily:recovered"]
    assert not trail.has_backlog()
    router.store.dispose()


def test_a_restored_flap_keeps_its_last_success_so_escalation_is_not_early(tmp_path: Path) -> None:
    """Escalation "after failing for 1h" counts from the last success: a restored incident that
    flapped 15 minutes ago must not escalate as if it had failed since the first failure."""
    trail, clock = _trail(tmp_path), _clock()
    policy: dict[str, Any] = {"flap_window": "15m", "escalation": [{"to": "critical", "after_failing_for": "1h"}]}
    router = _router(tmp_path, clock, trail, **policy)
    router.process([make_event("loans_daily", at=clock())])
    router.process([make_event("loans_daily", "passing", at=clock.advance(minutes=60))])  # resolving
    router.process([make_event("loans_daily", at=clock.advance(minutes=5))])  # refailed inside the window
    _lose(tmp_path, router)
    router = _router(tmp_path, clock, trail, **policy)
    router.process([make_event("loans_daily", at=clock.advance(minutes=10))])  # 15 min since the last success
    router.wait_idle(10)
    assert _sent(tmp_path, "teams")[0] == ["loans_daily:new"]  # not escalated
    state = router.incident("dagster:run:loans_daily")
    assert state is not None and state.flaps == 1 and state.last_success_at == clock() - timedelta(minutes=15)
    router.store.dispose()


def test_a_restored_resolving_incident_recovers_on_time_at_its_own_severity(tmp_path: Path) -> None:
    trail, clock = _trail(tmp_path), _clock()
    router = _router(tmp_path, clock, trail, flap_window="15m")
    t0 = clock()
    router.process([make_event("loans_daily", at=t0, severity="critical")])
    router.process([make_event("loans_daily", at=clock.advance(minutes=30), severity="critical")])  # last failure t0+30
    router.process([make_event("loans_daily", "passing", at=clock.advance(minutes=5), severity="warn")])  # resolving since t0+35
    router.process([make_event("loans_daily", "passing", at=clock.advance(minutes=10), severity="warn")])  # still, t0+45
    _lose(tmp_path, router)
    router = _router(tmp_path, clock, trail, flap_window="15m")
    clock.advance(minutes=6)  # t0+51: 16 minutes after the first success, as it would be without the loss
    router.tick()
    router.wait_idle(10)
    lines = [json.loads(line) for line in (tmp_path / "teams.jsonl").read_text().splitlines()]
    [recovered] = [m for m in lines if m["transition"] == "recovered"]
    assert recovered["severity"] == "critical"
    assert recovered["incident"]["recovered_at"] == (t0 + timedelta(minutes=35)).isoformat()
    assert recovered["incident"]["last_failed_at"] == (t0 + timedelta(minutes=30)).isoformat()
    router.store.dispose()


def test_a_late_event_after_a_timed_recovery_is_the_open_incident(tmp_path: Path) -> None:
    """A timed recovery is stamped with the tick's time; an event that happened before that tick
    but arrived after it opens the next incident, and that one is what vw_open_alerts shows."""
    trail, clock = _trail(tmp_path), _clock()
    router = _router(tmp_path, clock, trail, flap_window="15m")
    t0 = clock()
    router.process([make_event("loans_daily", at=t0)])
    router.process([make_event("loans_daily", "passing", at=clock.advance(minutes=5))])
    clock.advance(minutes=20)
    router.tick()  # recovered, decided at t0+25
    clock.advance(minutes=1)
    router.process([make_event("loans_daily", at=t0 + timedelta(minutes=22))])  # failed at t0+22, seen at t0+26
    second = router.incident("dagster:run:loans_daily")
    assert second is not None
    [open_row] = _rows(trail, "vw_open_alerts")
    assert open_row["incident_id"] == second.incident_id
    _lose(tmp_path, router)
    router = _router(tmp_path, clock, trail, flap_window="15m")
    router.process([make_event("loans_daily", at=clock.advance(minutes=10))])  # still failing: not news
    router.wait_idle(10)
    assert _sent(tmp_path, "teams")[0] == ["loans_daily:new", "loans_daily:recovered", "loans_daily:new"]
    router.store.dispose()


def test_a_loss_found_by_another_process_is_still_restored_and_reported(tmp_path: Path) -> None:
    """The CLI (a store with no router) opens the deleted DB first: it writes the loss into the new
    DB, and the router that opens it next restores and reports it."""
    from dagster_monitoring.alerting.state import SqlStateStore

    trail, clock = _trail(tmp_path), _clock()
    router = _router(tmp_path, clock, trail)
    router.process([make_event("loans_daily", at=clock())])
    _lose(tmp_path, router)
    cli = SqlStateStore("sqlite:///" + str(tmp_path / "state" / "alert_state.db"))
    cli.list_silences(clock())
    assert [p.kind for p in cli.take_problems()] == ["deleted"]  # found, never reported by the CLI
    cli.dispose()
    router = _router(tmp_path, clock, trail)
    router.process([make_event("loans_daily", at=clock.advance(minutes=5))])
    router.process([make_event("loans_daily", "passing", at=clock.advance(minutes=5))])
    router.wait_idle(10)
    normal, [report] = _sent(tmp_path, "teams")
    assert normal == ["loans_daily:new", "loans_daily:recovered"]
    assert "was missing (deleted?)" in report["event"]["summary"] and "1 open incident(s) it held were restored" in report["event"]["summary"]
    router.store.dispose()
    again = _router(tmp_path, clock, trail)  # dealt with: not restored or reported again
    assert not again.store.restore_due
    again.store.dispose()


def test_two_processes_that_found_the_same_loss_both_say_what_came_back(tmp_path: Path) -> None:
    """The code server and ``serve`` open the deleted DB before either restored it: both restore
    (harmless: only missing rows are written) and both report; the second says the incidents are
    back, put there by the other, instead of "0 restored"."""
    trail, clock = _trail(tmp_path), _clock()
    router = _router(tmp_path, clock, trail)
    router.process([make_event("loans_daily", at=clock())])
    _lose(tmp_path, router)
    first, second = _router(tmp_path, clock, trail), _router(tmp_path, clock, trail)
    first.store.check()
    second.store.check()
    assert first.store.restore_due and second.store.restore_due
    first.process([])
    second.process([])
    for r in (first, second):
        r.wait_idle(10)
    _, reports = _sent(tmp_path, "teams")
    summaries = [r["event"]["summary"] for r in reports]
    assert len(summaries) == 2, summaries
    assert "1 open incident(s) it held were restored from the audit trail" in summaries[0]
    assert "1 open incident(s) it held are back from the audit trail" in summaries[1]
    assert "1 of them were put back by another process that found the loss too" in summaries[1]
    assert not any("0 open incident(s)" in s for s in summaries)
    state = second.incident("dagster:run:loans_daily")
    assert state is not None and state.phase is Phase.FAILING
    for r in (first, second):
        r.store.dispose()


def test_a_restored_incident_recovered_when_its_flap_window_ends_names_the_owners(tmp_path: Path) -> None:
    """The trail keeps no owners: a recovery announced by a later tick (``flap_window``) names the
    owners of the passing event that started it, as one announced at once does."""
    trail, clock = _trail(tmp_path), _clock()
    router = _router(tmp_path, clock, trail, flap_window="10m")
    router.process([make_event("loans_daily", at=clock(), owners=("team:loans",))])
    _lose(tmp_path, router)
    router = _router(tmp_path, clock, trail, flap_window="10m")
    router.process([make_event("loans_daily", "passing", at=clock.advance(minutes=5), owners=("team:loans",))])
    clock.advance(minutes=15)
    router.process([])  # the window is over: recovered
    router.wait_idle(10)
    lines = [json.loads(line) for line in (tmp_path / "teams.jsonl").read_text().splitlines()]
    [recovered] = [m for m in lines if m["transition"] == "recovered"]
    assert recovered["event"]["owners"] == ["team:loans"] and recovered["facts"]["Owner"] == "team:loans"
    router.store.dispose()


def _failed_run(at: datetime, job: str, error_class: str, message: str, owners: str, run_url: str) -> Any:
    """The audit trail's ``runs`` row of run-7 failing."""
    from dagster_monitoring.audit.records import RunRecord

    return RunRecord(
        event_ts=at,
        run_id="run-7",
        job_name=job,
        status="FAILURE",
        error_class=error_class,
        error_message=message,
        owners=owners,
        run_url=run_url,
    )


def test_a_restored_failure_in_a_dagster_run_gets_its_owners_link_and_error_from_the_runs_table(tmp_path: Path) -> None:
    """The trail's ``runs`` row of the failing run gives the rebuilt event what the card needs:
    owners, the link to the run, the error; the recovery names them and links the failed run."""
    from dagster_monitoring.audit.records import RunRecord

    trail, clock = _trail(tmp_path), _clock()
    router = _router(tmp_path, clock, trail, flap_window="10m")
    router.process([make_event("loans_daily", at=clock(), owners=("team:loans",), run_id="run-7")])
    run_url = "http://dagster.example/runs/run-7"
    written = trail.write(
        [
            RunRecord(event_ts=clock(), run_id="run-7", job_name="loans_daily", status="STARTED", owners="team:loans", run_url=run_url),
            _failed_run(clock.advance(seconds=1), "loans_daily", "ValueError", "boom", "team:loans, alice@example.com", run_url),
        ]
    )
    assert written.inserted == 2 and not written.spooled, written
    [row] = _rows(trail, "vw_open_alerts")
    assert (row["failed_run_id"], row["failed_run_url"], row["owners"], row["error"]) == (
        "run-7",
        run_url,
        "team:loans, alice@example.com",
        "ValueError: boom",
    )
    [state] = open_incidents(trail.sink)
    assert state.last_event is not None
    assert state.last_event.owners == ("team:loans", "alice@example.com") and state.last_event.links == {"run": run_url}
    assert state.last_event.details == {"error": "ValueError: boom"} and state.last_event.run_id == "run-7"

    _lose(tmp_path, router)
    router = _router(tmp_path, clock, trail, flap_window="10m")
    router.process([make_event("loans_daily", "passing", at=clock.advance(minutes=5), run_id="run-8")])  # no owners on it
    clock.advance(minutes=15)
    router.process([])  # recovered when the window is over
    router.wait_idle(10)
    lines = [json.loads(line) for line in (tmp_path / "teams.jsonl").read_text().splitlines()]
    [recovered] = [m for m in lines if m["transition"] == "recovered"]
    assert recovered["event"]["owners"] == ["team:loans", "alice@example.com"]
    assert recovered["event"]["links"]["failed_run"] == run_url
    router.store.dispose()


def test_a_restored_check_failure_links_its_run_but_keeps_the_runs_owners_and_error_out(tmp_path: Path) -> None:
    """A check that failed inside a run is not the run: the rebuilt event links the run, but the
    run's owners (job tags) and its error are not the check's, so the recovery names the passing
    event's owners; and a last failure outside any run links none (not an older failure's run)."""
    trail, clock = _trail(tmp_path), _clock()
    router = _router(tmp_path, clock, trail, flap_window="10m")
    check = {"kind": "asset_check", "owners": ("team:loans",)}
    router.process(
        [make_event("loans_daily:not_null", at=clock(), run_id="run-7", **check), make_event("fresh", at=clock(), kind="freshness", run_id="run-7")]
    )
    router.process([make_event("fresh", at=clock.advance(minutes=1), kind="freshness")])  # its last failure: outside any run
    run_url = "http://dagster.example/runs/run-7"
    trail.write([_failed_run(clock(), "loans_job", "StepError", "another step broke", "team:platform", run_url)])
    rows = {r["entity"]: r for r in _rows(trail, "vw_open_alerts")}
    assert (rows["loans_daily:not_null"]["failed_run_url"], rows["loans_daily:not_null"]["owners"], rows["loans_daily:not_null"]["error"]) == (
        run_url,
        None,
        None,
    )
    assert rows["fresh"]["failed_run_id"] is None and rows["fresh"]["failed_run_url"] is None
    [restored] = [s for s in open_incidents(trail.sink) if s.fingerprint.endswith("loans_daily:not_null")]
    assert restored.last_event is not None
    assert restored.last_event.links == {"run": run_url} and restored.last_event.owners == () and restored.last_event.details == {}

    _lose(tmp_path, router)
    router = _router(tmp_path, clock, trail, flap_window="10m")
    router.process([make_event("loans_daily:not_null", "passing", at=clock.advance(minutes=5), **check)])
    clock.advance(minutes=15)
    router.process([])
    router.wait_idle(10)
    lines = [json.loads(line) for line in (tmp_path / "teams.jsonl").read_text().splitlines()]
    [recovered] = [m for m in lines if m["transition"] == "recovered"]
    assert recovered["event"]["owners"] == ["team:loans"] and recovered["event"]["links"]["failed_run"] == run_url
    router.store.dispose()


def test_a_restore_that_failed_is_tried_again_and_its_success_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster_monitoring.alerting import router as router_module
    from dagster_monitoring.audit.restore import restorer

    monkeypatch.setattr(router_module, "RESTORE_RETRY", 0.0)
    trail, clock = _trail(tmp_path), _clock()
    router = _router(tmp_path, clock, trail)
    router.process([make_event("loans_daily", at=clock())])
    _lose(tmp_path, router)
    router = _router(tmp_path, clock, trail)
    works = restorer(trail)
    tries: list[int] = []

    def flaky() -> list[IncidentState]:
        tries.append(1)
        if len(tries) == 1:
            raise OSError("trail locked")
        return works()

    router.restore_incidents = flaky
    router.process([])  # fails: reported at once
    router.process([])  # works: the incidents are back, and that is reported too
    router.process([make_event("loans_daily", "passing", at=clock.advance(minutes=5))])
    router.wait_idle(10)
    normal, reports = _sent(tmp_path, "teams")
    assert len(tries) == 2 and normal == ["loans_daily:new", "loans_daily:recovered"]
    assert [("could not be restored" in r["event"]["summary"], "after all, 1 open incident(s)" in r["event"]["summary"]) for r in reports] == [
        (True, False),
        (False, True),
    ]
    router.store.dispose()


def test_an_escalation_decided_but_never_delivered_is_sent_after_the_restore(tmp_path: Path) -> None:
    """The receivers heard "new"; the escalation was decided but held for group_wait when the DB
    was lost: the last notice that reached them is "new", so the escalation is sent afterwards."""
    trail, clock = _trail(tmp_path), _clock()
    policy: dict[str, Any] = {"group_wait": "5m", "group_by": ["run_id"], "escalation": [{"to": "critical", "after_failing_for": "1h"}]}
    router = _router(tmp_path, clock, trail, **policy)
    router.process([make_event("loans_daily", at=clock(), run_id="r1")])
    clock.advance(minutes=6)
    router.tick()  # the held "new" goes out
    router.process([make_event("loans_daily", at=clock.advance(minutes=60), run_id="r2")])  # escalated: held
    _lose(tmp_path, router)
    assert {(r["receiver"], r["last_notice"]) for r in _rows(trail, "vw_open_alert_receivers")} == {("teams", "new"), ("mail", "new")}
    router = _router(tmp_path, clock, trail, **policy)
    router.process([make_event("loans_daily", at=clock.advance(minutes=10), run_id="r3")])
    clock.advance(minutes=6)
    router.tick()
    router.wait_idle(10)
    assert _sent(tmp_path, "teams")[0] == ["loans_daily:new", "loans_daily:escalated"]
    router.store.dispose()

