-- The latest result of every dbt test (last 30 days), with the one before it, so a test that
-- just turned red (or green) stands out.
CREATE OR REPLACE VIEW dagster_audit.vw_dbt_test_results AS
WITH results AS (
  SELECT * FROM dagster_audit.dbt_test_results
  WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY)
  QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ingested_at) = 1
),
ordered AS (
  SELECT
    *,
    LAG(status) OVER (PARTITION BY unique_id ORDER BY event_ts) AS previous_status,
    ROW_NUMBER() OVER (PARTITION BY unique_id ORDER BY event_ts DESC) AS recency
  FROM results
)
SELECT
  unique_id,
  test_name,
  model,
  status,
  previous_status,
  is_critical,
  failures,
  message,
  execution_time_s,
  compiled_path,
  invocation_id,
  run_id,
  run_url,
  owners,
  event_ts AS last_run_at
FROM ordered
WHERE recency = 1;
