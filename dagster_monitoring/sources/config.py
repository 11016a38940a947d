"""The ``sources:`` section: external job systems (Fivetran, dbt Cloud, AWS) whose outcomes are alerts.

    sources:
      fivetran:
        api_key: {env: FIVETRAN_API_KEY}          # polling (a Dagster sensor); both or neither
        api_secret: {env: FIVETRAN_API_SECRET}
        webhook_secret: {env: FIVETRAN_WEBHOOK_SECRET}   # `dagster-monitoring serve`
        connectors: [warehouse_pg_prod]           # ids to poll; empty: every connection of the account
        owners: [team:data-eng]
        settle: 5m                                # a FAILURE waits this long for a SUCCESSFUL retry
      dbt_cloud:
        account_id: 12345
        api_token: {env: DBT_CLOUD_API_TOKEN}
        webhook_secret: {env: DBT_CLOUD_WEBHOOK_SECRET}
        jobs: [678]
      aws_eventbridge:
        queue_url: https://sqs.eu-west-1.amazonaws.com/123456789012/dagster-monitoring
        region: eu-west-1
        owners: [team:platform]
      elementary:
        schema: elementary                        # where Elementary's dbt package writes

Each source checks its own fields at load time (a poller needs its credentials, a source needs
a way in: polling or a webhook secret), so a typo or a missing variable fails naming the field.
Secrets are ``{env: NAME}`` like every receiver's, registered for redaction as they are read.
"""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..alerting.durations import Duration
from ..alerting.events import Severity
from ..alerting.transports._config import SecretValue


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/")


class SourceConfigBase(_Strict):
    """What every external source shares: who owns its alerts, how loud they are, how patient to be."""

    owners: tuple[str, ...] = Field(default=(), description="owners of this source's alerts (team:x, e-mails); route them with `owners:`")
    severity: Severity = Field(default=Severity.ERROR, description="severity of a failure from this source")
    tags: dict[str, str] = Field(default_factory=dict, description="tags added to every event (routes can match them)")
    timeout: Duration = Field(default=timedelta(seconds=10), description="per API request (polling)")
    max_retry_wait: Duration = Field(
        default=timedelta(seconds=30),
        description="longest total wait for 429 Retry-After answers inside one poll; beyond it the poll gives up until the next tick",
    )

    @field_validator("severity", mode="before")
    @classmethod
    def _severity(cls, value: object) -> Severity:
        return Severity.parse(value)  # type: ignore[arg-type]


class FivetranSourceConfig(SourceConfigBase):
    """Fivetran connections: polled through the REST API and/or pushed by Fivetran webhooks."""

    api_key: SecretValue | None = Field(default=None, description="REST API key, {env: NAME}; with api_secret, enables polling")
    api_secret: SecretValue | None = Field(default=None, description="REST API secret, {env: NAME}")
    webhook_secret: SecretValue | None = Field(
        default=None, description="the secret the Fivetran webhook signs with (X-Fivetran-Signature-256), {env: NAME}"
    )
    connectors: tuple[str, ...] = Field(default=(), description="connection ids to poll; empty: every connection the key can list")
    base_url: str = Field(default="https://api.fivetran.com", description="REST API base URL")
    dashboard_url: str = Field(
        default="https://fivetran.com/dashboard/connections", description="links: <dashboard_url>/<connection id> on every alert"
    )
    settle: Duration = Field(
        default=timedelta(minutes=5),
        description="a FAILURE is held this long and dropped if the same connector reports SUCCESSFUL meanwhile (Fivetran retries); 0s: alert at once",
    )
    page_size: int = Field(default=100, ge=1, le=1000, description="connections per page when listing")

    @field_validator("base_url", "dashboard_url")
    @classmethod
    def _urls(cls, value: str) -> str:
        return _http_url(value)

    @model_validator(mode="after")
    def _a_way_in(self) -> FivetranSourceConfig:
        if (self.api_key is None) != (self.api_secret is None):
            raise ValueError("give api_key and api_secret together (HTTP basic auth key:secret), or neither")
        if self.api_key is None and self.webhook_secret is None:
            raise ValueError("give api_key and api_secret (polling), webhook_secret (webhooks), or both")
        return self

    @property
    def polls(self) -> bool:
        return self.api_key is not None


class DbtCloudSourceConfig(SourceConfigBase):
    """dbt Cloud job runs: polled through the Administrative API v2 and/or pushed by dbt Cloud webhooks."""

    account_id: int = Field(ge=1, description="the dbt Cloud account id (in every URL of the account)")
    api_token: SecretValue | None = Field(
        default=None, description="service or personal token, {env: NAME}; sent as `Authorization: Token ...`, enables polling"
    )
    webhook_secret: SecretValue | None = Field(
        default=None, description="the webhook's secret token (its HMAC-SHA256 arrives in Authorization), {env: NAME}"
    )
    jobs: tuple[int, ...] = Field(default=(), description="job ids to poll; empty: every job of the account")
    project_id: int | None = Field(
        default=None,
        ge=1,
        description="the project, for run links on webhook alerts (webhooks do not carry it; polled runs have their own link)",
    )
    base_url: str = Field(default="https://cloud.getdbt.com", description="the account's access URL (API and run links)")
    settle: Duration = Field(default=timedelta(0), description="hold a failure this long, dropped if the job succeeds meanwhile")
    page_size: int = Field(default=100, ge=1, le=100, description="runs per API page")
    max_run_wait: Duration = Field(
        default=timedelta(hours=24), description="an unfinished run older than this no longer holds the poll cursor back"
    )

    @field_validator("base_url")
    @classmethod
    def _urls(cls, value: str) -> str:
        return _http_url(value)

    @model_validator(mode="after")
    def _a_way_in(self) -> DbtCloudSourceConfig:
        if self.api_token is None and self.webhook_secret is None:
            raise ValueError("give api_token (polling), webhook_secret (webhooks), or both")
        return self

    @property
    def polls(self) -> bool:
        return self.api_token is not None


