-- One immutable row per run status change (STARTED, SUCCESS, FAILURE, CANCELED).
-- event_id = run_id:status, so a status seen twice is one row.
CREATE TABLE IF NOT EXISTS dagster_audit.runs (
  event_id STRING NOT NULL,
  event_ts TIMESTAMP NOT NULL,          -- when the status changed (UTC)
  run_id STRING NOT NULL,
  job_name STRING NOT NULL,
  code_location STRING,
  status STRING NOT NULL,               -- STARTED | SUCCESS | FAILURE | CANCELED
  partition_key STRING,
  started_at TIMESTAMP,
  ended_at TIMESTAMP,
  duration_s FLOAT64,
  error_class STRING,                   -- redacted
  error_message STRING,                 -- redacted, truncated
  owners STRING,                        -- comma-separated owners (job tags / asset owners)
  run_url STRING,
  tags JSON,
  ingested_at TIMESTAMP NOT NULL,
  PRIMARY KEY (event_id) NOT ENFORCED
)
PARTITION BY DATE(event_ts)
CLUSTER BY job_name, status
OPTIONS (description = 'dagster-monitoring: one row per Dagster run status change');
