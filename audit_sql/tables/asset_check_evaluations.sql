-- One row per asset check evaluation, blocking or not (a failed non-blocking ERROR check
-- leaves the run green: this table is where it still shows).
CREATE TABLE IF NOT EXISTS dagster_audit.asset_check_evaluations (
  event_id STRING NOT NULL,
  event_ts TIMESTAMP NOT NULL,
  run_id STRING,
  job_name STRING,
  asset_key STRING NOT NULL,
  check_name STRING NOT NULL,
  passed BOOL NOT NULL,
  severity STRING NOT NULL,             -- WARN | ERROR
  blocking BOOL,
  description STRING,
  owners STRING,
  run_url STRING,
  metadata JSON,
  ingested_at TIMESTAMP NOT NULL,
  PRIMARY KEY (event_id) NOT ENFORCED
)
PARTITION BY DATE(event_ts)
CLUSTER BY asset_key, check_name, passed
OPTIONS (description = 'dagster-monitoring: one row per asset check evaluation');
