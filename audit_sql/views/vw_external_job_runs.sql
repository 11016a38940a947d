-- Every job outside Dagster (Fivetran, dbt Cloud, AWS Glue / Step Functions / AppFlow / DataSync):
-- its latest observed status, when, how long it took, its message and run link, and its runs and
-- failures over the last 9 days. Worst first in `audit query` and the on-call report.
CREATE OR REPLACE VIEW dagster_audit.vw_external_job_runs AS
WITH observed AS (
  SELECT * FROM dagster_audit.external_job_runs
  WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY)
  QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ingested_at) = 1
),
latest AS (
  SELECT * FROM observed
  QUALIFY ROW_NUMBER() OVER (PARTITION BY source, job_name ORDER BY event_ts DESC, event_id DESC) = 1
),
recent AS (
  SELECT
    source,
    job_name,
    COUNTIF(status IN ('succeeded', 'failed')) AS runs_9d,
    COUNTIF(status = 'failed') AS failures_9d
  FROM observed
  WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 9 DAY)
  GROUP BY source, job_name
)
SELECT
  l.source,
  l.job_name,
  l.status AS last_status,
  l.failed,
  l.severity,
  l.event_ts AS last_event_at,
  l.duration_s,
  l.owners,
  l.message,
  COALESCE(r.runs_9d, 0) AS runs_9d,
  COALESCE(r.failures_9d, 0) AS failures_9d,
  l.run_url,
  l.account,
  l.region
FROM latest AS l
LEFT JOIN recent AS r ON r.source = l.source AND r.job_name = l.job_name;
