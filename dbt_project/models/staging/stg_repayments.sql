-- One row per repayment received.
with source as (
    select * from {{ source('raw', 'repayments') }}
)

select
    cast(repayment_id as varchar) as repayment_id,
    cast(loan_id as varchar) as loan_id,
    cast(paid_at as timestamptz) as paid_at,
    cast(amount as decimal(12, 2)) as amount,
    lower(cast(channel as varchar)) as channel
from source
