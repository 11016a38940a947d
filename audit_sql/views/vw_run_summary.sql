-- Per job and day (last 30 days): runs, failures, success rate, p50/p95 duration, last status.
-- Dagster's runs (source dagster) and runs outside Dagster (external_job_runs: source fivetran,
-- dbt_cloud, aws_glue, ...; succeeded -> SUCCESS, failed -> FAILURE; a Glue delay notice is not a run).
CREATE OR REPLACE VIEW dagster_audit.vw_run_summary AS
WITH dagster_runs AS (
  SELECT * FROM dagster_audit.runs
  WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY)
    AND status IN ('SUCCESS', 'FAILURE', 'CANCELED')
  QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ingested_at) = 1
),
external_runs AS (
  SELECT * FROM dagster_audit.external_job_runs
  WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY)
    AND status IN ('succeeded', 'failed')
  QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ingested_at) = 1
),
runs AS (
  SELECT 'dagster' AS source, job_name, status, event_ts, duration_s, run_url FROM dagster_runs
  UNION ALL
  SELECT
    source,
    job_name,
    CASE WHEN status = 'succeeded' THEN 'SUCCESS' ELSE 'FAILURE' END AS status,
    event_ts,
    duration_s,
    run_url
  FROM external_runs
),
ranked AS (
  SELECT
    source,
    job_name,
    DATE(event_ts) AS run_date,
    status,
    event_ts,
    run_url,
    PERCENTILE_CONT(duration_s, 0.5) OVER (PARTITION BY source, job_name, DATE(event_ts)) AS p50_duration_s,
    PERCENTILE_CONT(duration_s, 0.95) OVER (PARTITION BY source, job_name, DATE(event_ts)) AS p95_duration_s,
    ROW_NUMBER() OVER (PARTITION BY source, job_name, DATE(event_ts) ORDER BY event_ts DESC) AS recency
  FROM runs
)
SELECT
  job_name,
  run_date,
  COUNT(*) AS runs,
  COUNTIF(status = 'FAILURE') AS failures,
  COUNTIF(status = 'CANCELED') AS canceled,
  ROUND(COUNTIF(status = 'SUCCESS') / COUNT(*), 4) AS success_rate,
  MAX(p50_duration_s) AS p50_duration_s,
  MAX(p95_duration_s) AS p95_duration_s,
  MAX(CASE WHEN recency = 1 THEN status END) AS last_status,
  MAX(CASE WHEN recency = 1 THEN run_url END) AS last_run_url,
  MAX(event_ts) AS last_run_at,
  source
FROM ranked
GROUP BY source, job_name, run_date;
