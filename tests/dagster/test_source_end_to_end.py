"""Issue 14's end-to-end proof: a Fivetran connector fails, polled by the real sensor against a local
Fivetran API. One Teams card and one Jira issue; repeats are suppressed; the recovery is one card
and the ticket is closed; the audit trail's external_job_runs and its views follow."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dagster_monitoring.audit.sinks.duckdb import DuckDBSink
from dagster_monitoring.config import config_from_dict
from dagster_monitoring.runtime import MonitoringRuntime
from dagster_monitoring.sensors.sources import build_fivetran_sensor

from ..helpers.fake_jira import FakeJira
from ..sources.fakes import FIVETRAN_KEY, FIVETRAN_SECRET, FakeFivetran, connection
from ..transports.test_teams import FakeTeamsWorkflow, card_of, card_texts, notification_id
from .test_source_sensors import Ticker

JIRA_TOKEN = "jira-api-token-Zq81mTx0"


def _z(hours_ago: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _query(path, sql: str) -> list[tuple]:
    return DuckDBSink(path).query(sql)[1]


def test_a_connector_fails_once_is_suppressed_recovers_once_with_card_ticket_and_audit(tmp_path, instance):
    audit_db = tmp_path / "audit.duckdb"
    with FakeFivetran() as api, FakeTeamsWorkflow() as teams, FakeJira(api_token=JIRA_TOKEN) as jira:
        api.connections["a"] = connection("a", "warehouse_pg", succeeded_at=_z(6), failed_at=_z(2))
        runtime = MonitoringRuntime(
            config_from_dict(
                {
                    "receivers": [
                        {"type": "teams", "name": "teams", "webhook_url": teams.webhook_url},
                        {
                            "type": "jira",
                            "name": "jira",
                            "base_url": jira.base_url,
                            "email": "alerts@example.com",
                            "api_token": JIRA_TOKEN,
                            "project": "DATA",
                        },
                    ],
                    "routes": [{"receivers": ["teams", "jira"]}],
                    "policy": {"flap_window": "0s"},
                    "state": {"path": str(tmp_path / "state.db")},
                    "audit": {"duckdb_path": str(audit_db), "spool_dir": str(tmp_path / "spool")},
                    "sources": {
                        "fivetran": {
                            "api_key": FIVETRAN_KEY,
                            "api_secret": FIVETRAN_SECRET,
                            "base_url": api.base_url,
                            "settle": "0s",
                            "owners": ["team:data-eng"],
                        }
                    },
                }
            )
        )
        tick = Ticker(build_fivetran_sensor(runtime=runtime), instance)
        assert "1 event(s), 1 failing" in tick()
        tick()  # the same failed sync polled again
        api.connections["a"]["failed_at"] = _z(1)  # and the next sync fails too: ongoing, not new
        tick()
        failure_cards = [card_of(r) for r in teams.accepted]
        assert len(failure_cards) == 1 and len(jira.issues) == 1
        assert "warehouse_pg" in card_texts(failure_cards[0])[0]
        [issue] = jira.issues
        assert not issue.done and "warehouse_pg" in issue.fields["summary"]
        failing = _query(audit_db, "SELECT last_status, failures_9d FROM dagster_audit.vw_external_job_runs")
        assert failing == [("failed", 2)]
        assert _query(audit_db, "SELECT count(*) FROM dagster_audit.vw_recent_failures WHERE entity = 'warehouse_pg'") == [(1,)]

        api.connections["a"]["succeeded_at"] = _z(0.1)
        tick()
        tick()  # the good state polled again: no second recovery
        cards = [card_of(r) for r in teams.accepted]
        assert len(cards) == 2 and "warehouse_pg" in card_texts(cards[1])[0]
        assert notification_id(cards[1]) != notification_id(cards[0])  # the recovery card, not the failure again
        assert len(jira.issues) == 1 and jira.issues[0].done
        assert _query(audit_db, "SELECT last_status, runs_9d, failures_9d FROM dagster_audit.vw_external_job_runs") == [("succeeded", 3, 2)]
        assert _query(audit_db, "SELECT count(*) FROM dagster_audit.vw_recent_failures WHERE entity = 'warehouse_pg'") == [(0,)]
        assert teams.violations == [] and jira.violations == [] and api.violations == []
