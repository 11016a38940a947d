"""The alert kinds the alert sensor adds to runs and checks: an asset that failed to materialize,
a run in progress past its limit, and check evaluations reported without a run. Real instance,
real runs (``materialize``, run records moved through Dagster's own run events), real sensor
evaluations; the router's output is read from the file receiver."""

import json
import time

import dagster as dg
import pytest
from dagster._core.definitions.events import (
    AssetMaterializationFailure,
    AssetMaterializationFailureReason,
    AssetMaterializationFailureType,
)
from dagster._core.events import DagsterEvent, DagsterEventType

from dagster_monitoring.alerting.notification import Notification
from dagster_monitoring.alerting.transports.teams_card import build_card
from dagster_monitoring.sensors.alerts import build_alert_sensor
from dagster_monitoring.sensors.long_runs import MAX_RUNTIME_TAG

from ..helpers.postgres import postgres_cluster, postgres_url  # noqa: F401  (fixtures)
from ..test_card_schema import assert_valid_card
from .jobs import Switch, fct_loans, loans_daily, materialize_loans, row_count_ok
from .test_alert_sensor import runtime_for, sent

ONE_BY_ONE = {"flap_window": "0s", "group_by": []}  # each alert its own notification, to count them


@dg.asset(owners=["team:ledger"], retry_policy=dg.RetryPolicy(max_retries=2))
def ledger(config: Switch) -> int:
    if config.fail:
        raise ValueError("ledger does not balance: 12.50 EUR off")
    return 1


@dg.asset(deps=[ledger])
def ledger_report() -> int:
    return 2


@dg.asset(retry_policy=dg.RetryPolicy(max_retries=1))
def flaky_extract(context: dg.AssetExecutionContext) -> int:
    if context.retry_number == 0:
        raise ConnectionError("connection reset by peer")
    return 3


@dg.multi_asset(outs={"loans_eu": dg.AssetOut(), "loans_us": dg.AssetOut()}, can_subset=False)
def loans_by_region():
    yield dg.Output(1, output_name="loans_eu")
    raise RuntimeError("US extract timed out")


DEFS = dg.Definitions(assets=[ledger, ledger_report, flaky_extract, loans_by_region, fct_loans], asset_checks=[row_count_ok])


def tick(sensor, instance, cursor):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=DEFS)
    result = sensor(context)
    return context.cursor, result


def of_kind(tmp_path, kind):
    return [a for a in sent(tmp_path) if a["event"]["kind"] == kind]


def card_text(alert):
    """Everything the Teams card built from a notification shows (its JSON, text and buttons),
    once the card passed the official Adaptive Card 1.5 schema."""
    card = build_card(Notification.from_dict(alert))
    assert_valid_card(card)
    return json.dumps(card, ensure_ascii=False)


def materialize_ledger(instance, fail):
    return dg.materialize(
        [ledger, ledger_report], instance=instance, raise_on_error=False, run_config={"ops": {"ledger": {"config": {"fail": fail}}}}
    )


# -- asset materialization failed --------------------------------------------------------------


def test_an_asset_failing_after_its_retries_alerts_once_and_recovers_when_materialized_again(tmp_path, instance):
    sensor = build_alert_sensor(runtime=runtime_for(tmp_path, policy=ONE_BY_ONE))
    cursor, _ = tick(sensor, instance, None)
    failed = materialize_ledger(instance, fail=True)
    assert not failed.success
    retries = instance.get_records_for_run(failed.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY).records
    assert len(retries) == 2  # it was retried, and failed on its last attempt
    cursor, _ = tick(sensor, instance, cursor)

    alerts = of_kind(tmp_path, "materialization")
    assert [(a["event"]["entity"], a["transition"]) for a in alerts] == [("ledger", "new")]  # not ledger_report: it never ran
    event = alerts[0]["event"]
    assert event["status"] == "failing" and event["severity"] == "error"
    assert event["owners"] == ["team:ledger"]  # the asset's owner
    assert event["details"]["error"] == "ValueError: ledger does not balance: 12.50 EUR off"
    assert event["details"]["step"] == "ledger"
    assert event["links"]["run"] == f"http://dagster.local:3000/runs/{failed.run_id}"
    assert event["links"]["asset"] == "http://dagster.local:3000/assets/ledger"
    assert "retries are used up" in event["next_action"] and "materialize ledger again" in event["next_action"]
    card = card_text(alerts[0])
    for text in (
        "Materialization of ledger failed",
        "ledger does not balance",
        "team:ledger",
        "retries are used up",
        event["links"]["asset"],
    ):
        assert text in card, text

    materialize_ledger(instance, fail=True)  # still broken: the same incident, no second message
    cursor, _ = tick(sensor, instance, cursor)
    assert [a["transition"] for a in of_kind(tmp_path, "materialization")] == ["new"]

    fixed = materialize_ledger(instance, fail=False)
    assert fixed.success
    cursor, _ = tick(sensor, instance, cursor)
    tick(sensor, instance, cursor)  # nothing more on a quiet tick
    alerts = of_kind(tmp_path, "materialization")
    assert [a["transition"] for a in alerts] == ["new", "recovered"]
    assert alerts[1]["incident"]["failures"] == 2
    assert alerts[1]["event"]["links"]["fixed_by_run"] == f"http://dagster.local:3000/runs/{fixed.run_id}"


