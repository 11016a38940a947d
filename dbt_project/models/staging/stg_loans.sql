-- One row per loan, typed and named consistently.
with source as (
    select * from {{ source('raw', 'loans') }}
),

renamed as (
    select
        cast(loan_id as varchar) as loan_id,
        cast(customer_id as varchar) as customer_id,
        lower(cast(product as varchar)) as product,
        cast(principal_amount as decimal(12, 2)) as principal_amount,
        cast(annual_rate_pct as decimal(5, 2)) as annual_rate_pct,
        cast(term_months as integer) as term_months,
        cast(disbursed_on as date) as disbursed_on,
        lower(cast(status as varchar)) as status
    from source
)

select * from renamed
{% if var('inject_bad_data', false) %}
-- Failure on demand (--vars '{inject_bad_data: true}'): a loan without a principal and with a
-- status the business does not know.
union all
select
    'L-9999', 'C-999', 'personal', cast(null as decimal(12, 2)), 11.90, 12,
    date '2025-06-01', 'frozen'
{% endif %}
