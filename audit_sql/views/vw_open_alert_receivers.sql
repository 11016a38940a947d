-- Who heard of each open incident (vw_open_alerts): per incident and receiver, the last notice
-- decided for it, when, and the ticket a delivery to it opened or linked. A receiver counts once
-- a delivery of the incident reached it (a notice still queued or held when the state DB was
-- lost never went out). The alert router rebuilds a lost state DB from this and vw_open_alerts.
CREATE OR REPLACE VIEW dagster_audit.vw_open_alert_receivers AS
WITH recent AS (
  SELECT * FROM dagster_audit.alert_notifications
  WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY)
    AND receiver IS NOT NULL
    AND incident_id IS NOT NULL
  QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ingested_at) = 1
),
notices AS (
  SELECT incident_id, receiver, transition, severity, event_ts
  FROM recent
  WHERE record_type = 'decision'
    AND transition IN ('new', 'reminder', 'escalated')
    AND silenced_by IS NULL
  QUALIFY ROW_NUMBER() OVER (PARTITION BY incident_id, receiver ORDER BY event_ts DESC, transition) = 1
),
delivered AS (
  SELECT incident_id, receiver, MAX(ticket_key) AS ticket_key
  FROM recent
  WHERE record_type = 'delivery' AND delivered
  GROUP BY incident_id, receiver
)
SELECT
  o.fingerprint,
  o.incident_id,
  n.receiver,
  n.transition AS last_notice,
  n.severity,
  n.event_ts AS notified_at,
  d.ticket_key
FROM dagster_audit.vw_open_alerts AS o
JOIN notices AS n
  ON n.incident_id = o.incident_id
JOIN delivered AS d
  ON d.incident_id = n.incident_id AND d.receiver = n.receiver;