def test_a_step_retried_then_succeeding_does_not_alert(tmp_path, instance):
    sensor = build_alert_sensor(runtime=runtime_for(tmp_path, policy=ONE_BY_ONE))
    cursor, _ = tick(sensor, instance, None)
    result = dg.materialize([flaky_extract], instance=instance)
    assert result.success
    assert len(instance.get_records_for_run(result.run_id, of_type=DagsterEventType.STEP_UP_FOR_RETRY).records) == 1
    cursor, message = tick(sensor, instance, cursor)
    assert "1 run status change(s)" in message.skip_message
    assert sent(tmp_path) == []


def test_a_step_that_failed_after_materializing_part_of_its_assets_alerts_for_the_rest(tmp_path, instance):
    sensor = build_alert_sensor(runtime=runtime_for(tmp_path, policy=ONE_BY_ONE))
    cursor, _ = tick(sensor, instance, None)
    assert not dg.materialize([loans_by_region], instance=instance, raise_on_error=False).success
    tick(sensor, instance, cursor)
    alerts = of_kind(tmp_path, "materialization")
    assert [(a["event"]["entity"], a["transition"]) for a in alerts] == [("loans_us", "new")]
    assert alerts[0]["event"]["details"]["error"] == "RuntimeError: US extract timed out"


def test_dagsters_own_failed_to_materialize_event_is_not_stored_by_oss_so_the_verdict_is_derived(tmp_path, instance):
    """Dagster 1.13 has ASSET_FAILED_TO_MATERIALIZE, but OSS event log storages drop it
    (``can_store_asset_failure_events`` is False): the run has none even when it is reported, and
    the sensor's own verdict is the one alert. If a Dagster upgrade starts keeping it, this fails
    and the sensor should read Dagster's event instead."""
    sensor = build_alert_sensor(runtime=runtime_for(tmp_path, policy=ONE_BY_ONE))
    cursor, _ = tick(sensor, instance, None)
    failed = materialize_ledger(instance, fail=True)
    failure = AssetMaterializationFailure(
        asset_key=dg.AssetKey("ledger"),
        failure_type=AssetMaterializationFailureType.FAILED,
        reason=AssetMaterializationFailureReason.FAILED_TO_MATERIALIZE,
    )
    instance.report_dagster_event(
        DagsterEvent.build_asset_failed_to_materialize_event(failed.job_def.name, "ledger", failure), failed.run_id
    )
    assert instance.get_records_for_run(failed.run_id, of_type=DagsterEventType.ASSET_FAILED_TO_MATERIALIZE).records == []
    tick(sensor, instance, cursor)
    assert [(a["event"]["entity"], a["transition"]) for a in of_kind(tmp_path, "materialization")] == [("ledger", "new")]


# -- run too long --------------------------------------------------------------------------------


def start_run(instance, started_ago_s, tags=None):
    """A run of loans_daily in progress since ``started_ago_s`` seconds, moved by Dagster's own run events."""
    run = instance.create_run_for_job(job_def=loans_daily, tags={"team": "team:data-eng", **(tags or {})})
    report_run_event(instance, run.run_id, DagsterEventType.RUN_START, time.time() - started_ago_s)
    return run


def report_run_event(instance, run_id, event_type, at):
    instance.report_dagster_event(DagsterEvent(event_type_value=event_type.value, job_name="loans_daily"), run_id, timestamp=at)


