-- Building block (not a dashboard): every pass/fail outcome of the last 30 days, one row per
-- event_id, for jobs (runs), asset checks and dbt tests, in one shape. The curated failure views
-- read from here, so "what counts as failing" is defined once.
CREATE OR REPLACE VIEW dagster_audit.vw_entity_events AS
WITH runs AS (
  SELECT * FROM dagster_audit.runs
  WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY)
    AND status IN ('SUCCESS', 'FAILURE')
  QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ingested_at) = 1
),
checks AS (
  SELECT * FROM dagster_audit.asset_check_evaluations
  WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY)
  QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ingested_at) = 1
),
dbt AS (
  SELECT * FROM dagster_audit.dbt_test_results
  WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY)
    AND status != 'skipped'
  QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ingested_at) = 1
)
SELECT
  'job' AS entity_type,
  job_name AS entity,
  event_ts,
  status = 'FAILURE' AS failed,
  CASE WHEN status = 'FAILURE' THEN 'ERROR' END AS severity,
  CASE WHEN status = 'FAILURE' THEN CONCAT(COALESCE(error_class, 'Failure'), ': ', COALESCE(error_message, '')) END AS error,
  run_id,
  run_url,
  owners
FROM runs
UNION ALL
SELECT
  'asset_check' AS entity_type,
  CONCAT(asset_key, ':', check_name) AS entity,
  event_ts,
  NOT passed AS failed,
  CASE WHEN NOT passed THEN severity END AS severity,
  CASE WHEN NOT passed THEN description END AS error,
  run_id,
  run_url,
  owners
FROM checks
UNION ALL
SELECT
  'dbt_test' AS entity_type,
  test_name AS entity,
  event_ts,
  status IN ('warn', 'fail', 'error') AS failed,
  CASE
    WHEN status = 'warn' THEN 'WARN'
    WHEN status IN ('fail', 'error') AND is_critical THEN 'CRITICAL'
    WHEN status IN ('fail', 'error') THEN 'ERROR'
  END AS severity,
  CASE WHEN status IN ('warn', 'fail', 'error') THEN message END AS error,
  run_id,
  run_url,
  owners
FROM dbt;
