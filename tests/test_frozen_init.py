"""The faster __init__ of the frozen dataclasses made per event behaves as the generated one."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import datetime, timezone

import pytest

from dagster_monitoring.alerting._frozen import fast_frozen_init
from dagster_monitoring.alerting.lifecycle import Observation, ReceiverMark, Transition
from dagster_monitoring.alerting.notification import IncidentSnapshot, Notification
from dagster_monitoring.alerting.outbox import DeliveryOutcome
from dagster_monitoring.alerting.router import Decision
from dagster_monitoring.alerting.state import OutboxItem, OutboxUpdate

from .helpers.factories import make_event

NOW = datetime(2026, 11, 25, 3, tzinfo=timezone.utc)
FAST = [Decision, Notification, IncidentSnapshot, ReceiverMark, OutboxItem, OutboxUpdate, DeliveryOutcome]


@pytest.mark.parametrize("cls", FAST, ids=lambda c: c.__name__)
def test_the_signature_is_the_dataclass_one(cls: type) -> None:
    params = list(inspect.signature(cls).parameters.values())
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    for p, f in zip(params, fields, strict=True):
        assert p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        if f.default is not dataclasses.MISSING:
            assert p.default is f.default
        elif f.default_factory is dataclasses.MISSING:
            assert p.default is inspect.Parameter.empty


def test_instances_are_frozen_equal_and_hashable_as_before() -> None:
    snapshot = IncidentSnapshot("abc-1", "dagster:run:job", NOW, NOW, 2)
    assert snapshot.tickets == {} and snapshot.tickets is not IncidentSnapshot("abc-1", "dagster:run:job", NOW, NOW, 2).tickets
    decision = Decision("fp", "abc-1", Transition.NEW, "ops", make_event().severity, Observation.OPENED, NOW, occurred_at=NOW)
    same = Decision("fp", "abc-1", Transition.NEW, "ops", make_event().severity, Observation.OPENED, NOW, None, None, NOW)
    assert decision == same and hash(decision) == hash(same) and decision.notifies
    assert dataclasses.replace(decision, receiver="jira") == Decision(
        "fp", "abc-1", Transition.NEW, "jira", decision.severity, Observation.OPENED, NOW, occurred_at=NOW
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.receiver = "other"  # type: ignore[misc]
    with pytest.raises(TypeError, match="missing 1 required positional argument"):
        ReceiverMark(NOW)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        ReceiverMark(NOW, decision.severity, colour="red")  # type: ignore[call-arg]


def test_shapes_it_cannot_copy_are_refused_when_decorated() -> None:
    @dataclasses.dataclass(frozen=True)
    class WithPostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclasses.dataclass(frozen=True)
    class KeywordOnly:
        a: int = dataclasses.field(kw_only=True)

    @dataclasses.dataclass(frozen=True, slots=True)
    class Slotted:
        a: int

    @dataclasses.dataclass
    class NotFrozen:
        a: int

    for cls in (WithPostInit, KeywordOnly, Slotted, NotFrozen):
        with pytest.raises(TypeError, match="fast_frozen_init"):
            fast_frozen_init(cls)
