"""A code location for the asset-health tests: one asset and a WARN and an ERROR check, each
failing when its run config says so."""

import dagster as dg


class Outcome(dg.Config):
    fail: bool = False


@dg.asset(owners=["team:credit"])
def loan_book(config: Outcome) -> int:
    if config.fail:
        raise ValueError("loan book extract is empty")
    return 12


@dg.asset_check(asset=loan_book)
def currency_known(config: Outcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=not config.fail, severity=dg.AssetCheckSeverity.WARN, description="unknown currency GBX")


@dg.asset_check(asset=loan_book)
def principal_positive(config: Outcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=not config.fail, severity=dg.AssetCheckSeverity.ERROR, description="negative principal")


defs = dg.Definitions(assets=[loan_book], asset_checks=[currency_known, principal_positive])
