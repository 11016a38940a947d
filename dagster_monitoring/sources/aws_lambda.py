"""The AWS Lambda handler: EventBridge job events straight to the router, without Dagster.

Deploy this package (with its ``aws`` and ``postgres`` extras) as the function's code, set the
handler to ``dagster_monitoring.sources.aws_lambda.handler`` and ``DAGSTER_MONITORING_CONFIG``
to the monitoring YAML's path (bundled with the function, or on EFS). Trigger it with the SQS
queue the EventBridge rules target (``{"Records": [{"messageId", "body"}, ...]}``) or make it
the rules' target directly (the EventBridge event itself).

The state store must be one the Dagster deployment shares: ``state: {url: {env:
MONITORING_STATE_URL}}`` (PostgreSQL, reached from the function's VPC, RDS Proxy advised), not
a SQLite file in the function's temporary disk, which every cold start would lose.

Per invocation: every readable event is routed in one transaction, delivered, and written to
the audit trail (``external_job_runs``; the trail's spool is in ``/tmp`` unless configured, so
point ``audit`` at BigQuery or a shared file). If the state DB fails the handler raises, so SQS
(or EventBridge's retry policy) delivers the batch again; a body that can never be read is
dropped with a warning rather than retried forever. The router, trail and config are built
once per container and reused by warm invocations.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from ..alerting.redact import get_logger
from ..config import MonitoringConfig, load_config
from ..pipeline import build_pipeline
from .aws import lambda_events, normalise
from .ingest import SourceIngest

_log = get_logger(__name__)
CONFIG_ENV = "DAGSTER_MONITORING_CONFIG"


class LambdaApp:
    """The router (with its audit hooks) and the source ingest for one monitoring config; call it
    with an invocation's payload. Built once per container by :func:`handler`; tests build it."""

    def __init__(self, config: MonitoringConfig) -> None:
        from ..audit.alert_records import external_job_writer

        if config.sources.aws_eventbridge is None:
            raise ValueError("the Lambda handler needs sources.aws_eventbridge in the monitoring config")
        self.source = config.sources.aws_eventbridge
        self.router, self.trail = build_pipeline(config)
        writer = external_job_writer(self.trail) if self.trail is not None else None
        self.ingest = SourceIngest(self.router, config.sources, on_events=writer)

    def __call__(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        items = lambda_events(payload)
        events, ignored, unreadable = normalise([body for _, body in items], self.source)
        result = self.ingest.ingest(events, deliver=True)
        summary = {
            "received": len(items),
            "events": len(events),
            "ignored": ignored,
            "unreadable": unreadable,
            "notifications": len(result.notifications),
            "delivered": len(result.delivered),
        }
        _log.info("aws_lambda: %s", summary)
        # all or nothing: a failure raises and the whole batch comes back, so no item fails alone
        return {**summary, "batchItemFailures": []}


@lru_cache(maxsize=1)
def _app_for(path: str) -> LambdaApp:
    return LambdaApp(load_config(path))


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """The Lambda entry point."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise RuntimeError(f"set {CONFIG_ENV} to the monitoring YAML's path")
    return _app_for(path)(event)
