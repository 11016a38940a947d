"""Asset checks: dbt critical tests, freshness, dlt row counts and schema drift."""
