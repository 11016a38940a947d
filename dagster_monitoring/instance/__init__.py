"""Instance-level alert kinds: schedule / sensor tick failures, code locations that fail to load,
daemons whose heartbeats went stale, and asset health changes (Dagster+ alert policies, in OSS)."""
