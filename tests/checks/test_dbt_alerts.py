"""End to end: a real `dbt build` with bad data, the alert sensor, and the card that reaches a
local Teams server — critical dbt test -> CRITICAL card with dbt's message, owner and links;
the warn test -> a WARN card; fixing the data -> recovered cards."""

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource

from dagster_monitoring.alerting.transports.teams_card import ZWSP
from dagster_monitoring.audit.resource import AuditResource
from dagster_monitoring.checks.dbt import MonitoringDbtTranslator, MonitoringDbtTranslatorSettings
from dagster_monitoring.config import config_from_dict
from dagster_monitoring.runtime import MonitoringRuntime
from dagster_monitoring.sensors.alerts import build_alert_sensor

from ..helpers.http_server import LocalHTTPServer, Response
from .test_dbt import BAD_LOAN, CRITICAL_FAILING, DBT, WARN_FAILING, _dbt_version_once, copy_project, lender_assets, manifest, parsed_project  # noqa: F401


def card_of(request):
    return request.json["attachments"][0]["content"]


def facts(card):
    """The lifecycle facts (since when, how often, who owns it)."""
    for block in card["body"]:
        if block["type"] == "FactSet" and any(f["title"] in ("Failing since", "Recovered at") for f in block["facts"]):
            return {f["title"]: f["value"] for f in block["facts"]}
    raise AssertionError("no facts")


def test_failing_dbt_tests_reach_teams_with_severity_message_and_owner_then_recover(parsed_project, manifest, tmp_path):  # noqa: F811
    project = copy_project(parsed_project, tmp_path / "lender")
    translator = MonitoringDbtTranslator(MonitoringDbtTranslatorSettings(block_on_critical=False))
    assets = lender_assets(manifest, translator, raise_on_error=False)
    resources = {
        "dbt": DbtCliResource(project_dir=str(project), dbt_executable=str(DBT)),
        "audit": AuditResource(duckdb_path=str(tmp_path / "audit.duckdb"), spool_dir=str(tmp_path / "spool")),
    }
    repo = dg.Definitions(assets=[assets], resources=resources).get_repository_def()
    (tmp_path / "home").mkdir()
    with LocalHTTPServer(default=Response(202)) as teams, dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        runtime = MonitoringRuntime(config_from_dict({
            "dagster_base_url": "http://dagster.local",
            "receivers": [{"type": "teams", "name": "teams", "webhook_url": teams.url("/workflows/x?sig=s3cr3tsig")}],
            "routes": [{"receivers": ["teams"]}],
            # one card per test (what each says is the point here; tests/test_grouping.py groups them)
            "policy": {"flap_window": "0s", "group_by": []},
            "state": {"path": str(tmp_path / "state.db")},
            "audit": {"duckdb_path": str(tmp_path / "audit.duckdb"), "spool_dir": str(tmp_path / "spool")},
        }))
        sensor = build_alert_sensor(runtime=runtime)

        def tick(cursor):
            context = dg.build_sensor_context(instance=instance, cursor=cursor, repository_def=repo)
            sensor(context)
            return context.cursor

        cursor = tick(None)
        dg.materialize([assets], resources=resources, instance=instance, raise_on_error=False)  # green
        with duckdb.connect(str(project / "target" / "lender.duckdb")) as con:
            con.execute(f"INSERT INTO raw.loans VALUES {BAD_LOAN}")
        dg.materialize([assets], resources=resources, instance=instance, raise_on_error=False)  # broken
        cursor = tick(cursor)
        cards = {card_of(r)["body"][-1]["text"]: card_of(r) for r in teams.settled() if r.accepted}

        critical = next(c for k, c in cards.items() if CRITICAL_FAILING in k)
        f = facts(critical)
        assert f["Failures"] == "1 in a row" and "team:data-eng" in f["Owner"]  # dbt meta.owner
        header = critical["body"][0]["items"]
        assert header[0]["text"] == "CRITICAL · NEW"
        assert header[1]["text"] == "Critical dbt test failed: not_null on stg_loans.principal_amount"  # what it is
        # (a fact's long words carry zero-width break opportunities, so they wrap on a phone)
        detail_facts = {f["title"]: f["value"].replace(ZWSP, "") for b in critical["body"] if b["type"] == "Container" and not b.get("bleed")
                        for i in b["items"] if i["type"] == "FactSet" for f in i["facts"]}
        assert detail_facts == {
            "Test": CRITICAL_FAILING, "Model": "stg_loans", "Column": "principal_amount", "Failing rows": "1 row",
            "dbt says": "Got 1 result, configured to fail if != 0",  # dbt's own message; no raw metadata keys
        }
        assert "compiled/lender/models/staging" in str(critical)  # where to find the failing SQL
        actions = {a["title"]: a["url"] for a in critical["actions"]}
        assert actions["Open run"].startswith("http://dagster.local/runs/")
        assert "checkDetail=" + CRITICAL_FAILING in actions["Asset check"]

        warn = next(c for k, c in cards.items() if WARN_FAILING in k)
        assert warn["body"][0]["items"][0]["text"] == "WARN · NEW"
        assert warn["body"][0]["items"][1]["text"].startswith("dbt test warning: accepted_values on stg_loans.status")
        assert "s3cr3tsig" not in str(cards)

        with duckdb.connect(str(project / "target" / "lender.duckdb")) as con:  # the fix lands
            con.execute("DELETE FROM raw.loans WHERE principal_amount IS NULL OR status NOT IN ('active', 'repaid', 'defaulted', 'written_off')")
        dg.materialize([assets], resources=resources, instance=instance, raise_on_error=False)
        tick(cursor)
        recovered = [card_of(r) for r in teams.settled() if r.accepted and card_of(r)["body"][0]["items"][0]["text"] == "RECOVERED"]
        assert {c["body"][-1]["text"].split(" · ")[0].split(":")[-1] for c in recovered} >= {CRITICAL_FAILING, WARN_FAILING}
        assert all(c["body"][0]["items"][1]["text"].startswith("Recovered: dbt test ") for c in recovered if "dbt:" in c["body"][-1]["text"])
