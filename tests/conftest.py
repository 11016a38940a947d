from __future__ import annotations

import pytest

from dagster_monitoring.alerting import redact

from .helpers.factories import SimClock


@pytest.fixture
def clock() -> SimClock:
    return SimClock()


@pytest.fixture(autouse=True)
def _fresh_secret_registry():
    """Each test registers its own secrets."""
    redact.clear_registered_secrets()
    yield
    redact.clear_registered_secrets()
