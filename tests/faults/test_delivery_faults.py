"""Delivery under faults: no alert lost, duplicates only for what was in flight, ticks not held.

Each scenario (see ``delivery_harness``) runs a real router against a real local receiver.
"""

from __future__ import annotations

import pytest

from ..helpers.http_server import Response
from . import delivery_harness as h


@pytest.mark.parametrize(
    ("scenario", "faults"),
    [
        ("5xx", [Response(500)] * 6 + [Response(503)] * 6),
        ("429", [Response(429, headers={"Retry-After": "30"})] * 4),
        ("timeout", [Response(200, delay=1.5)] * 3),  # held past the client's 0.5 s timeout
    ],
)
def test_http_faults_lose_nothing_and_send_once(tmp_path, scenario, faults):
    result = h.http_fault(tmp_path, scenario, faults)
    assert result.delivered == result.alerts == 20
    assert (result.lost, result.duplicates) == (0, 0), result


def test_refused_receiver_keeps_everything_until_it_comes_back(tmp_path):
    result = h.refused(tmp_path)
    assert result.notes["pending_while_down"] == result.alerts  # nothing dropped while down
    assert (result.lost, result.duplicates) == (0, 0), result


def test_hung_smtp_does_not_hold_the_tick_or_the_other_receiver(tmp_path):
    result = h.hung_smtp(tmp_path, smtp_timeout=3.0)
    # Before the fix a call joined the mail worker: attempts x timeout (6 s here) per call.
    # With a 1 s budget the tick is released while the relay still hangs.
    assert result.max_tick_s < result.notes["mail_timeout_s"], result
    assert result.notes["webhook_delivered_in_first_tick"] == result.alerts
    assert result.notes["distinct_mails"] == result.alerts  # every mail went out once the relay was back
    assert (result.lost, result.duplicates) == (0, 0), result


def test_sigkill_mid_delivery_resends_at_most_the_in_flight_post(tmp_path):
    result = h.sigkill_mid_delivery(tmp_path, n_alerts=400, kills=10)
    assert result.notes["kills"] == 10
    assert result.lost == 0, result
    assert result.duplicates <= result.duplicate_bound, result  # one in-flight POST per kill at most
