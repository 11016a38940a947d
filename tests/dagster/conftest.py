from __future__ import annotations

import pytest
import dagster as dg


@pytest.fixture
def instance(tmp_path):
    """A real, persistent Dagster instance in a temporary DAGSTER_HOME (SQLite storage)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst
