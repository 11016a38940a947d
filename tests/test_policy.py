"""Routing, escalation and silences are pure functions: tested as tables."""

from datetime import timedelta

import pytest

from dagster_monitoring.alerting import EscalationRule, Route, Severity, Silence
from dagster_monitoring.alerting.lifecycle import IncidentState
from dagster_monitoring.alerting.policy import MatchCache, active_silence, effective_severity, match_routes, receivers_for

from .helpers.factories import T0, make_event

ROUTES = [
    Route.model_validate({"min_severity": "critical", "receivers": ["teams", "jira"], "continue": True}),
    Route.model_validate({"sources": ["dbt"], "kinds": ["asset_check"], "receivers": ["dbt-channel"]}),
    Route.model_validate({"entity": "loans_*", "tags": {"domain": "credit"}, "receivers": ["credit"]}),
    Route.model_validate({"owners": ["team:finance"], "receivers": ["finance"]}),
    Route.model_validate({"min_severity": "warn", "min_failures": 3, "receivers": ["teams-quiet"]}),
]


@pytest.mark.parametrize(
    "event_kwargs, failures, expected",
    [
        # critical: route 0 (continue), then the catch-all min_failures route matches but holds
        # its receiver back until the third failure
        (dict(severity="critical"), 1, ["teams", "jira"]),
        (dict(severity="critical"), 3, ["teams", "jira", "teams-quiet"]),
        (dict(source="dbt", kind="asset_check"), 1, ["dbt-channel"]),
        (dict(severity="critical", source="dbt", kind="asset_check"), 1, ["teams", "jira", "dbt-channel"]),
        (dict(entity="loans_daily", tags={"domain": "credit"}), 1, ["credit"]),
        (dict(entity="loans_daily", tags={"domain": "other"}), 1, []),  # falls to the min_failures route
        (dict(entity="loans_daily", tags={"domain": "other"}), 3, ["teams-quiet"]),
        (dict(owners=("team:finance",)), 1, ["finance"]),
        (dict(entity="other_job", severity="warn"), 2, []),
        (dict(entity="other_job", severity="warn"), 5, ["teams-quiet"]),
    ],
)
def test_receivers_for_table(event_kwargs, failures, expected):
    event = make_event(**event_kwargs)
    assert receivers_for(event, failures, ROUTES, {}, ()) == expected


def test_first_match_wins_without_continue():
    event = make_event(source="dbt", kind="asset_check", severity="critical")
    assert [r.receivers for r in match_routes(event, ROUTES)] == [("teams", "jira"), ("dbt-channel",)]


def test_owners_map_adds_receivers_and_default_catches_the_rest():
    owners = {"team:data-eng": ("data-eng-teams",)}
    assert receivers_for(make_event(owners=("team:data-eng",)), 1, [], owners, ("fallback",)) == ["data-eng-teams"]
    assert receivers_for(make_event(owners=("someone",)), 1, [], owners, ("fallback",)) == ["fallback"]


def _state(failures=1, first=T0, last_success=None):
    return IncidentState("fp", consecutive_failures=failures, first_failed_at=first, last_success_at=last_success)


@pytest.mark.parametrize(
    "rule, state, event_kwargs, expected",
    [
        (dict(after_failures=3, to="critical"), _state(2), {}, Severity.ERROR),
        (dict(after_failures=3, to="critical"), _state(3), {}, Severity.CRITICAL),
        (dict(after_failing_for="6h", to="critical"), _state(first=T0 - timedelta(hours=5)), {}, Severity.ERROR),
        (dict(after_failing_for="6h", to="critical"), _state(first=T0 - timedelta(hours=7)), {}, Severity.CRITICAL),
        # time since the last success wins over the first failure when known
        (dict(after_failing_for="6h", to="critical"), _state(first=T0 - timedelta(hours=1), last_success=T0 - timedelta(hours=8)), {}, Severity.CRITICAL),
        (dict(tags={"criticality": "high"}, to="critical"), _state(), {"tags": {"criticality": "high"}}, Severity.CRITICAL),
        (dict(tags={"criticality": "high"}, to="critical"), _state(), {"tags": {"criticality": "low"}}, Severity.ERROR),
        # escalation never lowers
        (dict(after_failures=1, to="warn"), _state(5), {}, Severity.ERROR),
        (dict(after_failures=1, to="critical", kinds=["asset_check"]), _state(5), {}, Severity.ERROR),
    ],
)
def test_escalation_table(rule, state, event_kwargs, expected):
    event = make_event(severity="error", **event_kwargs)
    assert effective_severity(event, state, [EscalationRule.model_validate(rule)]) is expected


