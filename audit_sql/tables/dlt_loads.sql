-- One row per table of a dlt load package. event_id = pipeline:load_id:table.
CREATE TABLE IF NOT EXISTS dagster_audit.dlt_loads (
  event_id STRING NOT NULL,
  event_ts TIMESTAMP NOT NULL,
  pipeline_name STRING NOT NULL,
  load_id STRING NOT NULL,
  dataset_name STRING,
  table_name STRING NOT NULL,
  rows_loaded INT64,
  schema_changes JSON,                  -- {"added": [...], "removed": [...], "type_changed": [...]}
  run_id STRING,
  ingested_at TIMESTAMP NOT NULL,
  PRIMARY KEY (event_id) NOT ENFORCED
)
PARTITION BY DATE(event_ts)
CLUSTER BY pipeline_name, table_name
OPTIONS (description = 'dagster-monitoring: one row per dlt load package and table');
