"""The settle delay: a Fivetran FAILURE followed by a SUCCESSFUL retry never pages anyone."""

from __future__ import annotations

from datetime import timedelta

from dagster_monitoring.config import config_from_dict
from dagster_monitoring.sources.ingest import SourceIngest

from ..helpers.factories import T0, SimClock, make_event, make_router
from ..helpers.recording import RecordingTransport


def setup(tmp_path, settle="5m"):
    clock = SimClock()
    config = config_from_dict(
        {
            "receivers": [{"type": "file", "name": "rec", "path": str(tmp_path / "x.jsonl")}],
            "routes": [{"receivers": ["rec"]}],
            "policy": {"flap_window": "0s"},
            "state": {"path": str(tmp_path / "state.db")},
            "sources": {"fivetran": {"webhook_secret": "s3cr3t-value", "settle": settle}},
        }
    )
    rec = RecordingTransport("rec")
    router = make_router(config, clock, transports={"rec": rec})
    return SourceIngest(router, config.sources), clock, rec


def ft(status, minutes):
    return make_event("warehouse_pg", status, T0 + timedelta(minutes=minutes), source="fivetran", kind="sync")


def test_a_failure_retried_successfully_inside_the_settle_window_is_dropped(tmp_path):
    ingest, clock, rec = setup(tmp_path)
    ingest.ingest([ft("failing", 0)])
    assert rec.delivered == [] and len(ingest.buffer.held()) == 1
    clock.advance(minutes=2)
    ingest.ingest([ft("passing", 2)])
    clock.advance(minutes=10)
    ingest.tick()
    assert rec.delivered == [] and ingest.buffer.held() == []


def test_a_failure_that_stays_is_announced_once_after_the_window_then_recovers(tmp_path):
    ingest, clock, rec = setup(tmp_path)
    ingest.ingest([ft("failing", 0)])
    clock.advance(minutes=1)
    ingest.ingest([ft("failing", 0), ft("failing", 1)])  # a poll repeating the same sync, and a newer one
    assert len(ingest.buffer.held()) == 2
    clock.advance(minutes=4, seconds=1)
    ingest.tick()  # the first is due
    assert rec.transitions == ["new"]
    clock.advance(minutes=1)
    ingest.tick()  # the second: ongoing, suppressed
    assert rec.transitions == ["new"] and ingest.buffer.held() == []
    clock.advance(minutes=5)
    ingest.ingest([ft("passing", 11)])
    assert rec.transitions == ["new", "recovered"]


def test_other_sources_and_zero_settle_pass_straight_through(tmp_path):
    ingest, clock, rec = setup(tmp_path, settle="0s")
    ingest.ingest([ft("failing", 0), make_event("job", "failing", T0, source="dbt_cloud", kind="job_run")])
    assert rec.transitions == ["new", "new"]
