"""Small real jobs and assets the sensor tests run."""

import dagster as dg


class Switch(dg.Config):
    fail: bool = False


@dg.op
def load_loans(config: Switch) -> None:
    if config.fail:
        raise ValueError("negative principal on loan 1042")


@dg.job(tags={"team": "team:data-eng", "dagster-monitoring/runbook": "https://wiki.example/runbooks/loans"})
def loans_daily():
    load_loans()


def run_loans(instance: dg.DagsterInstance, fail: bool) -> dg.ExecuteInProcessResult:
    return loans_daily.execute_in_process(
        instance=instance, raise_on_error=False, run_config={"ops": {"load_loans": {"config": {"fail": fail}}}}
    )


@dg.asset(owners=["team:credit"])
def fct_loans() -> int:
    return 12


class RowCount(dg.Config):
    minimum: int = 100


@dg.asset_check(asset=fct_loans, blocking=False, description="enough loans loaded")
def row_count_ok(config: RowCount) -> dg.AssetCheckResult:
    rows = 12
    return dg.AssetCheckResult(
        passed=rows >= config.minimum, severity=dg.AssetCheckSeverity.ERROR,
        description=f"row count {rows} vs minimum {config.minimum}", metadata={"row_count": rows, "minimum": config.minimum},
    )


def materialize_loans(instance: dg.DagsterInstance, minimum: int) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [fct_loans, row_count_ok], instance=instance,
        run_config={"ops": {"fct_loans_row_count_ok": {"config": {"minimum": minimum}}}},
    )
