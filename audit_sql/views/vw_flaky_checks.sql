-- Asset checks, dbt tests and jobs that flipped between pass and fail at least twice in the
-- last 14 days: candidates for a fix, a threshold change or a silence.
CREATE OR REPLACE VIEW dagster_audit.vw_flaky_checks AS
WITH flips AS (
  SELECT
    entity_type,
    entity,
    event_ts,
    failed,
    LAG(failed) OVER (PARTITION BY entity_type, entity ORDER BY event_ts) AS previous_failed
  FROM dagster_audit.vw_entity_events
  WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 14 DAY)
)
SELECT
  entity_type,
  entity,
  COUNT(*) AS outcomes,
  COUNTIF(failed) AS failures,
  COUNTIF(previous_failed IS NOT NULL AND failed != previous_failed) AS flips,
  MAX(event_ts) AS last_event_at
FROM flips
GROUP BY entity_type, entity
HAVING COUNTIF(previous_failed IS NOT NULL AND failed != previous_failed) >= 2;