def test_a_run_past_its_tagged_limit_alerts_and_recovers_once_when_it_ends(tmp_path, instance):
    sensor = build_alert_sensor(runtime=runtime_for(tmp_path, policy=ONE_BY_ONE))
    cursor, _ = tick(sensor, instance, None)
    start_run(instance, 600, {MAX_RUNTIME_TAG: "1h"})  # within its limit
    run = start_run(instance, 7_200, {MAX_RUNTIME_TAG: "30m"})
    cursor, message = tick(sensor, instance, cursor)
    assert "1 run(s) over their limit" in message.skip_message
    cursor, _ = tick(sensor, instance, cursor)  # still running: ongoing, not announced again

    alerts = of_kind(tmp_path, "run_too_long")
    assert [(a["event"]["entity"], a["transition"]) for a in alerts] == [("loans_daily", "new")]
    event = alerts[0]["event"]
    assert event["severity"] == "warn" and event["owners"] == ["team:data-eng"]
    assert event["details"]["running_for"] == "2h 00m" and event["details"]["limit"] == "30m"
    assert event["details"]["limit_from"] == "run tag dagster-monitoring/max_runtime=30m"
    assert event["summary"] == "Run of loans_daily has been running for 2h 00m, over its limit of 30m"
    assert event["links"]["run"] == f"http://dagster.local:3000/runs/{run.run_id}"
    assert "Terminate the run if it is stuck" in event["next_action"]
    card = card_text(alerts[0])
    for text in (
        "running for 2h 00m",
        "Limit from",
        "run tag dagster-monitoring/max_runtime=30m",
        "Terminate the run",
        event["links"]["run"],
    ):
        assert text in card, text

    report_run_event(instance, run.run_id, DagsterEventType.RUN_SUCCESS, time.time())
    cursor, _ = tick(sensor, instance, cursor)
    tick(sensor, instance, cursor)
    alerts = of_kind(tmp_path, "run_too_long")
    assert [a["transition"] for a in alerts] == ["new", "recovered"]
    assert alerts[1]["event"]["details"]["running_for"] == "2h 00m"  # the failing event's card facts, plus how long it was broken
    assert "RECOVERED" in card_text(alerts[1])


def test_two_runs_of_a_job_too_long_are_one_incident_reminded_and_resolved_when_the_last_ends(tmp_path, instance):
    sensor = build_alert_sensor(runtime=runtime_for(tmp_path, policy={**ONE_BY_ONE, "repeat_interval": "1s"}))
    cursor, _ = tick(sensor, instance, None)
    first = start_run(instance, 7_200, {MAX_RUNTIME_TAG: "30m"})
    second = start_run(instance, 3_600, {MAX_RUNTIME_TAG: "30m"})
    cursor, _ = tick(sensor, instance, cursor)
    assert [a["transition"] for a in of_kind(tmp_path, "run_too_long")] == ["new"]
    time.sleep(1.1)  # past repeat_interval: the run still too long is reported again, and reminded
    report_run_event(instance, first.run_id, DagsterEventType.RUN_FAILURE, time.time())
    cursor, _ = tick(sensor, instance, cursor)  # one run ended, the other is still too long: not resolved
    assert [a["transition"] for a in of_kind(tmp_path, "run_too_long")] == ["new", "reminder"]
    report_run_event(instance, second.run_id, DagsterEventType.RUN_SUCCESS, time.time())
    tick(sensor, instance, cursor)
    alerts = of_kind(tmp_path, "run_too_long")
    assert [a["transition"] for a in alerts] == ["new", "reminder", "recovered"]
    assert alerts[1]["event"]["details"]["running_for"] == "1h 00m"  # the run still going, reported again


def test_the_limit_comes_from_the_config_or_from_twice_the_p95_of_past_runs(tmp_path, instance):
    now = time.time()
    for i in range(5):  # history: five successful runs of 60 s
        run = instance.create_run_for_job(job_def=loans_daily)
        report_run_event(instance, run.run_id, DagsterEventType.RUN_START, now - 10_000 + i * 100)
        report_run_event(instance, run.run_id, DagsterEventType.RUN_SUCCESS, now - 10_000 + i * 100 + 60)
    start_run(instance, 150)  # 2.5 min > 2 × 60 s
    for d in ("history", "quiet", "config"):
        (tmp_path / d).mkdir()

    by_history = build_alert_sensor(runtime=runtime_for(tmp_path / "history", policy=ONE_BY_ONE))
    tick(by_history, instance, tick(by_history, instance, None)[0])
    alerts = of_kind(tmp_path / "history", "run_too_long")
    assert [a["transition"] for a in alerts] == ["new"]
    assert alerts[0]["event"]["details"]["limit"] == "2m"
    assert alerts[0]["event"]["details"]["limit_from"] == "2 × the p95 duration (1m) of the job's last 5 successful runs"

    too_little_history = {"min_history_runs": 6, "history_runs": 20}
    quiet = build_alert_sensor(runtime=runtime_for(tmp_path / "quiet", policy=ONE_BY_ONE, run_duration=too_little_history))
    tick(quiet, instance, tick(quiet, instance, None)[0])
    assert sent(tmp_path / "quiet") == []

    configured = {"limits": {"loans_*": "5m"}, "p95_multiplier": None}
    by_config = build_alert_sensor(runtime=runtime_for(tmp_path / "config", policy=ONE_BY_ONE, run_duration=configured))
    start_run(instance, 600)
    tick(by_config, instance, tick(by_config, instance, None)[0])
    alerts = of_kind(tmp_path / "config", "run_too_long")
    assert [a["transition"] for a in alerts] == ["new"]  # one incident for the job, though only the 10-minute run is over 5m
    assert alerts[0]["event"]["details"]["limit_from"] == "run_duration.limits['loans_*'] in the monitoring config"


