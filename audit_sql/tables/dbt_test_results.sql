-- One row per dbt test result of an invocation (run_results.json + manifest).
-- event_id = invocation_id:unique_id.
CREATE TABLE IF NOT EXISTS dagster_audit.dbt_test_results (
  event_id STRING NOT NULL,
  event_ts TIMESTAMP NOT NULL,          -- when the test finished
  invocation_id STRING NOT NULL,
  run_id STRING,                        -- the Dagster run that ran dbt, when known
  unique_id STRING NOT NULL,            -- test.<project>.<name>.<hash>
  test_name STRING NOT NULL,
  model STRING,                         -- the model (node) the test is attached to
  status STRING NOT NULL,               -- pass | warn | fail | error | skipped
  failures INT64,
  message STRING,
  is_critical BOOL NOT NULL,            -- tagged `critical`
  tags JSON,
  execution_time_s FLOAT64,
  compiled_path STRING,
  owners STRING,
  run_url STRING,
  ingested_at TIMESTAMP NOT NULL,
  PRIMARY KEY (event_id) NOT ENFORCED
)
PARTITION BY DATE(event_ts)
CLUSTER BY model, status, test_name
OPTIONS (description = 'dagster-monitoring: one row per dbt test result');
