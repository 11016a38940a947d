-- Per job and day (last 30 days): runs, failures, success rate, p50/p95 duration, last status.
CREATE OR REPLACE VIEW dagster_audit.vw_run_summary AS
WITH runs AS (
  SELECT * FROM dagster_audit.runs
  WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY)
    AND status IN ('SUCCESS', 'FAILURE', 'CANCELED')
  QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ingested_at) = 1
),
ranked AS (
  SELECT
    job_name,
    DATE(event_ts) AS run_date,
    status,
    event_ts,
    run_url,
    PERCENTILE_CONT(duration_s, 0.5) OVER (PARTITION BY job_name, DATE(event_ts)) AS p50_duration_s,
    PERCENTILE_CONT(duration_s, 0.95) OVER (PARTITION BY job_name, DATE(event_ts)) AS p95_duration_s,
    ROW_NUMBER() OVER (PARTITION BY job_name, DATE(event_ts) ORDER BY event_ts DESC) AS recency
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
  MAX(event_ts) AS last_run_at
FROM ranked
GROUP BY job_name, run_date;
