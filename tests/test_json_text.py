"""The alert core's two JSON writers: what orjson refuses or writes differently from the stdlib
still gives a document that parses back (a router call never fails on an event's details)."""

from __future__ import annotations

import datetime as dt
import decimal
import json

from dagster_monitoring.alerting.json_text import dump_document, to_json


def test_a_document_is_compact_utf8_json_that_parses_back() -> None:
    data = {"entity": "Zürich_loans", "n": 3, "ok": True, "none": None, "list": [1, 2.5, "x"], "nested": {"a": ["b"]}}
    text = dump_document(data)
    assert json.loads(text) == data
    assert "Zürich" in text and " " not in text.replace("Zürich_loans", "")  # UTF-8, no padding
    assert to_json(data) == json.dumps(data, separators=(",", ":"))  # ASCII, stable: what SQL compares


def test_what_json_cannot_hold_is_written_as_text_not_an_error() -> None:
    when = dt.datetime(2026, 12, 7, 15, 30, tzinfo=dt.timezone.utc)
    data = {"at": when, "day": when.date(), "amount": decimal.Decimal("1.50"), "tags": ("a", "b"), 7: "int key"}
    parsed = json.loads(dump_document(data))
    assert parsed == {"at": "2026-12-07T15:30:00+00:00", "day": "2026-12-07", "amount": "1.50", "tags": ["a", "b"], "7": "int key"}


def test_what_orjson_refuses_goes_through_the_stdlib_encoder() -> None:
    huge = {"rows": 2**70}  # beyond 64 bits
    assert json.loads(dump_document(huge)) == huge
    deep: list = []
    node = deep
    for _ in range(300):  # orjson stops at 255 levels
        node.append([])
        node = node[0]
    assert json.loads(dump_document(deep)) == json.loads(to_json(deep))


def test_subclasses_are_written_as_the_stdlib_writes_them_and_nan_as_null() -> None:
    from typing import NamedTuple

    class Ratio(float):  # as numpy's float64 is
        pass

    class Point(NamedTuple):
        x: int
        y: int

    parsed = json.loads(dump_document({"ratio": Ratio(1.5), "point": Point(1, 2), "nan": float("nan"), "inf": float("inf")}))
    assert parsed == {"ratio": 1.5, "point": [1, 2], "nan": None, "inf": None}


def test_a_notification_with_a_nan_in_its_details_is_read_back_from_its_payload() -> None:
    """A NaN does not survive the payload (null), so the queued notification is not reused as is."""
    from dagster_monitoring.alerting.state import _plain

    assert _plain({"rows": 3, "share": 0.5, "list": [1.0, "x"]})
    assert not _plain({"share": float("nan")}) and not _plain([float("inf")])
