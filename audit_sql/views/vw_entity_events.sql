-- Building block (not a dashboard): every pass/fail outcome of the last 30 days, one row per
-- event_id, for jobs (runs), asset checks and dbt tests, in one shape. The curated failure views
-- read from here, so "what counts as failing" is defined once.
--
-- A dbt test that Dagster runs as an asset check is recorded twice: as the check evaluation
-- (asset_check_evaluations) and as the dbt result (dbt_test_results), same run_id and
-- check_name = test_name. It is one outcome, so it is one row here: the dbt row (entity_type
-- dbt_test, its event_id), with the alert's severity (CRITICAL for a critical test, else the
-- check's severity, else dbt's status), the test's owners (its own, else its model's), dbt's
-- message and the run URL (dbt's, else the check's). Its entity is `<asset key>:<test name>`,
-- the alert's entity. A dbt result with no check in its run (dbt run outside Dagster, or the
-- audit sensor has not captured the run's checks yet) stays `<test name>`, as before.
-- Asset checks that are not dbt tests stay as they are.
--
-- Runs outside Dagster (external_job_runs) are outcomes too: entity_type is their source
-- (fivetran, dbt_cloud, aws_glue, aws_stepfunctions, aws_appflow, aws_datasync), entity the job's
-- name. A Glue run past its notify delay (status delayed) counts as failing, with its severity.
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
),
external AS (
  SELECT * FROM dagster_audit.external_job_runs
  WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY)
  QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ingested_at) = 1
),
dbt_runs AS (  -- (run, test) pairs dbt recorded: their asset check rows fold into the dbt row
  SELECT DISTINCT run_id, test_name
  FROM dbt
  WHERE run_id IS NOT NULL
),
dbt_checks AS (  -- one row per (run, check name), so the fold never multiplies dbt rows
  SELECT
    run_id,
    check_name,
    MIN(asset_key) AS asset_key,
    MIN(severity) AS severity,
    MIN(description) AS description,
    MIN(run_url) AS run_url,
    MIN(owners) AS owners
  FROM checks
  WHERE run_id IS NOT NULL
  GROUP BY run_id, check_name
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
  CONCAT(c.asset_key, ':', c.check_name) AS entity,
  c.event_ts,
  NOT c.passed AS failed,
  CASE WHEN NOT c.passed THEN c.severity END AS severity,
  CASE WHEN NOT c.passed THEN c.description END AS error,
  c.run_id,
  c.run_url,
  c.owners
FROM checks AS c
LEFT JOIN dbt_runs AS d
  ON c.run_id = d.run_id AND c.check_name = d.test_name
WHERE d.test_name IS NULL
UNION ALL
SELECT
  'dbt_test' AS entity_type,
  COALESCE(CONCAT(c.asset_key, ':', d.test_name), d.test_name) AS entity,
  d.event_ts,
  d.status IN ('warn', 'fail', 'error') AS failed,
  CASE
    WHEN d.status NOT IN ('warn', 'fail', 'error') THEN NULL
    WHEN d.is_critical THEN 'CRITICAL'
    WHEN c.severity IS NOT NULL THEN c.severity
    WHEN d.status = 'warn' THEN 'WARN'
    ELSE 'ERROR'
  END AS severity,
  CASE WHEN d.status IN ('warn', 'fail', 'error') THEN COALESCE(d.message, c.description) END AS error,
  d.run_id,
  COALESCE(d.run_url, c.run_url) AS run_url,
  COALESCE(d.owners, c.owners) AS owners
FROM dbt AS d
LEFT JOIN dbt_checks AS c
  ON d.run_id = c.run_id AND d.test_name = c.check_name
UNION ALL
SELECT
  source AS entity_type,
  job_name AS entity,
  event_ts,
  failed,
  CASE WHEN failed THEN COALESCE(severity, 'ERROR') END AS severity,
  CASE WHEN failed THEN COALESCE(message, status) END AS error,
  run_id,
  run_url,
  owners
FROM external;
