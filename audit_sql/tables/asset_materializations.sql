-- One row per asset materialization event. event_id = run_id:storage_id (or a content hash).
CREATE TABLE IF NOT EXISTS dagster_audit.asset_materializations (
  event_id STRING NOT NULL,
  event_ts TIMESTAMP NOT NULL,
  run_id STRING NOT NULL,
  job_name STRING,
  asset_key STRING NOT NULL,            -- slash-joined key path, e.g. loans/fct_repayments
  partition_key STRING,
  step_key STRING,
  row_count INT64,                      -- from metadata (dagster/row_count, rows_loaded) when present
  metadata JSON,
  ingested_at TIMESTAMP NOT NULL,
  PRIMARY KEY (event_id) NOT ENFORCED
)
PARTITION BY DATE(event_ts)
CLUSTER BY asset_key, job_name
OPTIONS (description = 'dagster-monitoring: one row per asset materialization');
