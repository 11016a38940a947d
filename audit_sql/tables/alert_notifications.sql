-- Every alert router decision (record_type = decision) and delivery outcome (record_type = delivery).
CREATE TABLE IF NOT EXISTS dagster_audit.alert_notifications (
  event_id STRING NOT NULL,
  event_ts TIMESTAMP NOT NULL,
  record_type STRING NOT NULL,          -- decision | delivery
  fingerprint STRING NOT NULL,
  incident_id STRING,
  source STRING,
  kind STRING,
  entity STRING,
  transition STRING,                    -- new | ongoing | reminder | escalated | recovered (NULL: no notice)
  observation STRING,                   -- opened | continued | refailed | resolving | recovered | healthy
  receiver STRING,
  severity STRING,
  silenced_by STRING,
  delivered BOOL,
  delivery_status STRING,               -- delivered | pending | dead
  attempts INT64,
  error STRING,                         -- redacted
  ticket_key STRING,
  run_id STRING,
  ingested_at TIMESTAMP NOT NULL,
  PRIMARY KEY (event_id) NOT ENFORCED
)
PARTITION BY DATE(event_ts)
CLUSTER BY fingerprint, receiver
OPTIONS (description = 'dagster-monitoring: alert router decisions and deliveries');
