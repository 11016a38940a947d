-- Incidents the alert router holds open now (last decision not a recovery), with who was told.
CREATE OR REPLACE VIEW dagster_audit.vw_open_alerts AS
WITH decisions AS (
  SELECT * FROM dagster_audit.alert_notifications
  WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY)
    AND record_type = 'decision'
  QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ingested_at) = 1
),
latest AS (
  SELECT * FROM decisions
  QUALIFY ROW_NUMBER() OVER (PARTITION BY fingerprint ORDER BY event_ts DESC, observation) = 1
),
per_incident AS (
  SELECT
    incident_id,
    MIN(event_ts) AS opened_at,
    COUNTIF(transition IS NOT NULL AND transition != 'ongoing' AND silenced_by IS NULL) AS notifications,
    -- one decision per receiver per event: the failing events are counted by their time
    COUNT(DISTINCT IF(observation IN ('opened', 'continued', 'refailed'), event_ts, NULL)) AS failures_seen,
    MAX(ticket_key) AS ticket_key
  FROM decisions
  GROUP BY incident_id
)
SELECT
  l.fingerprint,
  l.incident_id,
  l.source,
  l.kind,
  l.entity,
  l.severity,
  l.observation AS state,
  p.opened_at,
  l.event_ts AS last_seen_at,
  p.failures_seen,
  p.notifications,
  p.ticket_key,
  l.run_id AS last_run_id
FROM latest AS l
JOIN per_incident AS p
  ON l.incident_id = p.incident_id
WHERE l.observation IN ('opened', 'continued', 'refailed', 'resolving');
