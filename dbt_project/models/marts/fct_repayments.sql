-- Repayments with their loan's terms and the running total repaid on the loan.
with repayments as (
    select * from {{ ref('stg_repayments') }}
),

loans as (
    select * from {{ ref('stg_loans') }}
)

select
    repayments.repayment_id,
    repayments.loan_id,
    loans.customer_id,
    loans.product,
    loans.disbursed_on,
    repayments.paid_at,
    repayments.amount,
    repayments.channel,
    sum(repayments.amount) over (
        partition by repayments.loan_id
        order by repayments.paid_at, repayments.repayment_id
        rows between unbounded preceding and current row
    ) as repaid_to_date
from repayments
inner join loans on repayments.loan_id = loans.loan_id
