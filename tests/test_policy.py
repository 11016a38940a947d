"""Routing, escalation and silences are pure functions: tested as tables."""

from datetime import timedelta

import pytest

from dagster_monitoring.alerting import EscalationRule, Route, Severity, Silence
from dagster_monitoring.alerting.lifecycle import IncidentState
from dagster_monitoring.alerting.policy import active_silence, effective_severity, match_routes, receivers_for

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
