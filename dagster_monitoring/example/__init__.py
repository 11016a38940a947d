"""The example project: a small lender's pipeline with dagster-monitoring merged in.

dlt loads the loan book's extracts (CSV files in a landing folder) into a DuckDB warehouse,
dbt builds staging and marts on top (``@dbt_assets``), a plain job imports a partner's payments
file, and the monitoring is added with one ``Definitions.merge``. ``dagster dev -w workspace.yaml``
shows it; ``dagster-monitoring demo`` breaks and fixes it to show the alerts and the audit trail.
Needs the ``dbt`` and ``dlt`` extras (``pip install -e '.[demo]'`` in a checkout).
"""
