-- Incidents the alert router holds open now (the latest incident of each fingerprint, with no
-- recovery decided), since when, how often it failed, who was told how often, the ticket, the
-- Dagster run of its last failure with its link (from the trail's runs table), and for a failed
-- run its owners and error.
-- Also what the router rebuilds a lost state DB from (with vw_open_alert_receivers).
CREATE OR REPLACE VIEW dagster_audit.vw_open_alerts AS
WITH recent AS (
  SELECT * FROM dagster_audit.alert_notifications
  WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY)
    AND incident_id IS NOT NULL
  QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ingested_at) = 1
),
decisions AS (
  SELECT *, observation IN ('opened', 'continued', 'refailed') AS failing
  FROM recent
  WHERE record_type = 'decision'
),
per_incident AS (
  SELECT
    incident_id,
    MIN(fingerprint) AS fingerprint,
    MIN(event_ts) AS opened_at,
    -- one decision per receiver per event: events are counted by their time
    COUNT(DISTINCT IF(failing, event_ts, NULL)) AS failures_seen,
    COUNT(DISTINCT IF(observation = 'refailed', event_ts, NULL)) AS flaps,
    MAX(IF(failing, event_ts, NULL)) AS last_failed_at,
    MAX(IF(observation = 'resolving', event_ts, NULL)) AS last_success_at,
    MAX(IF(failing, CASE LOWER(severity) WHEN 'critical' THEN 2 WHEN 'error' THEN 1 ELSE 0 END, NULL)) AS severity_rank,
    COUNTIF(transition IS NOT NULL AND transition != 'ongoing' AND silenced_by IS NULL) AS notifications,
    COUNTIF(observation = 'recovered') AS recoveries
  FROM decisions
  GROUP BY incident_id
),
-- a timed recovery is stamped with the tick's time, so a late event may open the next incident
-- before it: the latest incident is the one opened last
latest_incident AS (
  SELECT * FROM per_incident
  QUALIFY ROW_NUMBER() OVER (PARTITION BY fingerprint ORDER BY opened_at DESC, incident_id DESC) = 1
),
latest AS (
  SELECT * FROM decisions
  QUALIFY ROW_NUMBER() OVER (PARTITION BY incident_id ORDER BY event_ts DESC, observation) = 1
),
-- the first success after the last failure: since when it is resolving, and the run that did it
first_pass AS (
  SELECT d.incident_id, d.event_ts AS resolving_since, d.run_id AS fixed_by_run_id
  FROM decisions AS d
  JOIN per_incident AS p
    ON d.incident_id = p.incident_id
  WHERE d.observation = 'resolving' AND (p.last_failed_at IS NULL OR d.event_ts > p.last_failed_at)
  QUALIFY ROW_NUMBER() OVER (PARTITION BY d.incident_id ORDER BY d.event_ts) = 1
),
-- the run of the last failure (none when it came from outside a run), and what the trail's runs
-- table says of that run (its latest row)
last_failure AS (
  SELECT incident_id, run_id
  FROM decisions
  WHERE failing
  QUALIFY ROW_NUMBER() OVER (PARTITION BY incident_id ORDER BY event_ts DESC) = 1
),
run_rows AS (
  SELECT * FROM dagster_audit.runs
  WHERE event_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL 30 DAY)
  QUALIFY ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY ingested_at) = 1
),
failed_runs AS (
  SELECT run_id, owners, run_url, error_class, error_message
  FROM run_rows
  QUALIFY ROW_NUMBER() OVER (PARTITION BY run_id ORDER BY event_ts DESC, event_id) = 1
),
tickets AS (
  SELECT incident_id, MAX(ticket_key) AS ticket_key
  FROM recent
  WHERE record_type = 'delivery' AND delivered AND ticket_key IS NOT NULL
  GROUP BY incident_id
)
SELECT
  p.fingerprint,
  p.incident_id,
  l.source,
  l.kind,
  l.entity,
  COALESCE(CASE p.severity_rank WHEN 2 THEN 'critical' WHEN 1 THEN 'error' WHEN 0 THEN 'warn' END, l.severity) AS severity,
  l.observation AS state,
  p.opened_at,
  l.event_ts AS last_seen_at,
  p.last_failed_at,
  p.last_success_at,
  IF(l.observation = 'resolving', f.resolving_since, NULL) AS resolving_since,
  p.failures_seen,
  p.flaps,
  p.notifications,
  t.ticket_key,
  l.run_id AS last_run_id,
  IF(l.observation = 'resolving', f.fixed_by_run_id, NULL) AS fixed_by_run_id,
  lf.run_id AS failed_run_id,
  r.run_url AS failed_run_url,
  -- a run's owners and error are the incident's only when the run is what failed (a check or an
  -- asset in it has owners of its own, and a step error that is not its cause)
  IF(l.kind = 'run', r.owners, NULL) AS owners,
  CASE
    WHEN l.kind != 'run' THEN NULL
    WHEN r.error_class IS NOT NULL AND r.error_message IS NOT NULL THEN CONCAT(r.error_class, ': ', r.error_message)
    ELSE COALESCE(r.error_class, r.error_message)
  END AS error
FROM latest_incident AS p
JOIN latest AS l
  ON l.incident_id = p.incident_id
LEFT JOIN first_pass AS f
  ON f.incident_id = p.incident_id
LEFT JOIN tickets AS t
  ON t.incident_id = p.incident_id
LEFT JOIN last_failure AS lf
  ON lf.incident_id = p.incident_id
LEFT JOIN failed_runs AS r
  ON r.run_id = lf.run_id
WHERE p.recoveries = 0 AND l.observation IN ('opened', 'continued', 'refailed', 'resolving');
