-- What is failing right now, per job / asset check / dbt test: since when, how many times in a
-- row, when it last worked, the last error, the run to open and who owns it. A row disappears
-- as soon as the next success lands.
CREATE OR REPLACE VIEW dagster_audit.vw_recent_failures AS
WITH last_success AS (
  SELECT entity_type, entity, MAX(event_ts) AS last_success_at
  FROM dagster_audit.vw_entity_events
  WHERE NOT failed
  GROUP BY entity_type, entity
),
streak AS (
  SELECT e.*, s.last_success_at
  FROM dagster_audit.vw_entity_events AS e
  LEFT JOIN last_success AS s
    ON e.entity_type = s.entity_type AND e.entity = s.entity
  WHERE e.failed AND (s.last_success_at IS NULL OR e.event_ts > s.last_success_at)
)
SELECT
  entity_type,
  entity,
  severity,
  MIN(event_ts) OVER (PARTITION BY entity_type, entity) AS failing_since,
  COUNT(*) OVER (PARTITION BY entity_type, entity) AS failures_in_streak,
  event_ts AS last_failure_at,
  last_success_at,
  error AS last_error,
  run_id AS last_run_id,
  run_url AS last_run_url,
  owners
FROM streak
QUALIFY ROW_NUMBER() OVER (PARTITION BY entity_type, entity ORDER BY event_ts DESC) = 1;
