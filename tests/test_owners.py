"""Who owns an alert: the names routes (``owners:``) and ticket assignment groups match on."""

from __future__ import annotations

from datetime import datetime, timezone

import dagster as dg

from dagster_monitoring.checks.dbt import dbt_owners
from dagster_monitoring.translator import (
    OWNERS_METADATA_KEY,
    DagsterAlertTranslator,
    DagsterAlertTranslatorSettings,
    normalize_owner,
)

GROUPS = {
    "group.lender.data_eng": {"name": "data_eng", "owner": {"email": "data-eng@lender.example"}},
    "group.lender.risk": {"name": "risk", "owner": {"name": "team:risk"}},
}


def manifest(test_meta=None, test_group="data_eng"):
    return {
        "groups": GROUPS,
        "nodes": {
            "model.lender.stg_loans": {
                "resource_type": "model", "name": "stg_loans", "config": {"group": "data_eng", "meta": {"owner": "team:data-eng"}},
            },
            "test.lender.accepted_values_x": {
                "resource_type": "test", "name": "accepted_values_x", "depends_on": {"nodes": ["model.lender.stg_loans"]},
                "config": {"group": test_group, "meta": test_meta or {}},
            },
        },
    }


def test_a_team_tag_names_the_team_owner():
    assert normalize_owner("team", "data-eng") == "team:data-eng"
    assert normalize_owner("team", "team:data-eng") == "team:data-eng"
    assert normalize_owner("team", "ops@lender.example") == "ops@lender.example"
    assert normalize_owner("owner", "jane@lender.example") == "jane@lender.example"

    @dg.job(tags={"team": "data-eng", "owner": "jane@lender.example"})
    def nightly():
        pass

    run = dg.DagsterRun(job_name="nightly", run_id="r1", tags=dict(nightly.tags))
    assert DagsterAlertTranslator().get_run_owners(run) == ("team:data-eng", "jane@lender.example")


def test_a_dbt_tests_own_owner_wins_over_its_models():
    m = manifest(test_meta={"owner": "team:risk"})
    assert dbt_owners(m["nodes"]["test.lender.accepted_values_x"], m) == ["team:risk"]
    m = manifest(test_group="risk")  # a group set on the test itself
    assert dbt_owners(m["nodes"]["test.lender.accepted_values_x"], m) == ["team:risk"]
    m = manifest()  # nothing of its own (dbt copies the model's group): the model's owners
    assert dbt_owners(m["nodes"]["test.lender.accepted_values_x"], m) == ["team:data-eng", "data-eng@lender.example"]


def test_check_alert_owner_comes_from_the_check_then_the_asset_then_the_default():
    translator = DagsterAlertTranslator(DagsterAlertTranslatorSettings(default_owners=("team:platform",)))

    def owners(metadata, asset_owners=()):
        return translator.to_check_event(
            asset_key=dg.AssetKey("stg_loans"), check_name="accepted_values_x", passed=False,
            severity=dg.AssetCheckSeverity.ERROR, occurred_at=datetime.now(timezone.utc), metadata=metadata,
            owners=asset_owners,
        ).owners

    assert owners({OWNERS_METADATA_KEY: "team:risk"}, ("team:data-eng",)) == ("team:risk",)
    assert owners({}, ("team:data-eng",)) == ("team:data-eng",)
    assert owners({}) == ("team:platform",)


def test_ad_hoc_materializations_are_named_by_their_assets(tmp_path):
    """A "Materialize" click runs ``__ASSET_JOB``: the alert names the assets, not the job."""

    @dg.asset
    def stg_loans() -> int:
        raise ValueError("boom")

    @dg.asset(deps=[stg_loans])
    def fct_loans() -> int:
        return 1

    from dagster_monitoring.sensors.alerts import planned_assets

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.materialize([stg_loans, fct_loans], instance=instance, raise_on_error=False)
        run = instance.get_run_by_id(result.run_id)
        assets = planned_assets(instance, run)
    assert run.job_name.startswith("__") and not result.success
    event = DagsterAlertTranslator().to_run_event(run, failed=True, occurred_at=datetime.now(timezone.utc), assets=assets)
    assert event.entity == "fct_loans, stg_loans"
    assert event.fingerprint == "dagster:run:fct_loans, stg_loans"
    assert event.summary == "Materialization of fct_loans, stg_loans failed"
    assert "materialize fct_loans, stg_loans again" in event.next_action
