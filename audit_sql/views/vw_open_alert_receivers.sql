-- Who heard of each open incident (vw_open_alerts): per incident and receiver, the last notice
-- that reached it (new, reminder, escalated; one still queued or held when the state DB was lost
-- did not), when it was decided, and the ticket a delivery to it opened or linked. The alert
-- router rebuilds a lost state DB from this and vw_open_alerts.
CREATE OR REPLACE VIEW dagster_audit.vw_open_alert_receivers AS
WITH recent AS (
  SELECT * FROM dagster_audit.alert_notifications
  WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY)
    AND receiver IS NOT NULL
    AND incident_id IS NOT NULL
  QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ingested_at) = 1
),
delivered AS (
  SELECT incident_id, receiver, transition, MAX(ticket_key) AS ticket_key
  FROM recent
  WHERE record_type = 'delivery' AND delivered
  GROUP BY incident_id, receiver, transition
),
-- the last notice that went out: one decided but still queued or held when the DB was lost did not
notices AS (
  SELECT n.incident_id, n.receiver, n.transition, n.severity, n.event_ts, d.ticket_key
  FROM recent AS n
  JOIN delivered AS d
    ON d.incident_id = n.incident_id AND d.receiver = n.receiver AND d.transition = n.transition
  WHERE n.record_type = 'decision'
    AND n.transition IN ('new', 'reminder', 'escalated')
    AND n.silenced_by IS NULL
  QUALIFY ROW_NUMBER() OVER (PARTITION BY n.incident_id, n.receiver ORDER BY n.event_ts DESC, n.transition) = 1
),
tickets AS (
  SELECT incident_id, receiver, MAX(ticket_key) AS ticket_key
  FROM delivered
  GROUP BY incident_id, receiver
)
SELECT
  o.fingerprint,
  o.incident_id,
  n.receiver,
  n.transition AS last_notice,
  n.severity,
  n.event_ts AS notified_at,
  t.ticket_key
FROM dagster_audit.vw_open_alerts AS o
JOIN notices AS n
  ON n.incident_id = o.incident_id
JOIN tickets AS t
  ON t.incident_id = n.incident_id AND t.receiver = n.receiver;