def test_escalation_rule_needs_exactly_one_trigger():
    with pytest.raises(ValueError, match="exactly one of"):
        EscalationRule.model_validate({"to": "critical"})
    with pytest.raises(ValueError, match="exactly one of"):
        EscalationRule.model_validate({"to": "critical", "after_failures": 2, "tags": {"a": "b"}})


def test_silence_matches_until_it_expires():
    silence = Silence.model_validate({"entity": "staging_*", "expires_at": "2026-11-25T04:00:00Z", "comment": "migration"})
    assert active_silence(make_event("staging_load"), [silence], T0) is silence
    assert active_silence(make_event("prod_load"), [silence], T0) is None
    assert active_silence(make_event("staging_load"), [silence], T0 + timedelta(hours=2)) is None


def test_silence_needs_a_timezone():
    with pytest.raises(ValueError, match="timezone"):
        Silence.model_validate({"entity": "x", "expires_at": "2026-11-25T04:00:00"})


SILENCES = [
    Silence.model_validate({"fingerprint": "dbt:asset_check:*", "tags": {"env": "staging"}, "expires_at": "2026-11-25T04:00:00Z"}),
    Silence.model_validate({"owners": ["team:export"], "expires_at": "2026-11-25T03:30:00Z", "comment": "export rewrite"}),
]

EVENTS = [
    make_event(**kwargs)
    for kwargs in (
        {},
        {"entity": "other_job"},
        {"severity": "critical"},
        {"severity": "warn"},
        {"source": "dbt", "kind": "asset_check"},
        {"source": "dbt", "kind": "asset_check", "tags": {"env": "staging"}},
        {"source": "dbt", "kind": "asset_check", "tags": {"env": "staging", "unrelated": "x"}},
        {"entity": "loans_daily", "tags": {"domain": "credit"}},
        {"entity": "loans_weekly", "tags": {"domain": "credit"}},
        {"entity": "payments", "tags": {"domain": "credit"}},
        {"owners": ("team:finance",)},
        {"owners": ("team:export", "team:finance")},
        {"owners": ("team:export",), "severity": "critical"},
    )
]


@pytest.mark.parametrize("now", [T0, T0 + timedelta(minutes=45), T0 + timedelta(hours=2)])
def test_match_cache_gives_every_event_the_answer_matching_it_alone_would(now):
    """Events sharing a memo entry (same severity, source, kind, and the tags, entity and owners
    some matcher reads) must really route alike; asked twice, the second answer is the memo's."""
    cache = MatchCache(ROUTES, SILENCES, now)
    for _ in range(2):
        for event in EVENTS:
            routes, silence = cache.lookup(event)
            assert routes == match_routes(event, ROUTES), event
            assert silence is active_silence(event, SILENCES, now), event


def test_match_cache_tells_apart_only_what_some_matcher_reads():
    plain = MatchCache([Route.model_validate({"receivers": ["ops"]})], [], T0)
    assert plain.key(make_event("a", tags={"x": "1"})) == plain.key(make_event("b", tags={"x": "2"}))
    by_tag = MatchCache([Route.model_validate({"tags": {"x": "1"}, "receivers": ["ops"]})], [], T0)
    assert by_tag.key(make_event("a", tags={"x": "1"})) != by_tag.key(make_event("a", tags={"x": "2"}))
    assert by_tag.key(make_event("a", tags={"x": "1"})) == by_tag.key(make_event("b", tags={"x": "1", "y": "3"}))
    by_entity = MatchCache([], [Silence.model_validate({"entity": "a*", "expires_at": "2099-01-01T00:00:00Z"})], T0)
    assert by_entity.key(make_event("a")) != by_entity.key(make_event("b"))
