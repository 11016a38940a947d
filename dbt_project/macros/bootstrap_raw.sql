{#-
  Standalone mode: create the raw layer from data/*.csv when it does not exist yet.

  In production (and in the example Dagster project) a dlt pipeline loads raw.loans and
  raw.repayments; these hooks then find the tables and do nothing. They only ever run on DuckDB
  targets and can be switched off with --vars '{bootstrap_raw: false}'.
-#}

{% macro _bootstrap_enabled() -%}
  {{ return(target.type == 'duckdb' and var('bootstrap_raw', true)) }}
{%- endmacro %}

{% macro bootstrap_raw_schema() -%}
  {%- if _bootstrap_enabled() -%}
    create schema if not exists {{ var('raw_schema', 'raw') }}
  {%- endif -%}
{%- endmacro %}

{% macro bootstrap_raw_table(name) -%}
  {%- set columns = {
      'loans': {
          'loan_id': 'varchar', 'customer_id': 'varchar', 'product': 'varchar',
          'principal_amount': 'decimal(12,2)', 'annual_rate_pct': 'decimal(5,2)',
          'term_months': 'integer', 'disbursed_on': 'date', 'status': 'varchar',
      },
      'repayments': {
          'repayment_id': 'varchar', 'loan_id': 'varchar', 'paid_at': 'timestamptz',
          'amount': 'decimal(12,2)', 'channel': 'varchar',
      },
  } -%}
  {%- if _bootstrap_enabled() -%}
    create table if not exists {{ var('raw_schema', 'raw') }}.{{ name }} as
    select * from read_csv('data/{{ name }}.csv', header = true, columns = {
      {%- for column, type in columns[name].items() %}
      '{{ column }}': '{{ type }}'{{ "," if not loop.last }}
      {%- endfor %}
    })
  {%- endif -%}
{%- endmacro %}
