from datetime import datetime, timezone

import pytest

from dagster_monitoring.alerting import AlertEvent, Severity, Status, make_fingerprint
from dagster_monitoring.alerting.events import FINGERPRINT_MAX_LEN

from .helpers.factories import T0, make_event


def test_fingerprint_is_source_kind_entity_and_status_free():
    failing = make_event("loans_daily", Status.FAILING)
    passing = make_event("loans_daily", Status.PASSING)
    assert failing.fingerprint == "dagster:run:loans_daily"
    assert failing.fingerprint == passing.fingerprint  # a PASSING event resolves the FAILING one
    assert len(failing.fingerprint_hash) == 12 and failing.fingerprint_hash == passing.fingerprint_hash


def test_long_fingerprint_is_capped_and_stays_unique():
    a = make_fingerprint("dbt", "asset_check", "x" * 400 + "a")
    b = make_fingerprint("dbt", "asset_check", "x" * 400 + "b")
    assert len(a) == FINGERPRINT_MAX_LEN and len(b) == FINGERPRINT_MAX_LEN
    assert a != b
    assert a == make_fingerprint("dbt", "asset_check", "x" * 400 + "a")  # stable


def test_severity_order_and_parsing():
    assert Severity.WARN < Severity.ERROR < Severity.CRITICAL
    assert max([Severity.ERROR, Severity.CRITICAL, Severity.WARN]) is Severity.CRITICAL
    assert Severity.parse("Critical") is Severity.CRITICAL
    with pytest.raises(ValueError, match="unknown severity 'high'"):
        Severity.parse("high")


def test_naive_timestamp_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="occurred_at must be timezone-aware"):
        make_event(at=datetime(2026, 11, 25, 3, 0))


def test_empty_entity_is_refused():
    with pytest.raises(ValueError, match="AlertEvent.entity"):
        make_event(entity=" ")


def test_round_trip_through_dict_is_lossless():
    event = make_event(details={"offending_value": 3, "error": "boom"}, links={"run": "http://x/runs/1"},
                       tags={"criticality": "high"}, run_id="r1", next_action="re-run")
    again = AlertEvent.from_dict(event.to_dict())
    assert again == event
    assert again.occurred_at.tzinfo is not None and again.occurred_at == T0


def test_timestamps_are_normalised_to_utc():
    from datetime import timedelta
    cet = timezone(timedelta(hours=1))
    event = make_event(at=datetime(2026, 11, 25, 4, 0, tzinfo=cet))
    assert event.occurred_at == T0 and event.occurred_at.tzinfo == timezone.utc


def test_to_dict_has_one_key_per_field():
    from dataclasses import fields

    assert list(make_event().to_dict()) == [f.name for f in fields(AlertEvent) if f.init]


def test_the_fingerprint_follows_a_changed_entity():
    from dataclasses import replace

    event = make_event("loans_daily")
    moved = replace(event, entity="loans_weekly")
    assert moved.fingerprint == "dagster:run:loans_weekly"
    assert replace(moved, entity="loans_daily") == event
