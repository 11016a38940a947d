-- Nine-day rolling failure counts per entity and day: a one-off or a trend?
-- Days with outcomes but no failure are listed too (failures = 0), so gaps read as green days.
CREATE OR REPLACE VIEW dagster_audit.vw_failures_9d AS
WITH daily AS (
  SELECT
    entity_type,
    entity,
    DATE(event_ts) AS day,
    COUNT(*) AS outcomes,
    COUNTIF(failed) AS failures
  FROM dagster_audit.vw_entity_events
  WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 9 DAY)
  GROUP BY entity_type, entity, DATE(event_ts)
)
SELECT
  entity_type,
  entity,
  day,
  outcomes,
  failures,
  SUM(failures) OVER (PARTITION BY entity_type, entity) AS failures_9d,
  SUM(CASE WHEN failures > 0 THEN 1 ELSE 0 END) OVER (PARTITION BY entity_type, entity) AS days_with_failures_9d
FROM daily;
