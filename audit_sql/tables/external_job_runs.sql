-- One immutable row per observed status of a run outside Dagster: a Fivetran sync, a dbt Cloud
-- job run, an AWS Glue job run, Step Functions execution, AppFlow flow run or DataSync task
-- execution. event_id = source:job_id:run_id:status:event_ts, so a re-polled or re-delivered
-- event is one row.
CREATE TABLE IF NOT EXISTS dagster_audit.external_job_runs (
  event_id STRING NOT NULL,
  event_ts TIMESTAMP NOT NULL,          -- when the source says the status was reached (UTC)
  source STRING NOT NULL,               -- fivetran | dbt_cloud | aws_glue | aws_stepfunctions | aws_appflow | aws_datasync
  job_id STRING NOT NULL,               -- connector id, dbt Cloud job id, Glue job name, state machine ARN, flow ARN, task id
  job_name STRING NOT NULL,             -- the alert's entity
  run_id STRING,                        -- sync id, run id, job run id, execution name, execution id
  status STRING NOT NULL,               -- succeeded | failed | delayed (a Glue run past its notify delay)
  failed BOOL NOT NULL,                 -- failed or delayed
  severity STRING,                      -- the alert's severity when failed
  started_at TIMESTAMP,
  finished_at TIMESTAMP,
  duration_s FLOAT64,
  message STRING,                       -- redacted, truncated
  fingerprint STRING NOT NULL,          -- the alert incident's fingerprint
  owners STRING,                        -- comma-separated owners
  run_url STRING,                       -- the run (or connector) in the source's console
  via STRING,                           -- poll | webhook | eventbridge
  account STRING,                       -- AWS account (AWS sources)
  region STRING,                        -- AWS region (AWS sources)
  details JSON,                         -- the event's other facts (record counts, ARNs, tags)
  ingested_at TIMESTAMP NOT NULL,
  PRIMARY KEY (event_id) NOT ENFORCED
)
PARTITION BY DATE(event_ts)
CLUSTER BY source, job_name, status
OPTIONS (description = 'dagster-monitoring: one row per observed status of an external job run');
