"""Code locations that fail to load: a workspace's load errors, seen from outside.

A sensor runs inside a code location that loaded, so a location that raised at import cannot
report itself. ``dagster-monitoring watch --workspace workspace.yaml`` loads the workspace the
way the webserver and daemon do (a code server per location, or the ``grpc_server`` entries of a
deployment) and makes one ``code_location`` event per location: FAILING with the (redacted) load
error, PASSING once it loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..alerting.events import AlertEvent, Status
from ..translator import default_error_line
from .config import CodeLocationsConfig


def code_location_events(
    request_context: Any, config: CodeLocationsConfig, now: datetime, *, base_url: str | None, owners: Sequence[str] = ()
) -> list[AlertEvent]:
    """``request_context``: a Dagster workspace request context (``WorkspaceProcessContext.create_request_context()``)."""
    links = {"code_locations": f"{base_url}/locations"} if base_url else {}
    events = []
    for name, entry in request_context.get_code_location_entries().items():
        if entry.load_error is not None:
            error = default_error_line(entry.load_error)
            status, summary = Status.FAILING, f"Code location {name} failed to load: {error}"
            details: dict[str, object] = {"Error": error, "Code location": name}
        elif entry.code_location is not None:
            status, summary, details = Status.PASSING, f"Code location {name} loaded", {"Code location": name}
        else:
            continue  # still loading
        events.append(
            AlertEvent(
                source="dagster",
                kind="code_location",
                entity=name,
                status=status,
                severity=config.severity,
                occurred_at=now,
                summary=summary,
                details=details,
                owners=tuple(owners),
                links=links,
                next_action=(
                    f"Nothing defined in {name} runs while it fails to load: its schedules, sensors and jobs are gone "
                    "from the UI and the daemon. Read the error (Deployment > Code locations), fix the import or its "
                    "dependency and redeploy, or reload the location once its dependency (a database, a package) is back."
                ),
            )
        )
    return events