_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCOUNT = re.compile(r"^\d{12}$")


class AwsEventBridgeSourceConfig(SourceConfigBase):
    """AWS Glue, Step Functions, AppFlow and DataSync state-change events, routed by EventBridge
    rules (from any account) to an SQS queue that a Dagster sensor reads, and/or to the Lambda
    handler ``dagster_monitoring.sources.aws_lambda.handler``."""

    queue_url: str | None = Field(
        default=None, description="the SQS queue the EventBridge rules target; enables the sensor (the Lambda handler needs none)"
    )
    region: str | None = Field(default=None, description="the queue's region, e.g. eu-west-1 (required with queue_url)")
    endpoint_url: str | None = Field(default=None, description="SQS endpoint override (a VPC endpoint, LocalStack, moto)")
    aws_access_key_id: SecretValue | None = Field(
        default=None, description="{env: NAME}; default: boto3's credential chain (instance role, AWS_PROFILE, ...)"
    )
    aws_secret_access_key: SecretValue | None = Field(default=None, description="{env: NAME}, with aws_access_key_id")
    aws_session_token: SecretValue | None = Field(default=None, description="{env: NAME}, for temporary credentials")
    accounts: tuple[str, ...] = Field(default=(), description="12-digit account ids to accept events from; empty: every account")
    datasync_task_names: dict[str, str] = Field(
        default_factory=dict, description="DataSync task id -> name for alerts (events carry only the execution ARN)"
    )
    long_running_severity: Severity = Field(
        default=Severity.WARN, description="severity of a 'Glue Job Run Status' event (a run past its notify delay)"
    )
    wait_time_seconds: int = Field(default=1, ge=0, le=20, description="SQS long-poll wait per receive call inside a sensor tick")
    max_messages_per_tick: int = Field(default=1000, ge=1, le=100_000, description="messages a sensor tick reads at most")
    settle: Duration = Field(default=timedelta(0), description="hold a failure this long, dropped if the job succeeds meanwhile")

    @field_validator("long_running_severity", mode="before")
    @classmethod
    def _long_severity(cls, value: object) -> Severity:
        return Severity.parse(value)  # type: ignore[arg-type]

    @field_validator("queue_url", "endpoint_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not _REGION.match(value):
            raise ValueError("must be an AWS region name such as eu-west-1")
        return value

    @field_validator("accounts")
    @classmethod
    def _accounts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [a for a in value if not _ACCOUNT.match(a)]
        if bad:
            raise ValueError(f"account ids are 12 digits: {bad}")
        return value

    @model_validator(mode="after")
    def _together(self) -> AwsEventBridgeSourceConfig:
        if self.queue_url is not None and self.region is None:
            raise ValueError("region is required with queue_url")
        if (self.aws_access_key_id is None) != (self.aws_secret_access_key is None):
            raise ValueError("give aws_access_key_id and aws_secret_access_key together, or neither (boto3's credential chain)")
        return self

    @property
    def polls(self) -> bool:
        return self.queue_url is not None


class ElementarySourceConfig(SourceConfigBase):
    """Elementary OSS results (``elementary_test_results``) read from the warehouse the audit trail
    is in: anomaly, schema-change and dbt test outcomes as alerts that open, repeat and resolve."""

    dataset: str = Field(
        default="elementary", alias="schema", description="the schema / BigQuery dataset Elementary's dbt package writes to"
    )
    database: str | None = Field(default=None, description="BigQuery project (or DuckDB catalog) holding it; default: the audit trail's")
    duckdb_path: str | None = Field(
        default=None, description="DuckDB file of dbt's warehouse, when Elementary is not in the audit trail's file (backend duckdb)"
    )
    test_types: tuple[str, ...] = Field(
        default=(), description="only these test_type values (anomaly_detection, schema_change, dbt_test); empty: all"
    )
    critical_tag: str = Field(default="critical", description="a failing test with this dbt tag is CRITICAL")
    lookback: Duration = Field(default=timedelta(days=1), description="the first tick reads results created this far back")
    max_rows_per_tick: int = Field(default=1000, ge=1, le=100_000, description="results a sensor tick reads at most (the next reads on)")
    report_url: str | None = Field(default=None, description="where your Elementary report is hosted: linked on every card")

    @field_validator("dataset", "database")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_\-]{1,1024}", value):
            raise ValueError("use letters, digits, underscores and dashes")
        return value

    @field_validator("report_url")
    @classmethod
    def _report(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @property
    def polls(self) -> bool:
        return True


class SourcesConfig(_Strict):
    fivetran: FivetranSourceConfig | None = Field(default=None, description="Fivetran connections as alert sources")
    dbt_cloud: DbtCloudSourceConfig | None = Field(default=None, description="dbt Cloud job runs as alert sources")
    aws_eventbridge: AwsEventBridgeSourceConfig | None = Field(
        default=None, description="AWS Glue / Step Functions / AppFlow / DataSync events through EventBridge (SQS or Lambda)"
    )
    elementary: ElementarySourceConfig | None = Field(
        default=None, description="Elementary OSS test results (anomalies, schema changes, dbt tests) read from the warehouse"
    )