# -- runless asset-check evaluations -----------------------------------------------------------


def report_reconciliation(instance, passed):
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("fct_loans"),
            check_name="ledger_reconciliation",
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=None if passed else "3 loans missing from the ledger",
            metadata={"missing": 0 if passed else 3},
        )
    )


def test_a_check_evaluation_reported_without_a_run_alerts_and_recovers(tmp_path, instance):
    sensor = build_alert_sensor(runtime=runtime_for(tmp_path, policy=ONE_BY_ONE))
    report_reconciliation(instance, passed=False)  # before the first tick: history, not replayed
    cursor, _ = tick(sensor, instance, None)
    materialize_loans(instance, minimum=100)  # a failing check inside a run: read once, with its run
    report_reconciliation(instance, passed=False)
    cursor, message = tick(sensor, instance, cursor)
    assert "1 runless check evaluation(s)" in message.skip_message

    alerts = of_kind(tmp_path, "asset_check")
    assert sorted((a["event"]["entity"], a["transition"]) for a in alerts) == [
        ("fct_loans:ledger_reconciliation", "new"),
        ("fct_loans:row_count_ok", "new"),
    ]
    runless = next(a["event"] for a in alerts if a["event"]["entity"] == "fct_loans:ledger_reconciliation")
    assert runless["run_id"] is None and "run" not in runless["links"]
    assert runless["owners"] == ["team:credit"]  # the asset's owner
    assert runless["details"]["result"] == "3 loans missing from the ledger" and runless["details"]["missing"] == 3
    assert runless["links"]["asset_check"].endswith("/assets/fct_loans?view=checks&checkDetail=ledger_reconciliation")
    card = card_text(next(a for a in alerts if a["event"]["entity"] == "fct_loans:ledger_reconciliation"))
    for text in ("ledger_reconciliation", "3 loans missing from the ledger", "team:credit", runless["links"]["asset_check"]):
        assert text in card, text

    report_reconciliation(instance, passed=True)
    cursor, _ = tick(sensor, instance, cursor)
    tick(sensor, instance, cursor)
    transitions = [a["transition"] for a in of_kind(tmp_path, "asset_check") if a["event"]["entity"].endswith("reconciliation")]
    assert transitions == ["new", "recovered"]


def test_a_cursor_from_before_runless_checks_keeps_its_place_and_replays_no_history(tmp_path, instance):
    sensor = build_alert_sensor(runtime=runtime_for(tmp_path, policy=ONE_BY_ONE))
    report_reconciliation(instance, passed=False)
    old = json.dumps({"after": 0})  # the format every earlier version wrote
    cursor, _ = tick(sensor, instance, old)
    assert json.loads(cursor)["after"] == 0 and json.loads(cursor)["runless_checks_after"] > 0
    assert sent(tmp_path) == []
    report_reconciliation(instance, passed=False)
    tick(sensor, instance, cursor)
    assert [a["transition"] for a in sent(tmp_path)] == ["new"]


@pytest.mark.postgres
def test_on_a_postgres_instance_runless_checks_and_long_runs_alert_too(tmp_path, postgres_url):  # noqa: F811 (fixture)
    """The production storage: one Postgres event log, read by storage id like the SQLite index shard."""
    url = postgres_url.replace("postgresql+psycopg://", "postgresql+psycopg2://")  # dagster-postgres speaks psycopg2
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home"), overrides={"storage": {"postgres": {"postgres_url": url}}}) as instance:
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        sensor = build_alert_sensor(runtime=runtime_for(tmp_path, policy=ONE_BY_ONE))
        report_reconciliation(instance, passed=False)  # history: not replayed
        cursor, _ = tick(sensor, instance, None)
        report_reconciliation(instance, passed=False)
        start_run(instance, 7_200, {MAX_RUNTIME_TAG: "30m"})
        assert materialize_loans(instance, minimum=100).success  # a failing check of a run: read with the run, once
        cursor, _ = tick(sensor, instance, cursor)
        report_reconciliation(instance, passed=True)
        tick(sensor, instance, cursor)
        assert sorted((a["event"]["kind"], a["event"]["entity"], a["transition"]) for a in sent(tmp_path)) == [
            ("asset_check", "fct_loans:ledger_reconciliation", "new"),
            ("asset_check", "fct_loans:ledger_reconciliation", "recovered"),
            ("asset_check", "fct_loans:row_count_ok", "new"),
            ("run_too_long", "loans_daily", "new"),
        ]
