from __future__ import annotations

from pathlib import Path

import pytest

from dagster_monitoring.audit.config import AuditConfig
from dagster_monitoring.audit.trail import AuditTrail

from . import story


def write_story(path: Path) -> AuditTrail:
    trail = AuditTrail.from_config(AuditConfig(duckdb_path=str(path / "audit.duckdb"), spool_dir=str(path / "spool")))
    result = trail.write(story.records())
    assert result.spooled == 0 and result.held == 0
    return trail


@pytest.fixture(scope="module")
def story_trail(tmp_path_factory: pytest.TempPathFactory) -> AuditTrail:
    return write_story(tmp_path_factory.mktemp("report"))
